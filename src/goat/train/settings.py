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

A key that is no setting of the family is an error naming the nearest one.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import SchedulerType

from goat.adapters.config import GoatConfig
from goat.train.arguments import GoatTrainingArguments
from goat.train.families import FAMILIES, Family, family_named
from goat.train.reporters import REPORTERS
from goat.train.run_config import RunConfig, plain

# The TrainingArguments flags a GOAT run uses; --help lists these, --help_all every one.
TRAINING_FLAGS_SHOWN = frozenset({
    "output_dir", "run_name", "seed", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "warmup_steps", "warmup_ratio", "lr_scheduler_type",
    "weight_decay", "max_grad_norm", "optim", "bf16", "fp16", "gradient_checkpointing", "deepspeed", "torch_compile",
    "logging_steps", "report_to", "project", "save_strategy", "save_steps", "save_total_limit", "resume_from_checkpoint",
    "dataloader_num_workers",
})  # fmt: skip
# Earlier names of settings, for the error message only (nothing is translated).
RENAMED = {
    "lr": "learning_rate", "epochs": "num_train_epochs", "rank": "r", "alpha": "lora_alpha", "experts": "num_experts",
    "dropout": "lora_dropout", "batch_size": "global_batch_size", "per_device_batch": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps", "eval_batch": "per_device_eval_batch_size", "scheduler": "lr_scheduler_type",
    "max_length": "max_seq_length", "model": "model_name_or_path", "dataset_id": "dataset_name",
    "dataloader_workers": "dataloader_num_workers", "resume": "resume_from_checkpoint",
}  # fmt: skip
DEEPSPEED_PRESETS = ("zero2", "zero3")


# ------------------------------------------------------------------------------ YAML layers
def family_yaml(family: str) -> dict[str, Any]:
    """``configs/<family>.yaml`` from inside the installed package."""
    text = resources.files("goat").joinpath("configs", f"{family}.yaml").read_text()
    return yaml.safe_load(text) or {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: no such file.")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: a YAML mapping of setting: value is expected.")
    return data


def _layers(data: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(defaults, per-task blocks) of a YAML file: nested (``defaults:``/``tasks:``) or flat."""
    if "defaults" in data or "tasks" in data:
        extra = sorted(set(data) - {"defaults", "tasks"})
        if extra:
            raise ValueError(f"{source}: with defaults:/tasks: sections, settings go inside them, not at the top level ({extra}).")
        return dict(data.get("defaults") or {}), {k: dict(v or {}) for k, v in (data.get("tasks") or {}).items()}
    return dict(data), {}


@dataclass
class _Layers:
    """The YAML layers of a run, in precedence order, and the task they select."""

    task: str
    values: dict[str, Any]  # merged, later layers win
    sources: dict[str, str]  # setting -> the layer that set it (for error messages)


def _merge_layers(
    family: Family, config_files: list[str], overrides: dict[str, Any], cli_task: str | None, *, require_task: bool = True
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
        raise ValueError(f"--task {task!r} is not in {family.name}.yaml; choose one of {', '.join(sorted(known_tasks))}.")
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
class RunParser(HfArgumentParser):
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
        parser.add_argument(*names, type=_scalar, nargs="+" if listed else None, default=default, help=field.metadata.get("help"))


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
    task_flag = argparse.ArgumentParser(add_help=False)
    task_flag.add_argument("--task")
    return task_flag.parse_known_args(argv)[0].task


def help_text(family_name: str, argv: list[str], *, config_files: list[str] | None = None, show_all: bool = False) -> str:
    """``--help`` (``show_all``: with every TrainingArguments flag), defaults as the layers resolve them."""
    family = family_named(family_name)
    parser = build_parser(family, show_all=show_all)
    layers = _merge_layers(family, list(config_files or []), {}, _task_flag(argv), require_task=False)
    parser.set_defaults(**_coerce(parser, layers.values, layers.sources))
    return parser.format_help()


def _coerce(parser: argparse.ArgumentParser, values: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    """YAML values through the flags' own types (YAML reads ``1e-4`` as a string), unknown keys refused."""
    actions = {action.dest: action for action in parser._actions}
    coerced = {}
    for key, value in values.items():
        if key not in actions:
            raise ValueError(f"{sources.get(key, 'settings')}: {key!r} is not a setting of this family; {_nearest(key, actions)}")
        convert = actions[key].type
        if callable(convert) and isinstance(value, str):
            value = convert(value)
        elif callable(convert) and isinstance(value, list):
            value = [convert(v) if isinstance(v, str) else v for v in value]
        coerced[key] = value
    return coerced


def _nearest(key: str, choices: Any) -> str:
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
    _check_scheduler(values.get("lr_scheduler_type"))
    _apply_global_batch(values, explicit=set(layers.values) | _given_flags(argv, parser))
    deepspeed = _deepspeed_path(values.pop("deepspeed", None))

    def build(kind: type) -> Any:
        names = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: v for k, v in values.items() if k in names})

    try:
        adapter, data, training = build(GoatConfig), build(family.arguments), build(GoatTrainingArguments)
    except (TypeError, KeyError) as error:  # a value of the wrong kind reaching a dataclass
        raise ValueError(str(error)) from None
    config = RunConfig(family.name, data, adapter, training, deepspeed)
    validate(config)
    return config


POSITIVE = ("learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
            "logging_steps", "max_seq_length", "max_new_tokens", "num_beams")  # fmt: skip
POSITIVE_WHEN_SET = ("max_train_samples", "max_eval_samples", "save_total_limit", "global_batch_size")
NON_NEGATIVE = ("warmup_steps", "warmup_ratio", "weight_decay", "aux_loss_coef", "dataloader_num_workers", "max_grad_norm")


def validate(config: RunConfig) -> None:
    """Checks of settings that no dataclass makes: ``ValueError`` naming the flag, before anything loads."""
    values = config.settings() | {k: getattr(config.training, k) for k in POSITIVE + NON_NEGATIVE if hasattr(config.training, k)}
    for name in POSITIVE + POSITIVE_WHEN_SET:
        value = values.get(name)
        if value is not None and not value > 0:
            raise ValueError(f"--{name} {value}: must be > 0.")
    for name in NON_NEGATIVE:
        if values.get(name) is not None and values[name] < 0:
            raise ValueError(f"--{name} {values[name]}: must be >= 0.")
    training = config.training
    if training.max_steps <= 0 and not training.num_train_epochs > 0:
        raise ValueError(f"--num_train_epochs {training.num_train_epochs}: must be > 0 (or set --max_steps).")
    unknown = [name for name in training.report_to if name not in REPORTERS]
    if unknown:
        raise ValueError(f"--report_to {unknown[0]!r} is unknown; choose from {', '.join(REPORTERS)}.")
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
        if config.deepspeed and json.loads(Path(config.deepspeed).read_text()).get("zero_optimization", {}).get("stage") == 3:
            raise ValueError("--quantization cannot run under DeepSpeed ZeRO-3 (it cannot partition 4-bit weights); use zero2.")
    if training.resume_from_checkpoint and training.overwrite_output_dir:
        raise ValueError("--resume_from_checkpoint continues a run and --overwrite_output_dir starts it over; pass one of them.")


def _check_scheduler(name: Any) -> None:
    """transformers' own error lists the choices; this one also guesses the intended name."""
    choices = [kind.value for kind in SchedulerType]
    if isinstance(name, str) and name not in choices:
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"--lr_scheduler_type {name!r} is unknown; {hint}choose one of {', '.join(choices)}.")


def _given_flags(argv: list[str], parser: argparse.ArgumentParser) -> set[str]:
    dests = {}
    for action in parser._actions:
        for option in action.option_strings:
            dests[option] = action.dest
    return {dests[a.split("=")[0]] for a in argv if a.split("=")[0] in dests}


def _apply_global_batch(values: dict[str, Any], explicit: set[str]) -> None:
    """``global_batch_size`` -> ``gradient_accumulation_steps`` for this world size (an explicit, different GA is an error)."""
    total = values.get("global_batch_size")
    if total is None:
        return
    world = int(os.environ.get("WORLD_SIZE", "1"))
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
    """The resolved settings as a flat YAML file (usable as ``--config``), to ``stream`` (stdout)."""
    stream = stream or sys.stdout
    stream.write(
        f"# python -m goat.train {config.family}: resolved settings (flat; usable as --config). transformers\n"
        "# TrainingArguments not listed here have their transformers default.\n"
    )
    settings = {k: v for k, v in config.settings().items() if k != "family"}
    yaml.safe_dump(settings, stream, sort_keys=False, default_flow_style=None)


__all__ = ["FAMILIES", "RunConfig", "build_parser", "family_tasks", "flag_names", "help_text", "print_config", "resolve"]
