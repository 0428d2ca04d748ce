"""Every flag is checked before any model, tokenizer or dataset loads: one line each, in seconds."""

from __future__ import annotations

import time

import pytest

import goat.train.runner as runner
from goat.train.__main__ import main
from goat.train.bundle import Family


@pytest.fixture
def nothing_may_load(monkeypatch):
    def refuse(name):
        def build(config):
            raise AssertionError(f"the {name} builder ran: validation must fail before anything loads")

        return Family(name, "", object, build)

    monkeypatch.setattr(runner, "family_named", refuse)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--learning_rate=-1e-3"], "--learning_rate -0.001: must be > 0"),
        (["--num_train_epochs", "0"], "--num_train_epochs 0.0: must be > 0 (or set --max_steps)"),
        (["--max_train_samples", "0"], "--max_train_samples 0: must be > 0"),
        (["--max_eval_samples", "-5"], "--max_eval_samples -5: must be > 0"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0: must be > 0"),
        (["--global_batch_size", "0"], "--global_batch_size 0: must be > 0"),
        (["--warmup_steps", "-1"], "warmup_steps >= 0"),
        (["--lr_scheduler_type", "cosin"], "--lr_scheduler_type 'cosin' is unknown; did you mean 'cosine'?"),
        (["--report_to", "wandbb"], "--report_to 'wandbb' is unknown"),
        (["--resume", "--overwrite_output_dir"], "pass one of them"),
        (["--r", "7"], "divisible"),
        (["--deepspeed", "nope.json"], "--deepspeed nope.json: no such file"),
        (["--lr", "1e-4"], "unknown flag --lr; it is now called 'learning_rate'."),
        (["--learning_rat", "1e-4"], "unknown flag --learning_rat; did you mean 'learning_rate'?"),
        (["--eval_strategy", "steps"], "leave --eval_strategy no"),
    ],
)
def test_bad_flags_fail_in_one_line_before_loading(flags, message, tmp_path, capsys, nothing_may_load):
    started = time.monotonic()
    code = main(
        ["glue", "--task", "rte", *flags, "--output_dir", str(tmp_path / "o"), "--results_dir", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("flag", ["--output_dir", "--results_dir"])
def test_an_unwritable_folder_fails_before_loading(flag, tmp_path, capsys, nothing_may_load):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    other = "--results_dir" if flag == "--output_dir" else "--output_dir"
    code = main(["glue", "--task", "rte", flag, str(blocker / "sub"), other, str(tmp_path / "ok")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{flag} {blocker / 'sub'} is not a writable folder" in err[0]
