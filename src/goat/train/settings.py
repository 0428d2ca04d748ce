"""Resolve a run's settings: YAML layers and command line into the three dataclasses of a run.

One name per setting: the YAML key, the command-line flag (``--learning_rate``; ``--learning-rate``
works too), the dataclass field and the column of results rows are the same word. A run is

* :class:`goat.GoatConfig`: the adapter (``method``, ``r``, ``lora_alpha``, ``num_experts``, ...);
* the family's task arguments (``GlueArguments`` ... in ``goat.train.arguments``): task, model, data;
* :class:`~goat.train.arguments.GoatTrainingArguments`: transformers' ``TrainingArguments`` plus
  the run settings of this project (``global_batch_size``, ``results_dir``, ...).

transformers' ``HfArgumentParser`` turns them into flags. Each layer overrides only the keys it names:

    dataclass defaults < configs/<family>.yaml ``defaults:`` < its ``tasks: <task>:`` block
    < each ``--config`` file in order (flat, or with its own ``defaults:``/``tasks:``) < command line

A key that is no setting of the family is an error naming the nearest one. A bad value is a
one-line ``ValueError`` naming the setting, and the YAML file (with its line, for a YAML syntax
error) where one is involved: ``--r: 'abc' is not an integer``, ``my.yaml: r: 'abc' is not an
integer``, ``my.yaml line 3: mapping values are not allowed here``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.hf_argparser import string_to_bool
from transformers.trainer_utils import HubStrategy, IntervalStrategy, SaveStrategy, SchedulerType
from transformers.training_args import OptimizerNames

from goat.adapters.config import ConfigError, GoatConfig
from goat.train.arguments import GoatTrainingArguments
from goat.train.families import FAMILIES, Family, family_named
from goat.train.reporters import REPORTERS
from goat.train.run_config import RunConfig, plain

# The TrainingArguments flags a GOAT run uses; --help lists these, --help_all every one.
TRAINING_FLAGS_SHOWN = frozenset(
    {
        "output_dir",
        "run_name",
        "seed",
        "learning_rate",
        "num_train_epochs",
        "max_steps",
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
        "warmup_steps",
        "warmup_ratio",
        "lr_scheduler_type",
        "weight_decay",
        "max_grad_norm",
        "optim",
        "bf16",
        "fp16",
        "gradient_checkpointing",
        "deepspeed",
        "torch_compile",
        "logging_steps",
        "report_to",
        "project",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "resume_from_checkpoint",
        "dataloader_num_workers",
    }
)
# Earlier names of settings, for the error message only (nothing is translated).
RENAMED = {
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "rank": "r",
    "alpha": "lora_alpha",
    "experts": "num_experts",
    "dropout": "lora_dropout",
    "batch_size": "global_batch_size",
    "per_device_batch": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "eval_batch": "per_device_eval_batch_size",
    "scheduler": "lr_scheduler_type",
    "max_length": "max_seq_length",
    "model": "model_name_or_path",
    "dataset_id": "dataset_name",
    "dataloader_workers": "dataloader_num_workers",
    "resume": "resume_from_checkpoint",
}
DEEPSPEED_PRESETS = ("zero2", "zero3")
# Settings of GoatTrainingArguments whose default depends on the machine: --print_config writes them only when set.
MACHINE_DEFAULTS = frozenset({"use_cpu", "svd_cache_dir"})
# Settings that take one name of a list (transformers' enums; the flags accept any word, TrainingArguments checks).
NAMED_CHOICES = {
    "lr_scheduler_type": SchedulerType,
    "optim": OptimizerNames,
    "eval_strategy": IntervalStrategy,
    "logging_strategy": IntervalStrategy,
    "save_strategy": SaveStrategy,
    "hub_strategy": HubStrategy,
}


# ------------------------------------------------------------------------------ YAML layers
def family_yaml(family: str) -> dict[str, Any]:
    """``configs/<family>.yaml`` from inside the installed package."""
    text = resources.files("goat").joinpath("configs", f"{family}.yaml").read_text()
    return _mapping(_parse_yaml(text, f"configs/{family}.yaml"), f"configs/{family}.yaml", "the file")


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: no such file.")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"--config {path}: not a text (UTF-8) file.") from None
    data = _parse_yaml(text, str(path))
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"--config {path}: a YAML mapping of setting: value is expected.")
    return data or {}


def _parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load``; a syntax error becomes one line naming the file and the line: ``my.yaml line 3: <problem>``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or getattr(error, "context", None) or str(error).splitlines()[0]
        where = f"{source} line {mark.line + 1}" if mark is not None else source
        raise ValueError(f"{where}: {problem}.") from None


def _mapping(value: Any, source: str, what: str) -> dict[str, Any]:
    """``value`` as a dict of settings (None: empty); anything else is an error naming ``what`` in ``source``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise ValueError(f"{source}: {what}: a mapping is expected, not {'an' if kind[0] in 'aeiou' else 'a'} {kind}.")
    return dict(value)


def _layers(data: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(defaults, per-task blocks) of a YAML file: nested (``defaults:``/``tasks:``) or flat."""
    if "defaults" in data or "tasks" in data:
        extra = sorted(map(str, set(data) - {"defaults", "tasks"}))
        if extra:
            raise ValueError(
                f"{source}: with defaults:/tasks: sections, settings go inside them, not at the top level ({extra})."
            )
        tasks = _mapping(data.get("tasks"), source, "tasks")
        blocks = {task: _mapping(block, source, f"tasks: {task}") for task, block in tasks.items()}
        return _mapping(data.get("defaults"), source, "defaults"), blocks
    return dict(data), {}


@dataclass
class _Layers:
    """The YAML layers of a run, in precedence order, and the task they select."""

    task: str
    values: dict[str, Any]  # merged, later layers win
    sources: dict[str, str]  # setting -> the layer that set it (for error messages)


def _merge_layers(
    family: Family,
    config_files: list[str],
    overrides: dict[str, Any],
    cli_task: str | None,
    *,
    require_task: bool = True,
) -> _Layers:
    named: list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]] = [
        (f"configs/{family.name}.yaml", *_layers(family_yaml(family.name), f"configs/{family.name}.yaml"))
    ]
    named += [(path, *_layers(read_yaml(path), path)) for path in config_files]
    named.append(("overrides", dict(overrides), {}))
    task = cli_task
    for _, defaults, _ in reversed(named):
        if task is None and defaults.get("task"):
            task = defaults["task"]
    if not task and require_task:
        raise ValueError(f"family {family.name} needs --task; choose one of {', '.join(family_tasks(family))}.")
    known_tasks = {t for _, _, blocks in named for t in blocks}
    if task and known_tasks and task not in known_tasks:
        raise ValueError(
            f"--task {task!r} is not in {family.name}.yaml; choose one of {', '.join(sorted(known_tasks))}."
        )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, defaults, blocks in named:
        for layer in (defaults, blocks.get(task, {})):
            values.update(layer)
            sources.update(dict.fromkeys(layer, source))
    if task:
        values["task"] = task
    return _Layers(task or "", values, sources)


def family_tasks(family: Family) -> list[str]:
    return sorted((family_yaml(family.name).get("tasks") or {}).keys())


# --------------------------------------------------------------------------------- parsing
KINDS: dict[Callable[..., Any], str] = {
    int: "an integer",
    float: "a number",
    string_to_bool: "a boolean (true or false)",
}


class OneLineErrors:
    """argparse's errors as one-line ``ValueError`` errors naming the flag (``--r: 'abc' is not an integer``),
    not the usage text and an exit."""

    def error(self, message: str) -> typing.NoReturn:
        raise ValueError(_flag_error(self, message))


class FlagParser(OneLineErrors, argparse.ArgumentParser):
    """A plain ``ArgumentParser`` whose errors are one-line ``ValueError`` errors."""


def _flag_error(parser: Any, message: str) -> str:
    """``argument --r: invalid int value: 'abc'`` -> ``--r: 'abc' is not an integer``."""
    match = re.fullmatch(r"argument (\S+): (.*)", message, re.DOTALL)
    if not match:
        return message
    flag, problem = match.group(1).split("/")[0], match.group(2)
    action = parser._option_string_actions.get(flag)
    if kind := re.fullmatch(r"invalid (int|float) value: (.*)", problem):
        problem = f"{kind.group(2)} is not {KINDS[int if kind.group(1) == 'int' else float]}"
    elif kind := re.match(r"Truthy value expected: got (.*) but expected", problem):
        problem = f"{kind.group(1)!r} is not {KINDS[string_to_bool]}"
    elif kind := re.fullmatch(r"invalid choice: (.*) \(choose from .*\)", problem, re.DOTALL):
        problem = _not_one_of(kind.group(1).strip("'"), list(action.choices) if action and action.choices else [])
    elif problem == "expected one argument":
        problem = "needs a value"
    elif problem == "expected at least one argument":
        problem = "needs at least one value"
    return f"{flag}: {problem}"


def _not_one_of(value: Any, choices: list[Any]) -> str:
    names = [str(choice) for choice in choices]
    close = difflib.get_close_matches(str(value), names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{value!r} is unknown; {hint}choose one of {', '.join(names)}"


class RunParser(OneLineErrors, HfArgumentParser):
    """HfArgumentParser over several dataclasses that may share a setting (``seed``: adapter init and
    training), with settings that take one of several kinds (``scaling``: a rule name or a number)."""

    @staticmethod
    def _parse_dataclass_field(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
        if f"--{field.name}" in parser._option_string_actions:  # already added by an earlier dataclass
            return
        kinds = [kind for kind in typing.get_args(field.type) if kind is not type(None)]
        if len(kinds) < 2:
            HfArgumentParser._parse_dataclass_field(parser, field)
            return
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        names = flag_names(field.name)
        listed = any(typing.get_origin(kind) is list for kind in kinds)
        parser.add_argument(
            *names, type=_scalar, nargs="+" if listed else None, default=default, help=field.metadata.get("help")
        )


def flag_names(name: str) -> list[str]:
    """A setting's flag, ``--name``, and its dashed spelling ``--na-me`` (both work, as in HfArgumentParser)."""
    return [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])


def _scalar(text: str) -> int | float | str:
    """A command-line word as the setting reads it: an integer, a number, or a name."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def build_parser(family: Family, *, show_all: bool = False) -> RunParser:
    """Flags of a family's three dataclasses; ``--help`` shows the family's own settings and the
    training flags a GOAT run uses, each with its (family YAML) default."""
    parser = RunParser(
        [GoatConfig, family.arguments, GoatTrainingArguments],
        prog=f"python -m goat.train {family.name}",
        description=f"{family.description} Defaults come from configs/{family.name}.yaml (with --task, its block).",
        epilog="Every transformers TrainingArguments flag is accepted; --help_all lists them all. "
        "--config FILE.yaml [...] layers YAML files over the family's; --print_config prints the resolved settings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,  # --lr must not quietly mean --lr_scheduler_type
    )
    if not show_all:
        hidden = {f.name for f in dataclasses.fields(TrainingArguments)} - TRAINING_FLAGS_SHOWN
        for action in parser._actions:
            if action.dest in hidden and action.dest not in {f.name for f in dataclasses.fields(GoatConfig)}:
                action.help = argparse.SUPPRESS
    return parser


def _task_flag(argv: list[str]) -> str | None:
    """``--task`` of the command line, read first: the task chooses the YAML blocks."""
    task_flag = FlagParser(add_help=False, allow_abbrev=False)
    task_flag.add_argument("--task")
    return task_flag.parse_known_args(argv)[0].task


def help_text(
    family_name: str, argv: list[str], *, config_files: list[str] | None = None, show_all: bool = False
) -> str:
    """``--help`` (``show_all``: with every TrainingArguments flag), defaults as the layers resolve them."""
    family = family_named(family_name)
    parser = build_parser(family, show_all=show_all)
    layers = _merge_layers(family, list(config_files or []), {}, _task_flag(argv), require_task=False)
    parser.set_defaults(**_coerce(parser, layers.values, layers.sources))
    return parser.format_help()


def _coerce(parser: argparse.ArgumentParser, values: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    """YAML values through the flags' own types (YAML reads ``1e-4`` as a string), unknown keys refused; a value
    of the wrong kind is an error naming its file and key (``my.yaml: r: 'abc' is not an integer``)."""
    actions: dict[str, argparse.Action] = {}
    for action in parser._actions:
        actions.setdefault(action.dest, action)  # --svd_cache before its --no_svd_cache
    coerced = {}
    for key, value in values.items():
        if key not in actions:
            raise ValueError(
                f"{sources.get(key, 'settings')}: {key!r} is not a setting of this family; {_nearest(key, actions)}"
            )
        try:
            coerced[key] = _convert(actions[key], value)
        except _BadValue as bad:
            raise ValueError(f"{sources.get(key, 'settings')}: {key}: {bad}") from None
    return coerced


class _BadValue(Exception):
    """A YAML value of the wrong kind (the message says which)."""


def _convert(action: argparse.Action, value: Any) -> Any:
    """A YAML value as the flag would read it: words through the flag's type; other values checked, not changed."""
    single = action.nargs not in ("+", "*") and (action.type in KINDS or action.choices)
    if isinstance(value, (list, dict)) and single:
        raise _BadValue(f"{value!r} is not {KINDS.get(action.type, 'a single value')}")
    if isinstance(value, list):
        return [_convert_one(action, item) for item in value]
    return _convert_one(action, value)


def _convert_one(action: argparse.Action, value: Any) -> Any:
    convert = action.type
    if isinstance(value, str) and callable(convert):
        try:
            value = convert(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            raise _BadValue(f"{value!r} is not {KINDS.get(convert, getattr(convert, '__name__', 'valid'))}") from None
    elif value is not None and convert in KINDS and not _is_kind(value, convert):
        raise _BadValue(f"{value!r} is not {KINDS[convert]}")
    if action.choices and value is not None and value not in action.choices:
        raise _BadValue(_not_one_of(value, list(action.choices)))
    return value


def _is_kind(value: Any, kind: Callable[..., Any]) -> bool:
    if kind is string_to_bool:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return kind is float or isinstance(value, int) or value.is_integer()


def _nearest(key: Any, choices: Any) -> str:
    key = str(key)
    if key in RENAMED:
        return f"it is now called {RENAMED[key]!r}."
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "see --help (or --help_all)."


def resolve(
    family_name: str,
    argv: list[str] | None = None,
    *,
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The run's settings from the family YAML, ``config_files``, ``overrides`` (a layer for code, e.g.
    a study) and command-line ``argv``; ``ValueError`` naming the setting on any mistake."""
    family = family_named(family_name)
    argv = list(argv or [])
    parser = build_parser(family)
    layers = _merge_layers(family, list(config_files or []), dict(overrides or {}), _task_flag(argv))
    parser.set_defaults(**_coerce(parser, layers.values, layers.sources))
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = unknown[0].split("=")[0]
        raise ValueError(f"unknown flag {flag}; {_nearest(flag.lstrip('-').replace('-', '_'), vars(namespace))}")
    values = vars(namespace)
    flags = _given_flags(argv, parser)
    given = set(layers.values) | flags

    def where(name: str) -> str:
        """How the user set ``name``: ``--name`` (a flag, or a default), or ``my.yaml: name`` (a YAML file)."""
        source = layers.sources.get(name)
        return f"--{name}" if name in flags or source in (None, "overrides") else f"{source}: {name}"

    _check_named_choices(values, where)
    written = _written_training_settings(values, given)
    _apply_global_batch(values, explicit=given)
    deepspeed = _deepspeed_path(values.pop("deepspeed", None))

    def build(kind: type) -> Any:
        names = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: v for k, v in values.items() if k in names})

    try:
        adapter = build(GoatConfig)
    except ConfigError as error:  # GoatConfig's own checks name the setting; add the file that set it
        raise ValueError(_with_source(error, where)) from None
    try:
        data, training = build(family.arguments), build(GoatTrainingArguments)
    except (TypeError, KeyError) as error:  # a value of the wrong kind reaching a dataclass
        raise ValueError(str(error)) from None
    config = RunConfig(family.name, data, adapter, training, deepspeed, written=written)
    validate(config, where)
    return config


def _with_source(error: ConfigError, where: Callable[[str], str]) -> str:
    """``GoatConfig``'s message, prefixed by the YAML file when one set the setting it names."""
    origin = where(error.setting)
    return str(error) if origin.startswith("--") else f"{origin.rsplit(': ', 1)[0]}: {error}"


def _written_training_settings(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The training settings as a user could write them (what ``--print_config`` writes): every one a YAML layer
    or a flag set, and this project's run settings with their defaults, before anything is derived from them
    (``gradient_accumulation_steps`` from ``global_batch_size``, ``dataloader_pin_memory`` on a CPU, ...)."""
    ours = set(vars(GoatTrainingArguments).get("__annotations__", {})) - MACHINE_DEFAULTS
    training = {f.name for f in dataclasses.fields(GoatTrainingArguments) if f.init}
    names = sorted(name for name in training if name in given or (name in ours and values.get(name) is not None))
    return {name: plain(values[name]) for name in names}


POSITIVE = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "logging_steps",
    "max_seq_length",
    "max_new_tokens",
    "num_beams",
)
POSITIVE_WHEN_SET = ("max_train_samples", "max_eval_samples", "save_total_limit", "global_batch_size")
NON_NEGATIVE = (
    "warmup_steps",
    "warmup_ratio",
    "weight_decay",
    "aux_loss_coef",
    "dataloader_num_workers",
    "max_grad_norm",
)


def validate(config: RunConfig, where: Callable[[str], str] | None = None) -> None:
    """Checks of settings that no dataclass makes: ``ValueError`` naming the flag (``where``: the flag or the YAML
    file that set it), before anything loads."""
    where = where or (lambda name: f"--{name}")
    values = config.settings() | {
        k: getattr(config.training, k) for k in POSITIVE + NON_NEGATIVE if hasattr(config.training, k)
    }
    for name in POSITIVE + POSITIVE_WHEN_SET:
        value = values.get(name)
        if value is not None and not value > 0:
            raise ValueError(f"{where(name)} {value}: must be > 0.")
    for name in NON_NEGATIVE:
        if values.get(name) is not None and values[name] < 0:
            raise ValueError(f"{where(name)} {values[name]}: must be >= 0.")
    training = config.training
    if training.max_steps <= 0 and not training.num_train_epochs > 0:
        raise ValueError(f"{where('num_train_epochs')} {training.num_train_epochs}: must be > 0 (or set --max_steps).")
    unknown = [name for name in training.report_to if name not in REPORTERS]
    if unknown:
        raise ValueError(f"{where('report_to')} {unknown[0]!r} is unknown; choose from {', '.join(REPORTERS)}.")
    if plain(training.eval_strategy) != "no" or training.load_best_model_at_end:
        raise ValueError(
            "goat evaluates after every epoch itself and exports the best epoch's adapter (adapter/); "
            "leave --eval_strategy no and --load_best_model_at_end off."
        )
    if training.resume_from_checkpoint and plain(training.save_strategy) == "no":
        raise ValueError("--resume_from_checkpoint needs checkpoints; drop --save_strategy no.")
    quantization = getattr(config.data, "quantization", None)
    if quantization is not None:
        if quantization not in ("4bit", "8bit"):
            raise ValueError(f"--quantization {quantization!r}: choose 4bit or 8bit (or leave it unset).")
        if config.adapter.method in ("full", "full_moe", "kasa"):
            raise ValueError(
                f"--quantization needs an adapter that leaves the base weights alone; method {config.adapter.method!r} "
                "trains or truncates them. Use a LoRA method (goat, lora, molora, ...) or drop --quantization."
            )
        if (
            config.deepspeed
            and json.loads(Path(config.deepspeed).read_text()).get("zero_optimization", {}).get("stage") == 3
        ):
            raise ValueError(
                "--quantization cannot run under DeepSpeed ZeRO-3 (it cannot partition 4-bit weights); use zero2."
            )
    if training.resume_from_checkpoint and training.overwrite_output_dir:
        raise ValueError(
            "--resume_from_checkpoint continues a run and --overwrite_output_dir starts it over; pass one of them."
        )


def _check_named_choices(values: dict[str, Any], where: Callable[[str], str]) -> None:
    """transformers' own error names neither the setting nor the choices; this one also guesses the intended name."""
    for name, kind in NAMED_CHOICES.items():
        value = plain(values.get(name))
        choices = [choice.value for choice in kind]
        if value is not None and value not in choices:
            raise ValueError(f"{where(name)} {_not_one_of(value, choices)}.")


def _given_flags(argv: list[str], parser: argparse.ArgumentParser) -> set[str]:
    dests = {}
    for action in parser._actions:
        for option in action.option_strings:
            dests[option] = action.dest
    return {dests[a.split("=")[0]] for a in argv if a.split("=")[0] in dests}


def world_size() -> int:
    """The number of processes of this launch (torchrun's ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _apply_global_batch(values: dict[str, Any], explicit: set[str]) -> None:
    """``global_batch_size`` -> ``gradient_accumulation_steps`` for this world size (an explicit, different GA is an error)."""
    total = values.get("global_batch_size")
    if total is None:
        return
    world = world_size()
    per_step = values["per_device_train_batch_size"] * world
    if per_step <= 0 or total <= 0:
        return  # validate() names the setting
    if total % per_step:
        raise ValueError(
            f"global_batch_size {total} is not a multiple of per_device_train_batch_size {values['per_device_train_batch_size']} "
            f"x {world} processes; change per_device_train_batch_size or global_batch_size."
        )
    steps = max(1, total // per_step)
    if "gradient_accumulation_steps" in explicit and values["gradient_accumulation_steps"] != steps:
        raise ValueError(
            f"gradient_accumulation_steps {values['gradient_accumulation_steps']} contradicts global_batch_size {total} "
            f"(= {steps} steps of {per_step}); set one of them (global_batch_size: null to use gradient_accumulation_steps)."
        )
    values["gradient_accumulation_steps"] = steps


def _deepspeed_path(value: str | None) -> str | None:
    """``zero2``/``zero3`` name the packaged configs; anything else is a JSON file's path."""
    if value in DEEPSPEED_PRESETS:
        return str(resources.files("goat").joinpath("configs", "deepspeed", f"{value}.json"))
    if value is not None and not Path(value).is_file():
        raise ValueError(f"--deepspeed {value}: no such file (or use zero2 / zero3, the packaged configs).")
    return value


def print_config(config: RunConfig, stream: Any = None) -> None:
    """The run's settings as a flat YAML file, to ``stream`` (stdout): usable as ``--config`` under any number of
    processes, since it holds only settings a user could write (nothing derived, no machine-dependent default)."""
    stream = stream or sys.stdout
    stream.write(
        f"# python -m goat.train {config.family}: this run's settings (flat; usable as --config). Settings not\n"
        "# listed keep their default; gradient_accumulation_steps follows from global_batch_size per launch.\n"
    )
    training = config.written or {
        k: v for k, v in config.settings().items() if k in {f.name for f in dataclasses.fields(config.training)}
    }
    settings = {**dataclasses.asdict(config.data), **config.adapter.to_dict(), **training}
    yaml.safe_dump(settings, stream, sort_keys=False, default_flow_style=None)


__all__ = [
    "FAMILIES",
    "FlagParser",
    "RunConfig",
    "build_parser",
    "family_tasks",
    "flag_names",
    "help_text",
    "print_config",
    "resolve",
]
