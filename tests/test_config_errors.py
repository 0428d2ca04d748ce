"""Every invalid configuration raises a ValueError that names the field and the fix."""

from __future__ import annotations

import pytest

import goat
from tests.conftest import TwoLayer


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "lora_moe"}, "method='lora_moe' is unknown"),
        ({"init": "middle"}, "init='middle' is unknown"),
        ({"method": "molora", "init": "principal"}, "only applies to method='goat'"),
        ({"r": 0}, "r=0 must be a positive"),
        ({"r": 10, "num_experts": 4}, "r=10 is not divisible by num_experts=4"),
        ({"top_k": 5, "num_experts": 4, "r": 8}, "top_k=5 must be between 1 and num_experts=4"),
        ({"top_k": 0}, "top_k=0"),
        ({"num_experts": 0}, "num_experts=0"),
        ({"rho": 0}, "rho=0"),
        ({"eta": -1}, "eta=-1"),
        ({"lora_dropout": 1.0}, "lora_dropout=1.0"),
        ({"scaling": "huge"}, "scaling='huge' is unknown"),
        ({"scaling": -2.0}, "scaling=-2.0"),
        ({"method": "lora", "scaling": "theory"}, "scaling='theory'"),
    ],
)
def test_invalid_config_fields(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        goat.GoatConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, setting",
    [
        ({"r": 10, "num_experts": 4}, "r"),  # names num_experts too: the setting is the one to change
        ({"top_k": 5, "num_experts": 4, "r": 8}, "top_k"),
        ({"method": "lora", "scaling": "theory"}, "scaling"),  # names method too
        ({"method": "kasa", "scaling": "rs"}, "scaling"),
        ({"method": "molora", "init": "principal"}, "init"),
        ({"method": "lora", "segment": 1}, "segment"),
        ({"aux_loss_coef": -1.0}, "aux_loss_coef"),
    ],
)
def test_config_errors_carry_the_setting_they_name(kwargs, setting):
    """The CLI names the YAML file that set a bad value from ``ConfigError.setting``, not from the text."""
    with pytest.raises(goat.adapters.config.ConfigError) as raised:
        goat.GoatConfig(**kwargs)
    assert raised.value.setting == setting and isinstance(raised.value, ValueError)
    assert f"{setting}=" in str(raised.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_modules": ["fc3"]}, "'fc3' matches no module"),
        ({"target_modules": ["norm"]}, "'norm' matches 'norm', a LayerNorm"),
        ({"target_modules": ["act"]}, "only nn.Linear"),
        ({"target_modules": ["fc1"], "exclude_modules": ["fc1"]}, "selects no nn.Linear"),
        ({"r": 32, "num_experts": 4, "target_modules": ["fc1"]}, "r=32 exceeds min\\(out, in\\) = 24 of layer 'fc1'"),
    ],
)
def test_invalid_targets(kwargs, message):
    with pytest.raises(ValueError, match=message):
        goat.get_goat_model(TwoLayer(), goat.GoatConfig(**{"r": 8, "num_experts": 4, **kwargs}))


def test_unknown_saved_field_is_rejected():
    with pytest.raises(ValueError, match="unknown GoatConfig fields \\['alpha'\\]"):
        goat.GoatConfig.from_dict({"alpha": 3})


def test_config_round_trips_through_json():
    config = goat.GoatConfig(method="goat_plus", r=16, scaling=2.5, target_modules=["q", "v"])
    import json

    assert goat.GoatConfig.from_dict(json.loads(config.to_json())) == config
