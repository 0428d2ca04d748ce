"""Every flag is checked before any model, tokenizer or dataset loads: one line each, in seconds."""

from __future__ import annotations

import time

import pytest

import goat.train.runner as runner
from goat.train.__main__ import main


@pytest.fixture
def nothing_may_load(monkeypatch):
    def refuse(family):
        raise AssertionError(f"the {family} builder ran: validation must fail before anything loads")

    monkeypatch.setattr(runner, "builder_for", refuse)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr=-1e-3"], "--lr -0.001: must be > 0"),
        (["--epochs", "0"], "--epochs 0.0: must be > 0"),
        (["--max-train-samples", "0"], "--max-train-samples 0: must be > 0"),
        (["--max-eval-samples", "-5"], "--max-eval-samples -5: must be > 0"),
        (["--per-device-batch", "0"], "--per-device-batch 0: must be > 0"),
        (["--batch-size", "0"], "--batch-size 0: must be > 0"),
        (["--warmup-steps", "-1"], "--warmup-steps -1: must be >= 0"),
        (["--scheduler", "cosin"], "--scheduler 'cosin' is unknown; did you mean 'cosine'?"),
        (["--report-to", "wandbb"], "--report-to 'wandbb' is unknown"),
        (["--resume", "--overwrite-output-dir"], "pass one of them"),
        (["--rank", "7"], "divisible"),
        (["--deepspeed", "nope.json"], "--deepspeed nope.json: no such file"),
    ],
)
def test_bad_flags_fail_in_one_line_before_loading(flags, message, tmp_path, capsys, nothing_may_load):
    started = time.monotonic()
    code = main(["glue", "--task", "rte", *flags, "--output-dir", str(tmp_path / "o"), "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("flag", ["--output-dir", "--results-dir"])
def test_an_unwritable_folder_fails_before_loading(flag, tmp_path, capsys, nothing_may_load):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    other = "--results-dir" if flag == "--output-dir" else "--output-dir"
    code = main(["glue", "--task", "rte", flag, str(blocker / "sub"), other, str(tmp_path / "ok")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{flag} {blocker / 'sub'} is not a writable folder" in err[0]
