"""``--help`` read back from the cache is the text the live path builds, and nothing stale is read back:
each input of the text (task, config file bytes, package files, terminal width) is changed in turn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from goat.train import help_cache, settings
from goat.train.__main__ import main
from goat.train.families import FAMILIES


def live_then_cached(argv: list[str], capsys, monkeypatch) -> tuple[str, str]:
    """The help of ``argv`` built live (and stored), then printed again with building it made impossible."""
    assert main(argv) == 0
    live = capsys.readouterr().out
    with monkeypatch.context() as patch:
        patch.setattr(settings, "help_text", _must_not_build)
        assert main(argv) == 0
        cached = capsys.readouterr().out
    return live, cached


def _must_not_build(*args, **kwargs):
    raise AssertionError("the help was built again instead of read back")


@pytest.mark.parametrize(
    "argv",
    [
        ["glue", "--help"],
        ["glue", "--task", "rte", "--help"],
        ["vision", "-h"],
        ["commonsense", "--task=tweet_sentiment", "--help"],
        ["math", "--learning_rate", "1", "--help"],  # flags other than --task do not change the help
        ["--help"],  # the usage line
    ],
)
def test_the_stored_help_is_the_live_help(argv, capsys, monkeypatch):
    live, cached = live_then_cached(argv, capsys, monkeypatch)
    assert "--learning_rate" in live or live.startswith("usage: python -m goat.train {glue,")
    assert cached == live
    assert len(list(help_cache.CACHE_DIR.glob("*.txt"))) == 1


def test_a_changed_config_file_is_not_answered_from_the_cache(tmp_path, capsys, monkeypatch):
    config = tmp_path / "sweep.yaml"
    config.write_text("learning_rate: 0.0123\n")
    argv = ["glue", "--config", str(config), "--help"]
    live, cached = live_then_cached(argv, capsys, monkeypatch)
    assert cached == live and "0.0123" in live
    config.write_text("learning_rate: 0.0456\n")  # same path, other bytes
    assert main(argv) == 0
    changed = capsys.readouterr().out
    assert "0.0456" in changed and "0.0123" not in changed


def test_each_task_and_terminal_width_has_its_own_entry(capsys, monkeypatch):
    texts = {}
    for task, columns in (("rte", "80"), ("cola", "80"), ("rte", "150")):
        monkeypatch.setenv("COLUMNS", columns)  # argparse and the key both read the terminal width
        live, cached = live_then_cached(["glue", "--task", task, "--help"], capsys, monkeypatch)
        assert cached == live
        texts[task, columns] = live
    assert len(set(texts.values())) == 3
    assert len(list(help_cache.CACHE_DIR.glob("*.txt"))) == 3


def test_the_package_digest_follows_every_source_file_and_no_bytecode(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "settings.py").write_text("x = 1\n")
    (tmp_path / "configs" / "glue.yaml").write_text("defaults: {}\n")
    monkeypatch.setattr(help_cache, "_PACKAGE_DIR", tmp_path)
    first = help_cache._package_digest()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "settings.cpython.pyc").write_bytes(b"\0")
    assert help_cache._package_digest() == first
    (tmp_path / "configs" / "glue.yaml").write_text("defaults: {r: 8}\n")
    assert help_cache._package_digest() != first


def test_the_key_names_only_plain_help_requests(tmp_path):
    assert help_cache.cache_key(["glue", "--help"]) is not None
    assert help_cache.cache_key(["glue", "--task", "rte"]) is None  # a run, not a help
    assert help_cache.cache_key(["glue", "--help_all"]) is None  # shows use_cpu, whose default needs torch
    assert help_cache.cache_key(["glue", "--help_all", "--help"]) is None
    assert help_cache.cache_key(["--help"]) is not None  # the usage line
    assert help_cache.cache_key(["-x", "--help"]) is None  # an error (exit 2), not the usage line
    assert help_cache.cache_key([]) is None
    assert help_cache.cache_key(["glue", "--config", str(tmp_path / "missing.yaml"), "--help"]) is None
    assert help_cache.cache_key(["glue", "--help"]) != help_cache.cache_key(["vision", "--help"])


def test_the_cached_help_shows_no_setting_whose_default_depends_on_the_gpu(capsys):
    assert main(["glue", "--help"]) == 0
    assert "--use_cpu" not in capsys.readouterr().out


def test_a_damaged_entry_or_an_unwritable_folder_only_costs_speed(tmp_path, capsys, monkeypatch):
    argv = ["glue", "--help"]
    assert main(argv) == 0
    live = capsys.readouterr().out
    (entry,) = help_cache.CACHE_DIR.glob("*.txt")
    entry.write_bytes(b"\xff\xfe not text")
    assert main(argv) == 0 and capsys.readouterr().out == live  # built again, and stored again
    assert help_cache.lookup(argv) + "\n" == live
    entry.unlink()
    entry.mkdir()  # a folder where the entry should be: neither read nor written
    assert main(argv) == 0 and capsys.readouterr().out == live
    assert [path.name for path in help_cache.CACHE_DIR.iterdir()] == [entry.name]  # no partial file left
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setattr(help_cache, "CACHE_DIR", blocker / "help")
    assert main(argv) == 0 and capsys.readouterr().out == live


def test_the_oldest_entries_beyond_the_limit_are_deleted(capsys, monkeypatch):
    monkeypatch.setattr(help_cache, "KEPT_ENTRIES", 2)
    for task in ("rte", "cola", "sst2"):
        assert main(["glue", "--task", task, "--help"]) == 0
    capsys.readouterr()
    assert help_cache.lookup(["glue", "--task", "rte", "--help"]) is None
    assert help_cache.lookup(["glue", "--task", "sst2", "--help"]) is not None
    assert len(list(help_cache.CACHE_DIR.glob("*.txt"))) == 2


def test_a_stored_usage_line_does_not_answer_a_bad_command(capsys):
    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert main(["-x", "--help"]) == 2 and capsys.readouterr().out == usage  # the usage, as an error


def test_an_unknown_family_is_not_stored(capsys):
    assert main(["glu", "--help"]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert not list(help_cache.CACHE_DIR.glob("*"))


def test_fill_stores_every_family_and_task():
    stored = help_cache.fill()
    tasks = sum(1 + len(settings.family_yaml(family).get("tasks") or {}) for family in FAMILIES)
    assert stored == 1 + tasks == len(list(help_cache.CACHE_DIR.glob("*.txt")))
    argv = ["vision", "--task", next(iter(settings.family_yaml("vision")["tasks"])), "--help"]
    assert help_cache.lookup(argv) == settings.help_text("vision", argv[1:])


def test_a_second_help_in_a_fresh_interpreter_imports_no_transformers(tmp_path):
    probe = (
        "import sys\nfrom goat.train.__main__ import main\nmain(['glue', '--help'])\n"
        "print('transformers imported:', 'transformers' in sys.modules)"
    )
    environment = {**os.environ, "HOME": str(tmp_path)}  # the cache lives under the home folder
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, check=True, env=environment
        )
        for _ in range(2)
    ]
    assert runs[0].stdout.splitlines()[-1] == "transformers imported: True"
    assert runs[1].stdout.splitlines()[-1] == "transformers imported: False"
    assert runs[1].stdout == runs[0].stdout.replace("transformers imported: True", "transformers imported: False")
    assert len(list(Path(tmp_path, ".cache", "goat", "help").glob("*.txt"))) == 1
