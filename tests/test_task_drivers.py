"""The drivers (glue.sh, vit.sh, ..., scripts/<study>.sh, scripts/claims.sh), scripts/launch.sh and
scripts/common.sh: which command each one runs, what DRY_RUN=1 prints and what --help lists.

`python` and `torchrun` are replaced by recorders (or by stubs that must not be called) on PATH, so nothing
trains, and nothing here imports torch.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = {
    "glue.sh": "glue",
    "vit.sh": "vision",
    "math.sh": "math",
    "code.sh": "code",
    "chat.sh": "chat",
    "commonsense.sh": "commonsense",
}
SWEEP_VARIABLES = ("METHOD", "TASKS", "SEEDS", "OUTPUT_DIR", "RESULTS_DIR")


@pytest.fixture
def recorders(tmp_path) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("python", "torchrun"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        (bin_dir / name).chmod(0o755)
    unset = (*SWEEP_VARIABLES, "GPUS", "NNODES", "DEEPSPEED", "DRY_RUN")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def _run(script: str, env: dict[str, str], *args: str) -> list[str]:
    subprocess.run(["bash", str(ROOT / script), *args], env=env, check=True, capture_output=True, text=True)
    return (Path(env["PATH"].split(":")[0]).parent / "calls.log").read_text().splitlines()


@pytest.mark.parametrize(("script", "family"), DRIVERS.items())
def test_driver_passes_only_its_sweep_variables_then_reports(recorders, script, family):
    env, _ = recorders
    calls = _run(script, env)
    first = calls[0]
    assert first.startswith(f"python -m goat.train {family} --task ") and "--deepspeed" not in first
    assert first.endswith(
        "--method goat --seed 0 --output_dir outputs --results_dir results"
    )  # nothing else: YAML rules
    if family != "chat":  # chat ends by printing how to run the MT-Bench judge instead
        assert calls[-1] == f"python -m goat.report --family {family} --results_dir results"


@pytest.mark.parametrize("script", DRIVERS)
def test_environment_overrides_and_flags_pass_through(recorders, script):
    env, _ = recorders
    env = {**env, "METHOD": "lora", "SEEDS": "3 4", "TASKS": "rte", "OUTPUT_DIR": "o", "RESULTS_DIR": "r"}
    calls = [c for c in _run(script, env, "--learning_rate", "5e-4", "--resume") if "goat.train" in c]
    assert len(calls) == 2  # one task x two seeds
    for call, seed in zip(calls, ("3", "4")):
        assert (
            f"--task rte --method lora --seed {seed} --output_dir o --results_dir r --learning_rate 5e-4 --resume"
            in call
        )


def test_launcher_single_node_multi_gpu_and_multi_node(recorders):
    env, log = recorders

    def launch(**variables: str) -> str:
        log.unlink(missing_ok=True)
        subprocess.run(
            ["bash", "-c", "source scripts/launch.sh && goat_train glue --task rte --seed 1"],
            env={**env, **variables},
            check=True,
            cwd=ROOT,
        )
        return log.read_text().strip()

    assert launch() == "python -m goat.train glue --task rte --seed 1"
    assert launch(GPUS="2") == (
        "torchrun --standalone --nproc-per-node=2 -m goat.train glue --deepspeed zero2 --task rte --seed 1"
    )
    assert launch(GPUS="8", NNODES="2", NODE_RANK="1", MASTER_ADDR="node0", MASTER_PORT="29600", DEEPSPEED="zero3") == (
        "torchrun --nnodes=2 --node-rank=1 --master-addr=node0 --master-port=29600 --nproc-per-node=8 "
        "-m goat.train glue --deepspeed zero3 --task rte --seed 1"
    )


# DRY_RUN=1 and --help (scripts/common.sh), for every driver. The drivers run from a copy of themselves in an
# empty tree, with `python` and `torchrun` stubs that record a call if one happens (none must).

STUDIES = {
    "ablation.sh": "goat.studies.ablation",
    "experts_sweep.sh": "goat.studies.experts_sweep",
    "loss_curves.sh": "goat.studies.loss_curves",
    "lr_sweep.sh": "goat.studies.lr_sweep",
    "rank_sweep.sh": "goat.studies.rank_sweep",
    "routing.sh": "goat.studies.routing",
    "scaling_rank.sh": "goat.studies.scaling_rank",
    "segments.sh": "goat.studies.segments",
}
ALL_DRIVERS = [*DRIVERS, *(f"scripts/{name}" for name in STUDIES), "scripts/claims.sh"]
NOT_DRIVERS = {"scripts/launch.sh", "scripts/common.sh", "scripts/setup.sh", "scripts/ledger_worktree.sh"}
# an extra flag's value that needs quoting: spaces, both quotes, $, a backtick, a glob, a semicolon
ODD = """it's a "quoted" value with spaces, $HOME, `id`, * and ;"""
END = "--end-of-call--"
ASSIGNMENT = re.compile(r"""^([A-Z][A-Z0-9_]*)=(?:"([^"$]*)"|'([^']*)'|([^\s"'$(#]*))(?:\s|$)""", re.MULTILINE)


def _sources(script: str) -> list[Path]:
    """The driver and the helpers it sources, whose variables its --help must list."""
    files = [ROOT / script]
    if "source scripts/launch.sh" in files[0].read_text():
        files.append(ROOT / "scripts" / "launch.sh")
    return [*files, ROOT / "scripts" / "common.sh"]


def _variables(script: str) -> dict[str, str]:
    """Every variable the driver reads, from its own text and its helpers': NAME -> default as written."""
    found: dict[str, str] = {}
    for path in _sources(script):
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        for match in re.finditer(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}", text):  # anywhere, not only NAME=... lines
            found.setdefault(match[1], match[2])
        for match in ASSIGNMENT.finditer(text):  # NAME=value set in the file (the study drivers' grids)
            found.setdefault(match[1], next(group for group in match.groups()[1:] if group is not None))
    return found


READ = sorted({name for script in ALL_DRIVERS for name in _variables(script)} | {"PYTHON"})


def _argv(command: str, *extra: str) -> list[str]:
    return [*command.split(), *extra]


class Sandbox:
    def __init__(self, tmp_path: Path):
        self.root = tmp_path
        self.repo = tmp_path / "repo"
        (self.repo / "scripts").mkdir(parents=True)
        for path in [*ROOT.glob("*.sh"), *(ROOT / "scripts").glob("*.sh")]:
            shutil.copy2(path, self.repo / path.relative_to(ROOT))
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.calls = tmp_path / "calls"
        for name in ("python", "python3", "torchrun", "deepspeed"):  # each call: its argv, NUL-separated, then END
            (self.bin / name).write_text(f"#!/bin/sh\nprintf '%s\\0' {name} \"$@\" {END} >> '{self.calls}'\n")
            (self.bin / name).chmod(0o755)
        self.env = {k: v for k, v in os.environ.items() if k not in READ}
        self.env["PATH"] = f"{self.bin}:{os.environ['PATH']}"

    def tree(self) -> set[Path]:
        return set(self.root.rglob("*"))

    def run(self, script: str, *args: str, **variables: str) -> subprocess.CompletedProcess:
        """`bash <copy of script> ARGS` from the sandbox's root (so a relative output folder would show)."""
        argv = ["bash", str(self.repo / script), *args]
        env = {**self.env, **variables}
        return subprocess.run(argv, check=False, env=env, cwd=self.root, capture_output=True, text=True)

    def recorded(self) -> list[list[str]]:
        calls: list[list[str]] = [[]]
        for field in self.calls.read_text().split("\0")[:-1] if self.calls.exists() else []:
            if field == END:
                calls.append([])
            else:
                calls[-1].append(field)
        return calls[:-1]


@pytest.fixture
def sandbox(tmp_path) -> Sandbox:
    return Sandbox(tmp_path)


def _dry_run(sandbox: Sandbox, script: str, *args: str, **variables: str) -> list[str]:
    """DRY_RUN=1 bash SCRIPT ARGS: its stdout lines, after checking rc 0, silence, no call, nothing written."""
    before = sandbox.tree()
    result = sandbox.run(script, *args, DRY_RUN="1", **variables)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert sandbox.recorded() == []  # neither python nor torchrun ran
    assert sandbox.tree() == before  # no outputs/, results/, or anything else
    return result.stdout.splitlines()


def _split(lines: list[str], script: str) -> tuple[list[list[str]], list[str] | None]:
    """The printed commands (argv each) and the report step's (None when the driver has none)."""
    if script == "chat.sh":  # ends by printing how to run the MT-Bench judge instead of a report
        assert lines[-3].startswith("MT-Bench answers: ")
        return [shlex.split(line) for line in lines[:-3]], None
    if "# report step" in lines:
        assert lines[-2] == "# report step"
        return [shlex.split(line) for line in lines[:-2]], shlex.split(lines[-1])
    return [shlex.split(line) for line in lines], None


def test_every_driver_is_covered():
    found = {p.name for p in ROOT.glob("*.sh")} | {f"scripts/{p.name}" for p in (ROOT / "scripts").glob("*.sh")}
    assert found - NOT_DRIVERS == set(ALL_DRIVERS)


@pytest.mark.parametrize(("script", "family"), DRIVERS.items())
def test_dry_run_prints_one_launch_per_task_and_seed(sandbox, script, family):
    variables = {"GPUS": "8", "DEEPSPEED": "zero3", "SEEDS": "0 1", "TASKS": "rte mrpc", "METHOD": "lora"}
    flags = ("--learning_rate", "5e-4", "--run_name", ODD)
    commands, report = _split(_dry_run(sandbox, script, *flags, **variables, OUTPUT_DIR="o", RESULTS_DIR="r"), script)
    launch = f"torchrun --standalone --nproc-per-node=8 -m goat.train {family} --deepspeed zero3"
    assert commands == [
        _argv(f"{launch} --task {task} --method lora --seed {seed} --output_dir o --results_dir r", *flags)
        for task in ("rte", "mrpc")
        for seed in ("0", "1")
    ]
    if family != "chat":
        assert report == _argv(f"python -m goat.report --family {family} --results_dir r")


@pytest.mark.parametrize(("script", "family"), DRIVERS.items())
def test_dry_run_on_one_process_and_on_several_nodes(sandbox, script, family):
    run = "--task t --method goat --seed 0 --output_dir outputs --results_dir results"
    commands, _ = _split(_dry_run(sandbox, script, TASKS="t"), script)
    assert commands == [_argv(f"python -m goat.train {family} {run}")]
    nodes = {"GPUS": "8", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29600"}
    commands, _ = _split(_dry_run(sandbox, script, "--resume", TASKS="t", DEEPSPEED="my ds.json", **nodes), script)
    launch = "torchrun --nnodes=2 --node-rank=1 --master-addr=node0 --master-port=29600 --nproc-per-node=8"
    assert commands == [
        [*_argv(f"{launch} -m goat.train {family} --deepspeed"), "my ds.json", *_argv(f"{run} --resume")]
    ]


@pytest.mark.parametrize(("script", "module"), STUDIES.items())
def test_dry_run_of_a_study_prints_its_one_command(sandbox, script, module):
    (paper,), _ = _split(_dry_run(sandbox, f"scripts/{script}"), script)
    assert paper[:3] == ["python", "-m", module] and "--tasks" in paper and "--smoke" not in paper
    (smoke,), _ = _split(_dry_run(sandbox, f"scripts/{script}", SMOKE="1", PYTHON="/opt/my python"), script)
    assert smoke[:4] == ["/opt/my python", "-m", module, "--smoke"] and "--tasks" not in smoke


def test_dry_run_of_the_claims_ledger(sandbox):
    lines = _dry_run(sandbox, "scripts/claims.sh", CLAIMS="1 7", WORKERS="3", PLAN="1")
    assert _split(lines, "claims.sh") == ([_argv("python -m goat.claims --claims 1 7 --workers 3 --plan")], None)


@pytest.mark.parametrize("script", ALL_DRIVERS)
def test_dry_run_prints_exactly_what_the_driver_runs(sandbox, script):
    """Without DRY_RUN the recorders see the same argv lists, and pasting the printed lines into bash
    reproduces them, odd quoting, a newline and a tab included."""
    args = ("--run_name", ODD, "--note", "two\nlines\tand a tab") if script in DRIVERS else ()
    variables = {"GPUS": "2", "SEEDS": "0 1"}
    printed = _dry_run(sandbox, script, *args, **variables)
    commands = [line for line in printed if not line.startswith(("#", "MT-Bench", "fastchat/", "(GPT-4"))]
    for line in commands:
        assert subprocess.run(["bash", "-c", line], check=False, env=sandbox.env, cwd=sandbox.root).returncode == 0
    pasted = sandbox.recorded()
    sandbox.calls.unlink(missing_ok=True)
    result = sandbox.run(script, *args, **variables)
    assert result.returncode == 0, result.stderr
    assert sandbox.recorded() == pasted and len(pasted) == len(commands) >= 1


@pytest.mark.parametrize("script", ALL_DRIVERS)
def test_help_lists_every_variable_with_its_default(sandbox, script):
    before = sandbox.tree()
    result = sandbox.run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and sandbox.recorded() == [] and sandbox.tree() == before
    assert sandbox.run(script, "-h").stdout == result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Usage: ")
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("Variables of ")) :]  # after the header
    for name, default in _variables(script).items():
        (line,) = [line for line in lines if line.startswith(f"  {name}=")]
        if "$" not in default:  # not computed when the driver runs: the default itself, shell-quoted
            assert shlex.split(line.split("  #")[0]) == [f"{name}={default}"]
    if script in DRIVERS:
        assert f"python -m goat.train {DRIVERS[script]} --help" in result.stdout
    else:
        module = STUDIES.get(script.removeprefix("scripts/"), "goat.claims")
        assert f"python -m {module} --help" in result.stdout


def test_help_wins_over_other_flags_and_shows_the_environment(sandbox):
    result = sandbox.run("glue.sh", "--learning_rate", "5e-4", "--help", METHOD="lora")
    assert result.returncode == 0 and sandbox.recorded() == []  # the trainer's --help and goat.report never ran
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("  METHOD=goat")]
    assert "# now lora;" in line
