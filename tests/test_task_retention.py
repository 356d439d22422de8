"""The second-task retention bench on the real sentiment3 sentences, with a tiny teacher."""

import json
from pathlib import Path

import pytest

from benchmarks.experiments import task_retention
from compressor.runfolder import RunFolder
from tests.conftest import SHARED_DATA
from tests.test_results import assert_published, assert_reruns_without_training


def _sst2_runs(results: Path) -> None:
    runs = [{"method": m, "seed": s, "dev_accuracy": acc, "teacher_dev_accuracy": 0.9,
             "train_seconds": 60.0 * s, "train_examples": 12800}
            for m, base in (("kd_hidden", 0.85), ("retention_demo", 0.87), ("kd", 0.5))
            for s, acc in ((1, base - 0.01), (2, base + 0.01))]  # fmt: skip
    (results / "bench-distill.json").write_text(json.dumps({"data": {"runs": runs}}))


def test_both_trainings_on_pooled_sentiment3_beside_sst2(
    tiny_teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results, out = tmp_path / "results", tmp_path / "bench"
    results.mkdir()
    _sst2_runs(results)
    argv = [str(out), "--backbone", str(tiny_teacher_dir), "--sentiment3",
            str(SHARED_DATA / "sentiment3"), "--seeds", "42", "43",
            "--max-train", "48", "--max-dev", "32"]  # fmt: skip
    task_retention.main(argv, results=results)
    pooled = (out / "data" / "sentiment3.tsv").read_text(encoding="utf-8").splitlines()
    assert pooled[0] == "sentence\tlabel" and len(pooled) == 3001
    rows = json.loads((out / "table.json").read_text())["rows"]
    mine = {r["method"]: r for r in rows if r["task"] == "sentiment3 (pooled)"}
    assert set(mine) == {"before", "regime"}
    for row in mine.values():
        assert row["seeds"] == [42, 43] and row["train_examples"] == 48
        accs = row["dev_accuracy_per_seed"]
        assert row["retention"] == pytest.approx(sum(accs) / 2 / row["teacher_dev_accuracy"])
    # one epoch of 48 at batch 32 is 2 steps; the regime runs 3 epochs, embeddings fixed
    before = RunFolder.open(out / "before" / "seed-42").result("distill")
    regime = RunFolder.open(out / "regime" / "seed-42").result("distill")
    assert (before["steps"], before["word_embeddings"]) == (2, "trained")
    assert (regime["steps"], regime["word_embeddings"]) == (6, "frozen")
    sst2 = {r["method"]: r for r in rows if r["task"].startswith("SST-2")}
    assert sst2["before"]["dev_accuracy_mean"] == pytest.approx(0.85)
    assert sst2["regime"]["retention"] == pytest.approx(0.87 / 0.9)
    assert sst2["regime"]["train_minutes"] == pytest.approx(1.5)
    published = assert_published(results / "bench-tasks.md", out / "table.md")
    assert "| sentiment3 (pooled) | the regime (compress's default)" in published
    assert_reruns_without_training(task_retention, argv, results, monkeypatch)
