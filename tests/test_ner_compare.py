"""The NER bench on real CoNLL-2003 sentences with a tiny tagger: every training per seed
(four of a 3-layer transformer, HomoDistil from the teacher, one BiLSTM), the first seed
shipped and timed against the teacher's files, every run reused on rerun."""

import json
from pathlib import Path

import pytest

from benchmarks.experiments import ner_compare
from compressor.runfolder import RunFolder
from tests.test_results import assert_published, assert_reruns_without_training


def test_every_training_shipped_and_timed(
    tagger_backbone: Path, conll_subset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results, out = tmp_path / "results", tmp_path / "bench"
    results.mkdir()
    argv = [str(out), "--backbone", str(tagger_backbone), "--conll", str(conll_subset),
            "--seeds", "42", "43", "--max-train", "64", "--iters", "2"]  # fmt: skip
    ner_compare.main(argv, results=results)
    table = json.loads((out / "table.json").read_text())
    rows = {r["method"]: r for r in table["rows"]}
    assert set(rows) == {"kd", "regime", "long", "augmented", "homodistil", "bilstm"}
    for row in rows.values():
        f1s = row["dev_f1_per_seed"]
        assert row["seeds"] == [42, 43]
        assert row["retention"] == pytest.approx(sum(f1s) / 2 / row["teacher_dev_f1"])
    # one epoch of 64 at batch 32 is 2 steps; the regime runs 3 epochs, embeddings fixed
    kd = RunFolder.open(out / "kd" / "seed-43").result("distill")
    regime = RunFolder.open(out / "regime" / "seed-42").result("distill")
    assert (kd["steps"], kd["word_embeddings"]) == (2, "trained")
    assert (regime["steps"], regime["word_embeddings"]) == (6, "frozen")
    long = RunFolder.open(out / "long" / "seed-42").result("distill")
    assert long["steps"] == 2 * ner_compare.LONG_EPOCHS
    augmented = RunFolder.open(out / "augmented" / "seed-42").result("distill")
    grown = augmented["augmentation"]
    assert grown["original"] == 64 and 64 < grown["augmented"] <= 3 * 64
    assert augmented["train_examples"] == 64 + grown["augmented"]
    # HomoDistil's targets follow the teacher's shape: hidden 32 -> 24, 4 heads -> 2, FFN 64 -> 21
    pruned = RunFolder.open(out / "homodistil" / "seed-42").result("prune")
    assert pruned["targets"] == {"heads": 2, "ffn": 21, "hidden": 24}
    assert pruned["steps"] == 6 and rows["homodistil"]["steps"] == 6
    bilstm = RunFolder.open(out / "bilstm" / "seed-43").result("distill")
    assert bilstm["student_source"].startswith("BiLSTM tagger, 300 units per direction")
    assert bilstm["steps"] == 20 and bilstm["student_non_embedding_parameters"] < 2e6
    assert not RunFolder.open(out / "kd" / "seed-43").done("export")  # only the first ships
    files = {row[0]: row for row in table["files"]}
    assert list(files) == ["teacher fp32", "teacher int8", "kd fp32", "kd int8", "regime fp32",
                           "regime int8", "long fp32", "long int8", "augmented fp32",
                           "augmented int8", "homodistil fp32", "homodistil int8",
                           "bilstm fp32", "bilstm int8"]  # fmt: skip
    assert files["regime int8"][5].endswith(")") and "x (" in files["regime int8"][5]
    shipped = RunFolder.open(out / "regime" / "seed-42").result("evaluate")["dev_accuracy"]
    assert files["regime int8"][1] == f"{100 * shipped['student_int8']:.2f}"
    assert {r["batch"] for r in table["latency"]["results"]} == {1, 32}
    published = assert_published(results / "bench-ner.md", out / "table.md")
    assert "| 3 layers, KD under the regime (compress's default)" in published
    assert "| BiLSTM tagger (Tang et al." in published
    assert_reruns_without_training(ner_compare, argv, results, monkeypatch)  # timing reused too
