"""A bad value is one or two lines that name the setting (and the YAML file, with its line for a syntax
error), exit 2: from a flag, from a --config file, from the packaged family YAML."""

from __future__ import annotations

import pytest

from goat.train.__main__ import main


def _fails(argv: list[str], capsys) -> str:
    """The error ``main`` prints for ``argv``: exit 2, at most two lines on stderr, nothing on stdout."""
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and 1 <= len(lines) <= 2 and lines[0].startswith("error: "), err
    assert out == ""
    return err.strip()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--r", "abc"], "error: --r: 'abc' is not an integer"),  # int
        (["--r", "8.5"], "error: --r: '8.5' is not an integer"),
        (["--max_train_samples", "1e3"], "error: --max_train_samples: '1e3' is not an integer"),  # optional int
        (["--learning_rate", "fast"], "error: --learning_rate: 'fast' is not a number"),  # float
        (["--learning-rate", "fast"], "error: --learning_rate: 'fast' is not a number"),  # the dashed spelling
        (["--bf16", "maybe"], "error: --bf16: 'maybe' is not a boolean (true or false)"),  # bool
        (["--svd_cache", "perhaps"], "error: --svd_cache: 'perhaps' is not a boolean (true or false)"),
        (
            ["--lr_scheduler_type", "cosin"],
            "error: --lr_scheduler_type 'cosin' is unknown; did you mean 'cosine'?",
        ),  # enum
        (["--optim", "adamw_torchh"], "error: --optim 'adamw_torchh' is unknown; did you mean 'adamw_torch'?"),
        (["--save_strategy", "epochs"], "error: --save_strategy 'epochs' is unknown; did you mean 'epoch'?"),
        (["--r"], "error: --r: needs a value"),
        (["--target_modules"], "error: --target_modules: needs at least one value"),  # list
        (["--learning_rate", "-1"], "error: --learning_rate -1.0: must be > 0."),
    ],
)
def test_a_bad_flag_is_one_line_naming_it(flags, message, capsys):
    assert _fails(["glue", "--task", "rte", *flags, "--print_config"], capsys).startswith(message)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("r: abc\n", "cfg.yaml: r: 'abc' is not an integer"),  # int
        ("r: 8.5\n", "cfg.yaml: r: 8.5 is not an integer"),
        ("r: true\n", "cfg.yaml: r: True is not an integer"),
        ("r: [8, 16]\n", "cfg.yaml: r: [8, 16] is not an integer"),
        ("learning_rate: fast\n", "cfg.yaml: learning_rate: 'fast' is not a number"),  # float
        ("learning_rate: [1.0e-4]\n", "cfg.yaml: learning_rate: [0.0001] is not a number"),  # a list for one value
        ("bf16: maybe\n", "cfg.yaml: bf16: 'maybe' is not a boolean (true or false)"),  # bool
        ("svd_cache: 3\n", "cfg.yaml: svd_cache: 3 is not a boolean (true or false)"),
        ("target_modules: [query, 3]\n", None),  # a list of names: fine (3 is a name here)
        (
            "lr_scheduler_type: cosin\n",
            "cfg.yaml: lr_scheduler_type 'cosin' is unknown; did you mean 'cosine'?",
        ),  # enum
        ("learning_rate: -1.0\n", "cfg.yaml: learning_rate -1.0: must be > 0."),
        ("defaults: {r: abc}\n", "cfg.yaml: r: 'abc' is not an integer"),  # nested file
        ("tasks: {rte: {num_train_epochs: many}}\n", "cfg.yaml: num_train_epochs: 'many' is not a number"),
        ("tasks: [rte]\n", "cfg.yaml: tasks: a mapping is expected, not a list."),
        ("defaults: 5\n", "cfg.yaml: defaults: a mapping is expected, not an int."),
        ("[r, 8]\n", "--config cfg.yaml: a YAML mapping of setting: value is expected."),
        # YAML syntax: the file and the line
        ("r: 8\nlearning_rate: 1e-4\n  lora_alpha: 16\n", "cfg.yaml line 3: mapping values are not allowed here."),
        ("r: 8\ntarget_modules: [query, value\n", "cfg.yaml line 3: expected ',' or ']', but got '<stream end>'."),
        ("r: 8\n\tlora_alpha: 16\n", "cfg.yaml line 2: found character '\\t' that cannot start any token."),
    ],
)
def test_a_bad_value_in_a_config_file_is_one_line_naming_the_file_and_the_key(yaml_text, message, tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml_text)
    argv = ["glue", "--task", "rte", "--config", str(path), "--print_config"]
    if message is None:
        assert main(argv) == 0
        return
    err = _fails(argv, capsys)
    assert err.startswith(f"error: {message.replace('cfg.yaml', str(path))}"), err


def test_the_flag_wins_and_is_named_over_a_file(tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text("learning_rate: 1.0e-4\n")
    err = _fails(["glue", "--task", "rte", "--config", str(path), "--learning_rate", "-2", "--print_config"], capsys)
    assert err == "error: --learning_rate -2.0: must be > 0."


@pytest.mark.parametrize(
    ("yaml_text", "flags", "message"),
    [
        ("scaling: big\n", [], "cfg.yaml: scaling='big' is unknown"),  # GoatConfig's own check, from the file
        ("top_k: 9\n", [], "cfg.yaml: top_k=9 must be between 1 and num_experts=8"),
        ("method: gaot\n", [], "cfg.yaml: method='gaot' is unknown"),
        ("top_k: 2\n", ["--top_k", "9"], "top_k=9 must be between"),  # the flag set it: no file named
        ("r: 8\n", ["--scaling", "big"], "scaling='big' is unknown"),  # the file set another key
    ],
)
def test_goat_config_errors_name_the_file_that_set_the_value(yaml_text, flags, message, tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml_text)
    err = _fails(["glue", "--task", "rte", "--config", str(path), *flags, "--print_config"], capsys)
    assert err.startswith(f"error: {message.replace('cfg.yaml', str(path))}"), err


def test_a_config_file_that_is_no_text_or_no_file(tmp_path, capsys):
    binary = tmp_path / "cfg.yaml"
    binary.write_bytes(b"\xff\xfe\x00r: 8")
    assert (
        _fails(["glue", "--task", "rte", "--config", str(binary)], capsys)
        == f"error: --config {binary}: not a text (UTF-8) file."
    )
    assert _fails(["glue", "--task", "rte", "--config", str(tmp_path / "nope.yaml")], capsys).endswith("no such file.")
    assert _fails(["glue", "--task", "rte", "--config"], capsys) == "error: --config: needs at least one value"
    assert _fails(["glue", "--task"], capsys) == "error: --task: needs a value"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("defaults:\n  r: abc\ntasks:\n  rte: {}\n", "error: configs/glue.yaml: r: 'abc' is not an integer"),
        ("defaults:\n  r: 8\n lora_alpha: 16\n", "error: configs/glue.yaml line 3: "),
    ],
)
def test_the_packaged_family_yaml_is_named_too(yaml_text, message, tmp_path, capsys, monkeypatch):
    from goat.train import settings

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "glue.yaml").write_text(yaml_text)
    monkeypatch.setattr(settings.resources, "files", lambda package: tmp_path)  # an edited installed package
    assert _fails(["glue", "--task", "rte", "--print_config"], capsys).startswith(message)
