"""The package's architecture holds: no import circles, a library that imports nothing of the
application, and a silent ``import goat`` that loads no heavy stack until a name is used."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "open_clip", "trl")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every goat module's imports of goat modules: top-level, inside functions and under TYPE_CHECKING.

    ``from goat.x import y`` counts as an import of ``goat.x.y`` when that is a module, else of ``goat.x``.
    """
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "goat.adapters.injection" in graph["goat.adapters.state"]
    assert "goat.adapters.peft_layers" in graph["goat.adapters.injection"]  # a function-level import
    assert "goat.adapters.model" in graph["goat"]  # under TYPE_CHECKING
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_the_adapter_library_imports_nothing_of_the_application():
    graph = import_graph()
    outside = {
        m: sorted(d for d in deps if not d.startswith("goat.adapters"))
        for m, deps in graph.items()
        if m.startswith("goat.adapters")
    }
    assert {m: d for m, d in outside.items() if d} == {}


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)


def loaded(code: str) -> list[str]:
    result = run_python(code + f"\nimport sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    return result.stdout.strip().splitlines()[-1], result.stderr


def test_import_goat_is_silent_and_loads_no_heavy_stack():
    modules, stderr = loaded("import goat")
    assert modules == "[]" and stderr == ""


def test_a_goat_adapter_loads_no_peft_and_a_lora_adapter_does():
    build = (
        "import torch, goat\n"
        "model = torch.nn.Sequential(torch.nn.Linear(16, 16))\n"
        "goat.get_goat_model(model, goat.GoatConfig(method={method!r}, r=4, num_experts=2, top_k=1, target_modules=['0']))"
    )
    modules, _ = loaded(build.format(method="goat"))
    assert modules == "['torch']"
    modules, _ = loaded(build.format(method="lora"))
    assert "'peft'" in modules


@pytest.mark.parametrize("family", ["glue", "math", "vision"])
def test_help_loads_no_task_stack(family, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys; sys.argv = ['goat.train', sys.argv[1], '--help'];"
            "\ntry: runpy.run_module('goat.train', run_name='__main__')\nexcept SystemExit: pass"
            "\nprint(sorted(m for m in sys.modules if m in ('datasets', 'open_clip', 'goat.train.causal', 'goat.train.glue',"
            " 'goat.train.vision', 'goat.eval.generation')))",
            family,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},  # an empty help cache: the help is built, not read back
    )
    assert "--learning_rate" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert result.stderr == ""
