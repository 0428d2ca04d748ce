"""``python -m goat.claims --smoke`` end to end: every claim runs through the ordinary training path on the
embedded defaults, writes its document, CSVs and plots, and a second invocation trains and measures nothing."""

from __future__ import annotations

import csv
import json
import re

import pytest

from goat.claims import stats
from goat.claims.__main__ import main
from goat.claims.ledger import Ledger


def read_csv(path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ledger_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    argv = ["--smoke", "--out", str(root / "docs"), "--results_dir", str(root / "results"), "--output_dir", str(root / "outputs")]
    assert main(argv) == 0
    return root, argv


def test_document_has_every_claim_with_a_rule_based_verdict(ledger_out):
    root, _ = ledger_out
    text = (root / "docs" / "claims.md").read_text()
    verdicts = re.findall(r"\*\*Verdict: (.+?)\.\*\*", text)
    assert len(verdicts) == 8 and set(verdicts) <= {stats.HOLDS, stats.FAILS, stats.INCONCLUSIVE}
    assert "smoke scale" in text and "python -m goat.train glue --task tweet_sentiment" in text
    assert "python -m goat.train commonsense --task tweet_sentiment" in text
    data = root / "docs" / "claims"
    assert all((data / f"claim{n}.csv").stat().st_size > 0 for n in range(1, 9))
    assert all((data / f"claim{n}.png").stat().st_size > 0 for n in (1, 2, 3, 5, 6, 7, 8))


def test_comparisons_in_the_csv_are_the_paired_statistics_of_the_recorded_runs(ledger_out):
    root, _ = ledger_out
    records = [json.loads(line) for line in (root / "docs" / "claims" / "runs.jsonl").read_text().splitlines()]
    assert records and all(r["status"] == "ok" for r in records)
    assert {r["config"]["family"] for r in records} == {"glue", "commonsense"}

    def values(method: str, **fields) -> list[float]:
        chosen = [r for r in records if r["config"]["method"] == method and r["config"]["family"] == "glue"
                  and r["config"]["scaling"] is None and r["config"]["rank"] == 8 and r["config"]["experts"] == 8
                  and r["config"]["aux_loss_coef"] == 1e-3 and r["config"]["init"] == "spread"
                  and all(r["config"][k] == v for k, v in fields.items())]  # fmt: skip
        return [r["value"] for r in sorted(chosen, key=lambda r: r["config"]["seed"])]

    goat, lora = values("goat", lr=1e-3), values("lora", lr=1e-3)
    assert len(goat) == len(lora) == 2  # the smoke scale's two seeds
    row = next(r for r in read_csv(root / "docs" / "claims" / "claim1.csv") if r.get("kind") == "comparison")
    expected = stats.paired(goat, lora)
    assert float(row["difference"]) == pytest.approx(expected.difference.mean)
    if row["ci_low"] and expected.difference.low == expected.difference.low:  # nan when both seeds differ equally
        assert float(row["ci_low"]) == pytest.approx(expected.difference.low)
    assert row["verdict"] == stats.superiority(expected.difference)


def test_load_cv_is_recorded_for_moe_runs_only(ledger_out):
    root, _ = ledger_out
    records = [json.loads(line) for line in (root / "docs" / "claims" / "runs.jsonl").read_text().splitlines()]
    assert all((r["load_cv"] is None) == (r["config"]["method"] == "lora") for r in records)


def test_second_invocation_resumes_without_training(ledger_out, monkeypatch):
    root, argv = ledger_out

    def refuse(self, config):
        raise AssertionError(f"the ledger retrained {config}")

    monkeypatch.setattr(Ledger, "_train", refuse)
    rounds = (root / "docs" / "claims" / "claim7_rounds.csv").read_text()
    assert main(argv) == 0
    assert (root / "docs" / "claims" / "claim7_rounds.csv").read_text() == rounds  # step costs not measured again
