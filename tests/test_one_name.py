"""One name and one default per setting everywhere (issue 22, item 6).

A setting is a field of ``GoatConfig``, of transformers' ``TrainingArguments`` or of goat's run
arguments (``goat.train.arguments``). Outside the training path it keeps that name: the flags of
the benchmarks, of ``goat.claims``, the studies, the quickstart and the examples, and the fields of
their dataclasses, never use a second name (``--rank``, ``--experts``, ``--lr``, ``best_lr``,
``balance_coef``, ...), and a flag named after a setting is spelled as the field (``--top_k``, not
only ``--top-k``). ``aux_loss_coef`` has one default, ``GoatConfig``'s, which the others read.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from goat.adapters.config import GoatConfig
from goat.claims.ledger import Config
from goat.train import arguments
from goat.train.settings import RENAMED

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "goat"
# Where settings are spelled outside the training path.
SCANNED = (
    sorted((ROOT / "benchmarks").glob("*.py"))
    + sorted((ROOT / "examples").glob("*.py"))
    + [p for folder in ("claims", "studies", "quickstart", "report") for p in sorted((SRC / folder).glob("*.py"))]
)

SETTINGS = {f.name for f in dataclasses.fields(GoatConfig)} | {
    f.name
    for cls in vars(arguments).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == arguments.__name__
    for f in dataclasses.fields(cls)
}
# Second names: the trainer's own list of retired names, and a few more seen in the wild.
SECOND_NAMES = {
    **RENAMED,
    "topk": "top_k",
    "k": "top_k",
    "n_experts": "num_experts",
    "num_expert": "num_experts",
    "balance_coef": "aux_loss_coef",
    "aux_coef": "aux_loss_coef",
    "balance_loss_coef": "aux_loss_coef",
    "cache_dir": "svd_cache_dir",
}
# Words that name a setting only as a second name, inside longer names too (``best_lr``, ``start_lrs``).
SECOND_WORDS = {"lr": "learning_rate", "rank": "r"}
# Fields that look like a setting but are something else; each with the reason.
NOT_SETTINGS = {
    "DecodeRow.batch_size": "a measurement row: the sequences of one generate call, not a training batch",
}


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 2 else word


def second_name(name: str) -> str | None:
    """The one name that ``name`` (a flag or a field; a list of values may take the plural) stands for, or None."""
    name = name.lstrip("-").replace("-", "_")
    if name in SETTINGS:
        return None
    for candidate in (name, _singular(name)):
        if candidate in SECOND_NAMES and candidate not in SETTINGS:
            return SECOND_NAMES[candidate]
    for word in name.split("_"):
        if _singular(word) in SECOND_WORDS or word in SECOND_WORDS:
            return SECOND_WORDS.get(word) or SECOND_WORDS[_singular(word)]
    return None


def flag_problems(option_strings: list[str]) -> list[str]:
    """What is wrong with one argument's option strings: a second name, or a setting not spelled as its field."""
    problems = []
    for option in option_strings:
        if not option.startswith("--"):
            continue
        one = second_name(option)
        if one is not None:
            problems.append(f"{option} is a second name of {one}; spell it --{one}")
    normalised = {o.lstrip("-").replace("-", "_") for o in option_strings if o.startswith("--")}
    for name in sorted(normalised & SETTINGS):
        if f"--{name}" not in option_strings:
            problems.append(f"{' / '.join(option_strings)} names the setting {name}; spell it --{name}")
    return problems


def parser_problems(parser: argparse.ArgumentParser) -> list[str]:
    return [p for action in parser._actions for p in flag_problems(list(action.option_strings))]


# ------------------------------------------------------------------------------ reading the sources
def _option_strings(call: ast.Call) -> list[str]:
    """The flags of one ``add_argument`` call: string literals and ``*flag_names("name")``."""
    options = []
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            options.append(arg.value)
        elif isinstance(arg, ast.Starred) and getattr(getattr(arg.value, "func", None), "id", "") == "flag_names":
            (name,) = [a.value for a in arg.value.args]
            options += [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    return options


def argument_calls(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line, option strings)`` of every ``parser.add_argument(...)`` in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            yield node.lineno, _option_strings(node)


def dataclass_fields(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, "Class.field")`` of every field of every ``@dataclass`` in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                    yield statement.lineno, f"{node.name}.{statement.target.id}"


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


# ------------------------------------------------------------------------------------------ tests
def test_the_check_catches_second_names():
    """Attack: a parser with the old flags is refused, the one names pass."""
    old = argparse.ArgumentParser()
    for flag in ("--rank", "--experts", "--alpha", "--top-k", "--lr", "--lrs", "--ranks", "--epochs", "--balance_coef"):
        old.add_argument(flag)
    problems = parser_problems(old)
    assert len(problems) == 9, problems
    assert any("--rank is a second name of r" in p for p in problems)
    assert any("--top-k names the setting top_k; spell it --top_k" in p for p in problems)
    assert any("--lrs is a second name of learning_rate" in p for p in problems)
    new = argparse.ArgumentParser()
    for flag in ("--r", "--num_experts", "--lora_alpha", "--learning_rates", "--r_values", "--aux_loss_coefs"):
        new.add_argument(flag)
    new.add_argument("--top_k", "--top-k")  # the dashed spelling beside the field's, as HfArgumentParser
    assert parser_problems(new) == []
    assert second_name("best_lr") == "learning_rate" and second_name("start_lrs") == "learning_rate"
    assert second_name("lr_scheduler_type") is None and second_name("local_rank") is None  # settings themselves


def test_the_sources_are_read():
    """The scan sees the flags and fields it checks (a reader that found nothing would pass anything)."""
    flags = {o for p in SCANNED for _, options in argument_calls(p) for o in options}
    assert {
        "--r",
        "--num_experts",
        "--top_k",
        "--lora_alpha",
        "--learning_rate",
        "--max_rounds",
        "--learning_rates",
        "--r_values",
        "--aux_loss_coefs",
        "--num_train_epochs",
        "--model_name_or_path",
    } <= flags
    fields = {f for p in SCANNED for _, f in dataclass_fields(p)}
    assert {
        "Spec.r",
        "Spec.num_experts",
        "Setting.lora_dropout",
        "Config.learning_rate",
        "TunedArm.best_learning_rate",
        "Scale.r_values",
        "Scale.aux_loss_coefs",
        "TaskScale.start_learning_rates",
    } <= fields


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_flags_use_the_one_name(path):
    problems = [f"{_where(path, line)}: {p}" for line, options in argument_calls(path) for p in flag_problems(options)]
    assert problems == []


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_dataclass_fields_use_the_one_name(path):
    problems = [
        f"{_where(path, line)}: {name} is a second name of {one}"
        for line, name in dataclass_fields(path)
        if name not in NOT_SETTINGS and (one := second_name(name.split(".")[1])) is not None
    ]
    assert problems == []


def test_the_claims_parser_uses_the_one_name():
    from goat.claims.__main__ import build_parser

    assert parser_problems(build_parser()) == []


def test_no_balance_coef_anywhere():
    """The balance-loss coefficient is ``aux_loss_coef`` down to its last hop (``goat.auxiliary_loss``)."""
    files = [
        *SRC.rglob("*.py"),
        *(ROOT / "benchmarks").glob("*.py"),
        *(ROOT / "examples").glob("*.py"),
        *(ROOT / "scripts").glob("*.sh"),
    ]
    assert [str(p.relative_to(ROOT)) for p in files if "balance_coef" in p.read_text()] == []


def _numeric_defaults(path: Path, name: str) -> Iterator[int]:
    """Lines where ``name`` gets a number as its default: a dataclass field, a parameter or ``field(default=...)``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == name and node.value is not None:
            value = node.value
            if isinstance(value, ast.Call):  # field(default=...) / _help(..., default=...)
                value = next((k.value for k in value.keywords if k.arg == "default"), None)
            if isinstance(value, ast.Constant) and isinstance(value.value, (int, float)):
                yield node.lineno
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            pairs = list(zip(positional[len(positional) - len(node.defaults) :], node.defaults))
            pairs += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None]
            numbers = [(a, d) for a, d in pairs if isinstance(d, ast.Constant) and isinstance(d.value, (int, float))]
            yield from (d.lineno for a, d in numbers if a.arg == name)


def test_aux_loss_coef_has_one_default():
    """Only ``GoatConfig`` writes the number; the ledger (and everything else) reads it."""
    files = [*SRC.rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "examples").glob("*.py")]
    found = [_where(p, line) for p in files for line in _numeric_defaults(p, "aux_loss_coef")]
    config_py = SRC / "adapters" / "config.py"
    assert found == [_where(config_py, line) for line in _numeric_defaults(config_py, "aux_loss_coef")]
    assert len(found) == 1
    assert Config.aux_loss_coef == GoatConfig.aux_loss_coef == GoatConfig().aux_loss_coef


def test_the_ledger_defaults_are_the_adapters():
    """The ledger's adapter settings default to GoatConfig's, so its run keys stay those of the one defaults."""
    config = Config("glue", "tweet_sentiment", "goat", 1e-3, 0)
    for name in ("r", "num_experts", "top_k", "scaling", "init", "aux_loss_coef"):
        assert getattr(config, name) == getattr(GoatConfig(), name), name
