"""quantize.max_drop: a file over the limit gets its costliest nodes back in fp32 until it is
within it, on a tiny model whose decision boundary runs through real sentences (where int8
noise flips predictions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from transformers import BertForSequenceClassification

from compressor.data import Split
from compressor.errors import UserError
from compressor.inference import predict_logits
from compressor.recipe import QuantizeConfig, load_recipe
from exporters.artifacts import quantize_checked
from exporters.onnx import export_onnx
from tests.conftest import save_variant, sst2_rows
from tests.packages import copy_package

ROWS = sst2_rows("dev", limit=160)
TEXTS = [text for text, _ in ROWS]


@pytest.fixture(scope="module")
def held(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Split]:
    """An fp32 file and sentences labelled by it: its accuracy is 1.0, so a quantized file's
    accuracy is its agreement with fp32 and every lost point is quantization's."""
    out = save_variant(tiny_teacher_dir, tmp_path_factory.mktemp("spread"), seed=0,
                       initializer_range=0.25)  # fmt: skip
    logits = predict_logits(out, TEXTS)
    model = BertForSequenceClassification.from_pretrained(out)
    with torch.no_grad():
        model.classifier.bias[1] -= float(np.median(logits[:, 1] - logits[:, 0]))
    model.save_pretrained(out)
    fp32 = export_onnx(out, tmp_path_factory.mktemp("onnx") / "onnx")
    labels = predict_logits(fp32, TEXTS).argmax(axis=1).tolist()
    return fp32, Split(TEXTS, labels, None)


def make(fp32: Path, split: Split, out: Path, **cfg: object) -> dict:
    return quantize_checked(fp32, fp32, split.take(32), cfg=QuantizeConfig(**cfg),
                            calibration=split, max_length=64, recipe_hash="t",
                            out_path=out)  # fmt: skip


def test_over_the_limit_the_costliest_nodes_stay_fp32_until_within(
    held: tuple[Path, Split], tmp_path: Path
) -> None:
    fp32, split = held
    fp32 = copy_package(fp32, tmp_path / "onnx") / fp32.name  # with its config and tokenizer
    cfg = {"mode": "dynamic-int8", "per_channel": False, "reduce_range": False,
           "min_agreement": 0.5, "max_drop_samples": 160}  # fmt: skip
    loose = make(fp32, split, fp32.parent / "loose.onnx", **cfg, max_drop=100.0)
    record = loose["quantization"]["max_drop"]
    assert record["fp32_accuracy"] == 1.0 and record["kept_fp32"] == []
    assert "sensitivity" not in record and record["within_limit"]
    before = record["accuracy_before"]
    assert before < 1.0, "int8 flipped no prediction: the model does not exercise the fallback"

    assert 100 * (1 - before) > 4.0  # the limit below is really crossed
    strict = make(fp32, split, fp32.parent / "strict.onnx", **cfg, max_drop=2.0)
    record = strict["quantization"]["max_drop"]
    assert record["accuracy_before"] == before and record["within_limit"]
    # labels are the fp32 file's here, so changed labels and lost accuracy coincide
    assert record["changed_points_before"] == pytest.approx(100 * (1 - before))
    assert record["changed_points_after"] <= 2.0 and record["drop_points"] <= 2.0
    assert record["accuracy_after"] >= 0.98
    kept = record["kept_fp32"]
    ranking = [r["node"] for r in record["sensitivity"]]
    assert kept and kept == ranking[: len(kept)]  # kept in the order of their recovery
    assert len(kept) < len(ranking)  # the rest stay int8
    restored = [r["changed_points_with_node_in_fp32"] for r in record["sensitivity"]]
    assert restored == sorted(restored) and min(restored) < record["changed_points_before"]
    # the kept nodes are float MatMuls in the shipped file; the others are int8
    graph = onnx.load(strict["path"]).graph
    ops = {n.name: n.op_type for n in graph.node}
    float_ops = ("MatMul", "Gemm", "Gather")
    assert all(ops.get(name, ops.get(f"{name}_MatMul")) in float_ops for name in kept)
    assert any(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in ops.values())
    assert record["size_mb_after"] > record["size_mb_before"]
    agreement = predict_logits(Path(strict["path"]), TEXTS, tokenizer_dir=fp32.parent.parent)
    agreement = agreement.argmax(axis=1)
    assert (agreement == np.asarray(split.labels)).mean() == record["accuracy_after"]


def test_max_drop_is_refused_where_no_node_can_stay_fp32() -> None:
    with pytest.raises(UserError, match=r"quantize\.max_drop keeps int8 / int4 nodes in fp32"):
        load_recipe(None, {"quantize.mode": "fp16", "quantize.max_drop": 0.5})
