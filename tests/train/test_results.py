"""Results files: concurrent writers never lose, duplicate or interleave rows."""

from __future__ import annotations

import csv
import json
import multiprocessing as mp

from goat.train import results
from goat.train.results import ResultRow, append_result, read_results

ROWS_PER_WRITER = 40


def _row(writer: int, index: int) -> ResultRow:
    return ResultRow(
        family="glue",
        task="rte",
        method="goat",
        model_name_or_path="m",
        seed=writer,
        epoch=float(index),
        metric="accuracy",
        value=index / 100,
        params_pct=0.5,
        trainable_params=10,
        run_name=f"w{writer}",
        run_id=f"w{writer}",
        time="t",
        git_hash="abc",
        metrics={"accuracy": index / 100, "text": "x" * 2000},
    )


def _write_many(root: str, writer: int) -> None:
    for index in range(ROWS_PER_WRITER):
        append_result(root, _row(writer, index))


def test_two_writers_append_every_row_once(tmp_path):
    context = mp.get_context("fork")
    writers = [context.Process(target=_write_many, args=(str(tmp_path), w)) for w in range(2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    rows = read_results(tmp_path, "glue")
    assert len(rows) == 2 * ROWS_PER_WRITER
    assert sorted((r["run_id"], r["epoch"]) for r in rows) == sorted(
        (f"w{w}", float(i)) for w in range(2) for i in range(ROWS_PER_WRITER)
    )
    with open(tmp_path / "glue" / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 2 * ROWS_PER_WRITER  # one header, no torn or interleaved lines
    assert all(json.loads(r["metrics"])["text"] == "x" * 2000 for r in table)


def test_existing_rows_survive_a_torn_line(tmp_path):
    append_result(tmp_path, _row(0, 0))
    with open(tmp_path / "glue" / "results.jsonl", "a") as handle:
        handle.write('{"half a row')  # a writer killed mid-line (not possible with our writes, but with others')
    append_result(tmp_path, _row(0, 1))
    rows = read_results(tmp_path, "glue")
    assert [r["epoch"] for r in rows] == [0.0, 1.0]  # the torn line is skipped, the rows around it kept


def test_rows_keep_the_hash_read_when_the_run_started(monkeypatch):
    """A commit made while a run trained was stamped on the rows written after it (a causal run's epoch row
    named a commit made during its training). The hash is read once per process, at the run's start."""
    heads = iter(["aaaaaaa", "bbbbbbb"])

    class Done:
        def __init__(self, stdout: str) -> None:
            self.returncode, self.stdout = 0, stdout

    def fake_run(command, **_):
        return Done(next(heads) if "rev-parse" in command else "")

    results.git_hash.cache_clear()
    monkeypatch.setattr(results.subprocess, "run", fake_run)
    try:
        at_start = results.git_hash()
        fields = {k: v for k, v in vars(_row(0, 1)).items() if k != "git_hash"}
        later = ResultRow(**fields)  # the default: the process's hash
        assert at_start == "aaaaaaa" and later.git_hash == "aaaaaaa"
    finally:
        results.git_hash.cache_clear()
