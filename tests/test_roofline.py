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
    LSTM_CELL_OPS,
    DeviceProfile,
    NodeCost,
    estimate_ms,
    graph_costs,
    load_profile,
    node_costs,
    tensor_shapes,
)
from compressor.errors import UserError
from compressor.recipe import StudentConfig

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


def _costs_of(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, np.ndarray],
    weights: dict[str, np.ndarray],
    domains: tuple[str, ...] = ("",),
) -> list[NodeCost]:
    """Node costs of a hand-built graph, its shapes probed by running it on `inputs`."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for k, v in inputs.items()],
        [helper.make_empty_tensor_value_info(nodes[-1].output[0])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )  # fmt: skip
    opsets = [helper.make_opsetid(domain, 17 if domain == "" else 1) for domain in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    return node_costs(model, tensor_shapes(model, inputs))


def test_lstm_counts_both_directions_gate_products_and_cell_arithmetic() -> None:
    """A bidirectional LSTM, hidden 3, input 5, over 4 steps of a batch of 2."""
    w, r = np.ones((2, 12, 5), np.float32), np.ones((2, 12, 3), np.float32)
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=3,
                            direction="bidirectional")  # fmt: skip
    costs = _costs_of([node], {"x": np.ones((4, 2, 5), np.float32)}, {"w": w, "r": r})
    assert LSTM_CELL_OPS == 4 * 3 + 5 * 8 + 3 + 1 == 56
    # 2 directions x 4 steps x 2 rows x 3 units x (2 x 4 gates x (5 + 3) + 56)
    assert costs[0].ops == 2 * 4 * 2 * 3 * (64 + 56) == 5760
    # reads X 40, W 120, R 72 floats; writes Y [4, 2, 2, 3] = 48
    assert costs[0] == NodeCost("LSTM", 5760.0, (40 + 120 + 72 + 48) * 4.0, False)


def test_dynamic_quantize_lstm_is_int8_and_reads_its_transposed_weights() -> None:
    """ORT's quantized LSTM stores W as [directions, input, 4 x hidden] and R as
    [directions, hidden, 4 x hidden], in int8, with their scales and zero points as inputs
    8 to 11; the count is the float LSTM's."""
    node = helper.make_node(
        "DynamicQuantizeLSTM",
        ["x", "w", "r", "", "", "", "", "", "w_scale", "w_zp", "r_scale", "r_zp"], ["y"],
        domain="com.microsoft", hidden_size=3,
    )  # fmt: skip
    weights = {
        "w": np.ones((1, 5, 12), np.int8), "r": np.ones((1, 3, 12), np.int8),
        "w_scale": np.ones((1, 12), np.float32), "w_zp": np.zeros((1, 12), np.int8),
        "r_scale": np.ones((1, 12), np.float32), "r_zp": np.zeros((1, 12), np.int8),
    }  # fmt: skip
    costs = _costs_of([node], {"x": np.ones((4, 2, 5), np.float32)}, weights,
                      domains=("", "com.microsoft"))  # fmt: skip
    # 1 direction x 4 steps x 2 rows x 3 units x (2 x 4 gates x (5 + 3) + 56)
    # reads X 40 floats, W 60 + R 36 bytes, scales 2 x 12 floats, zero points 2 x 12 bytes;
    # writes Y [4, 1, 2, 3] = 24 floats
    traffic = 40 * 4 + 60 + 36 + 24 * 4 + 24 + 24 * 4
    assert costs[0] == NodeCost("DynamicQuantizeLSTM", 2880.0, float(traffic), True)


@pytest.mark.parametrize("op", ["LSTM", "DynamicQuantizeLSTM"])
def test_lstm_hidden_size_falls_back_to_the_weight_shape(op: str) -> None:
    """Without the (optional) hidden_size attribute, 4 x hidden is W's gate axis. The shapes
    are given, not probed: only the node's attributes and its inputs' shapes are read."""
    w = (1, 12, 5) if op == "LSTM" else (1, 5, 12)
    shapes = {"x": ((4, 2, 5), np.float32), "w": (w, np.float32), "y": ((4, 1, 2, 3), np.float32)}
    model = helper.make_model(
        helper.make_graph([helper.make_node(op, ["x", "w"], ["y"])], "g", [], [])
    )
    assert node_costs(model, shapes)[0].ops == 4 * 2 * 3 * (2 * 4 * (5 + 3) + 56)


@pytest.mark.parametrize(
    ("group", "stride", "out_len", "ops"),
    [(1, 1, 10, 2880), (2, 1, 10, 1440), (1, 2, 5, 1440)],
)
def test_dilated_conv1d_counts_taps_per_output(
    group: int, stride: int, out_len: int, ops: int
) -> None:
    """Kernel 3 at dilation 2 over 10 steps, 4 channels in and 6 out: 2 x (2 x 6 x out_len)
    outputs x 4 / group channels x 3 taps. Dilation spreads the taps without adding any, a
    group reads a share of the channels, a stride halves the outputs."""
    w = np.ones((6, 4 // group, 3), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], dilations=[2], pads=[2, 2],
                            strides=[stride], group=group)  # fmt: skip
    costs = _costs_of([node], {"x": np.ones((2, 4, 10), np.float32)}, {"w": w})
    # reads X 80 and W floats, writes 2 x 6 x out_len
    assert costs == [NodeCost("Conv", float(ops), (80 + w.size + 12 * out_len) * 4.0, False)]


def test_conv_integer_is_int8_with_the_float_convs_count() -> None:
    weights = {"w": np.ones((6, 4, 3), np.int8), "x_zp": np.array(0, np.uint8),
               "w_zp": np.array(0, np.int8)}  # fmt: skip
    node = helper.make_node("ConvInteger", ["x", "w", "x_zp", "w_zp"], ["y"], dilations=[2],
                            pads=[2, 2])  # fmt: skip
    costs = _costs_of([node], {"x": np.ones((2, 4, 10), np.uint8)}, weights)
    # 2 x 120 outputs x 4 channels x 3 taps; reads 80 + 72 + 2 bytes, writes 120 int32
    assert costs[0] == NodeCost("ConvInteger", 2880.0, 80 + 72 + 2 + 120 * 4.0, True)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_counts_its_window_per_output(op: str) -> None:
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[3], pads=[1, 1])
    costs = _costs_of([node], {"x": np.ones((2, 4, 10), np.float32)}, {})
    # 80 outputs x a window of 3; reads and writes 80 floats
    assert costs[0] == NodeCost(op, 240.0, 160 * 4.0, False)


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


# the two non-transformer students at hidden 16 over 16-wide embeddings; the CNN's one cell
# has a conv3, a dil_conv5, a max_pool3 and an avg_pool3
STUDENTS = {
    "bilstm": StudentConfig(kind="bilstm", hidden=16, mlp=16, embedding_dim=16),
    "cnn": StudentConfig(kind="cnn", hidden=16, mlp=16, embedding_dim=16,
                         cells=[[["conv3", 0, 2], ["dil_conv5", 1, 2], ["max_pool3", 0, 3],
                                 ["avg_pool3", 2, 3]]]),
}  # fmt: skip
B, S, H = 2, 7, 16
# one LSTM node per direction: 7 steps x 2 rows x 16 units x (2 x 4 gates x (16 + 16) + 56)
LSTM_OPS = S * B * H * (2 * 4 * (H + H) + LSTM_CELL_OPS)
# the 1-wide projection, conv3 and dil_conv5, 16 channels in and out over 7 steps
CONV_OPS = [2 * (B * H * S) * H * k for k in (1, 3, 5)]


@pytest.fixture(scope="module")
def student_files(
    tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, Path]]:
    """kind -> its exported float file and dynamic int8 file."""
    import torch

    from compressor.students import kind_of, make_student
    from exporters.onnx import export_onnx
    from tests.custom_students import TEXTS, dynamic_int8, spread_teacher

    root = tmp_path_factory.mktemp("roofline_students")
    teacher = spread_teacher(tiny_teacher_dir, root / "teacher")
    files = {}
    for name, cfg in STUDENTS.items():
        torch.manual_seed(0)
        student, tokenizer = make_student(*teacher, cfg, TEXTS)
        kind_of(student).save(student, tokenizer, root / name)
        fp32 = export_onnx(root / name, root / f"{name}_onnx")
        files[name] = fp32, Path(dynamic_int8(root / name, fp32)["path"])
    return files


@pytest.mark.parametrize(
    ("kind", "fp32_op", "int8_op", "expected", "share"),
    [("bilstm", "LSTM", "DynamicQuantizeLSTM", [LSTM_OPS, LSTM_OPS], 0.95),
     ("cnn", "Conv", "ConvInteger", CONV_OPS, 0.85)],
)  # fmt: skip
def test_student_recurrences_and_convolutions_dominate_and_run_int8(
    student_files: dict[str, tuple[Path, Path]], kind: str, fp32_op: str, int8_op: str,
    expected: list[int], share: float,
) -> None:  # fmt: skip
    """The real exports at batch 2 x seq 7: the LSTM or Conv nodes count as the formula says,
    the same in the float and the int8 file, there at the int8 rate, and they dominate."""
    fp32, int8 = (graph_costs(path, batch=B, seq_len=S) for path in student_files[kind])
    assert sorted(c.ops for c in fp32 if c.op == fp32_op) == expected
    shaped = [c for c in int8 if c.op == int8_op]
    assert sorted(c.ops for c in shaped) == expected and all(c.int8 for c in shaped)
    assert sum(c.ops for c in shaped) > share * sum(c.ops for c in int8)
    if kind == "cnn":  # max_pool3 and avg_pool3: a window of 3 per output, in both files
        pools = [c.ops for c in fp32 + int8 if c.op in ("MaxPool", "AveragePool")]
        assert pools == [3 * B * H * S] * 4
