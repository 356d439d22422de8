"""Roofline estimates: exact operation and byte counts on known graphs, and the arithmetic of
the time model. Nothing here times anything."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from optimum.exporters.onnx import main_export

from benchmarks.roofline import (
    DeviceProfile,
    NodeCost,
    estimate_ms,
    graph_costs,
    load_profile,
    node_costs,
    tensor_shapes,
)
from compressor.errors import UserError

PROFILE = DeviceProfile(
    key="toy", name="toy", cores=4, clock_ghz=1.0, fp32_flops_per_cycle=2.0,
    int8_ops_per_cycle=8.0, bandwidth_gbs=1.0, efficiency=0.5, kernel_overhead_us=10.0,
)  # fmt: skip


def test_matmul_counts_flops_and_bytes() -> None:
    weight = numpy_helper.from_array(np.ones((4, 5), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": np.ones((2, 3, 4), dtype=np.float32)}
    costs = node_costs(model, tensor_shapes(model, feeds))
    # (2x3x4) @ (4x5): 2 * 30 outputs * K=4 multiply-adds; reads 24 + 20 floats, writes 30
    assert costs[0] == NodeCost("MatMul", 240.0, (24 + 20 + 30) * 4.0, False)
    assert costs[1] == NodeCost("Relu", 30.0, 60 * 4.0, False)


def test_time_is_the_slower_of_compute_and_memory_plus_overhead() -> None:
    compute_bound = NodeCost("MatMul", ops=4e9, bytes=1e6, int8=False)
    memory_bound = NodeCost("Add", ops=1e6, bytes=2e9, int8=False)
    int8 = NodeCost("MatMulInteger", ops=4e9, bytes=1e6, int8=True)
    # 1 thread: 2 GFLOP/s x 0.5 efficiency = 1 GFLOP/s -> 4 s; 2 GB at 1 GB/s -> 2 s
    one = estimate_ms([compute_bound, memory_bound], PROFILE, threads=1)
    assert one["estimate_ms"] == pytest.approx(4000 + 2000 + 2 * 0.01)
    assert (one["compute_bound_ms"], one["memory_bound_ms"]) == pytest.approx((4000, 2000))
    # 4 threads quadruple the peak, not the bandwidth
    four = estimate_ms([compute_bound, memory_bound], PROFILE, threads=4)
    assert four["estimate_ms"] == pytest.approx(1000 + 2000 + 2 * 0.01)
    # int8 ops run at the int8 peak (4x here); more threads than cores change nothing
    assert estimate_ms([int8], PROFILE, threads=8)["estimate_ms"] == pytest.approx(250 + 0.01)


@pytest.fixture(scope="module")
def tiny_onnx(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("roofline_onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main_export(str(tiny_teacher_dir), output=str(out), task="text-classification",
                    opset=17, do_validation=False)  # fmt: skip
    shutil.copy(tiny_teacher_dir / "config.json", out / "config.json")
    return out / "model.onnx"


def test_bert_graph_matmul_flops_match_the_architecture(tiny_onnx: Path) -> None:
    """4 layers, hidden 32, FFN 64, 2 labels at batch 2 x seq 16: every multiply-add of the
    encoder, pooler and classifier, counted by hand."""
    b, s, h, ffn, layers, labels = 2, 16, 32, 64, 4, 2
    per_layer = 4 * 2 * b * s * h * h + 2 * 2 * b * s * s * h + 2 * 2 * b * s * h * ffn
    expected = layers * per_layer + 2 * b * h * h + 2 * b * h * labels
    costs = graph_costs(tiny_onnx, batch=b, seq_len=s)
    matmul_flops = sum(c.ops for c in costs if c.op in ("MatMul", "Gemm"))
    assert matmul_flops == expected
    assert onnx.load(str(tiny_onnx)).graph.input  # the file itself is left untouched


def test_shipped_profiles_cite_their_figures() -> None:
    for key in ("cortex-a55", "cortex-a76", "raspberry-pi-4", "raspberry-pi-5"):
        profile = load_profile(key)
        assert profile.sources and profile.assumed, key
        assert profile.peak_gflops(profile.cores) > profile.peak_gflops(1) > 0
    with pytest.raises(UserError, match="no device profile 'pixel-99'"):
        load_profile("pixel-99")
