"""Agreement with ONNX Runtime's own BERT benchmark: both tools run on the tiny file and the
comparison is assembled; no timing is asserted beyond both being positive and paired."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from optimum.exporters.onnx import main_export
from transformers import BertConfig, BertForSequenceClassification

from benchmarks.experiments.ort_perf import agreement, peer_percentiles, render, write_table
from tests.test_results import assert_published


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bert_perf_test draws ids below 10,000, so this tiny BERT has a vocabulary that big."""
    folder = tmp_path_factory.mktemp("peer_model")
    config = BertConfig(
        vocab_size=10_000,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    return _export(folder, tmp_path_factory.mktemp("peer_onnx"))


def _export(model_dir: Path, out: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main_export(
            str(model_dir),
            output=str(out),
            task="text-classification",
            opset=17,
            do_validation=False,
        )
    shutil.copy(model_dir / "config.json", out / "config.json")
    return out / "model.onnx"


def test_a_failing_peer_run_is_an_error_not_a_figure(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    small_vocab = _export(tiny_teacher_dir, tmp_path / "small_vocab")
    with pytest.raises(RuntimeError, match="indices element out of data bounds"):
        peer_percentiles(small_vocab, batch=1, seq_len=8, threads=1, iters=2)


def test_bert_perf_test_runs_on_our_file_without_littering(tiny_onnx: Path) -> None:
    before = sorted(p.name for p in tiny_onnx.parent.iterdir())
    figures = peer_percentiles(tiny_onnx, batch=2, seq_len=16, threads=1, iters=5)
    assert 0 < figures["p50"] <= figures["p90"] <= figures["p99"]
    assert sorted(p.name for p in tiny_onnx.parent.iterdir()) == before


def test_agreement_pairs_rounds(tiny_onnx: Path, tmp_path: Path) -> None:
    rows = agreement({"tiny": tiny_onnx}, batch=1, seq_len=16, threads=1, rounds=2, iters=5)
    (row,) = rows
    assert len(row["ours_p50_ms"]) == len(row["theirs_p50_ms"]) == 2
    assert row["ratio_min"] <= row["ratio_median"] <= row["ratio_max"]
    assert row["ratio_median"] == pytest.approx(
        sum(a / b for a, b in zip(row["ours_p50_ms"], row["theirs_p50_ms"], strict=True)) / 2
    )
    assert "| tiny | 1 | 16 | 1 |" in render(rows)
    write_table(tmp_path / "run", rows, results=tmp_path / "results")
    published = assert_published(
        tmp_path / "results" / "bench-latency-agreement.md", tmp_path / "run" / "agreement.md"
    )
    assert "2 rounds of 5 timed iterations per tool; onnxruntime " in published
