"""Every quantization mode of the registry on a tiny trained model: the file it makes loads in
ONNX Runtime, passes the mode's agreement gate, is recorded in the manifest under the mode's
label / format / key, and is read correctly by the benchmarks (emulator, roofline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from transformers import BertForSequenceClassification, BertTokenizerFast

from compressor.data import Split
from compressor.errors import UserError
from compressor.inference import predict_logits
from compressor.recipe import QuantizeConfig
from compressor.registry import QUANT_MODES
from exporters.artifacts import quantize_checked
from exporters.onnx import export_onnx
from exporters.quant import detect, get_mode
from tests.conftest import save_variant, sst2_rows
from tests.packages import copy_package

# name -> (file suffix, report label, report format, report key)
MODES = {
    "dynamic-int8": ("int8", "int8", "onnx-int8", "student_int8"),
    "static-int8": ("static_int8", "static int8", "onnx-static-int8", "student_static_int8"),
    "int4": ("q4", "int4", "onnx-int4", "student_int4"),  # transformers.js dtype q4
    "fp16": ("fp16", "fp16", "onnx-fp16", "student_fp16"),
}
# what each mode records in the manifest's "quantization" entry
SETTINGS = {
    "dynamic-int8": {"mode", "per_channel", "reduce_range", "excluded_nodes"},
    "static-int8": {"mode", "per_channel", "reduce_range", "excluded_nodes", "calibration",
                    "calibration_samples"},
    "int4": {"mode", "block_size", "excluded_nodes"},
    "fp16": {"mode", "kept_fp32"},
}  # fmt: skip
DEV = sst2_rows("dev", limit=128)
PROBE = Split([t for t, _ in DEV], [y for _, y in DEV])
CALIBRATION = Split([t for t, _ in sst2_rows("train", limit=64)], [0] * 64)


@pytest.fixture(scope="module")
def trained(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 BERT trained for 4 epochs on 2048 SST-2 training sentences (a few
    seconds): unlike a random one, its decisions follow the sentences, with margins that a
    faithful quantization keeps."""
    out = save_variant(tiny_teacher_dir, tmp_path_factory.mktemp("trained"), seed=0,
                       num_hidden_layers=2)  # fmt: skip
    model = BertForSequenceClassification.from_pretrained(out)
    tokenizer = BertTokenizerFast.from_pretrained(out)
    rows = sst2_rows("train", limit=2048)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _epoch in range(4):
        for start in range(0, len(rows), 32):
            batch = rows[start : start + 32]
            enc = tokenizer([t for t, _ in batch], padding=True, truncation=True, max_length=64,
                            return_tensors="pt")  # fmt: skip
            model(**enc, labels=torch.tensor([y for _, y in batch])).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def trained_onnx(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(trained, tmp_path_factory.mktemp("trained_onnx") / "onnx")


@pytest.fixture(scope="module")
def made(trained: Path, trained_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """mode -> quantize_checked's result, each mode under the default gate, in one folder."""
    folder = copy_package(trained_onnx, tmp_path_factory.mktemp("modes") / "onnx")
    results = {}
    for name in MODES:
        cfg = QuantizeConfig(mode=name, calibration_samples=48)
        results[name] = quantize_checked(folder / "model.onnx", trained, PROBE, cfg=cfg,
                                         calibration=CALIBRATION, max_length=64,
                                         recipe_hash="h")  # fmt: skip
    return results


def test_the_registry_holds_exactly_the_four_modes() -> None:
    assert sorted(QUANT_MODES.names()) == sorted(MODES)
    assert "none" not in QUANT_MODES  # the recipe's "no quantization" is not a mode


def test_listing_the_modes_imports_neither_onnx_nor_onnx_runtime() -> None:
    """The recipe checks `quantize.mode` against the registry, which imports every mode
    module: a command that only reads a recipe must not pay for ONNX Runtime."""
    code = (
        "import sys; from compressor.registry import QUANT_MODES; names = QUANT_MODES.names(); "
        "heavy = {m.split('.')[0] for m in sys.modules} & {'onnx', 'onnxruntime'}; "
        "print(len(names), sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert done.stdout.split() == ["4", "[]"]


def test_an_unknown_mode_is_a_one_line_error_listing_the_known_ones() -> None:
    with pytest.raises(UserError) as raised:
        get_mode("int2")
    message = str(raised.value)
    assert "\n" not in message and "'int2'" in message
    assert all(name in message for name in MODES)
    with pytest.raises(ValueError, match="unknown quantization mode 'int2'; known: dynamic-int8"):
        QUANT_MODES.check("int2")


def test_the_trained_model_decides_from_the_sentences(trained: Path) -> None:
    """Otherwise every file would "agree" by predicting one class for everything."""
    logits = predict_logits(trained, PROBE.texts, max_length=64)
    predicted = logits.argmax(axis=1)
    assert float(np.mean(predicted == np.array(PROBE.labels))) >= 0.6
    assert 0.3 <= float(np.mean(predicted == 1)) <= 0.7


@pytest.mark.parametrize("name", MODES)
def test_each_mode_makes_a_file_that_loads_and_passes_its_gate(made: dict, name: str) -> None:
    suffix, label, fmt, key = MODES[name]
    result = made[name]
    assert result["path"], result["parity"]
    path = Path(result["path"])
    assert path.name == f"model_{suffix}.onnx"
    assert (result["label"], result["format"], result["key"]) == (label, fmt, key)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones((3, 7), dtype=np.int64) for i in session.get_inputs()}
    assert session.run(None, feeds)[0].shape == (3, 2)
    parity = result["parity"]
    assert parity["passed"] and parity["n"] == 128 and parity["tolerance"] is None
    assert parity["argmax_agreement"] >= QuantizeConfig().min_agreement
    # every mode changes the logits, fp16 by rounding only
    assert 0 < parity["max_abs_diff"] < (5e-3 if name == "fp16" else 0.2)


@pytest.mark.parametrize("name", MODES)
def test_each_file_is_recorded_with_its_settings_and_report_names(made: dict, name: str) -> None:
    _suffix, label, fmt, key = MODES[name]
    path = Path(made[name]["path"])
    entry = json.loads((path.parent.parent / "manifest.json").read_text())[f"onnx/{path.name}"]
    assert entry["report"] == {"label": label, "format": fmt, "key": key}
    assert entry["quantization"] == made[name]["quantization"]
    assert entry["parity"] == made[name]["parity"] and entry["recipe_hash"] == "h"
    settings = entry["quantization"]
    assert settings["mode"] == name
    assert set(settings) == SETTINGS[name]
    if name == "static-int8":
        assert settings["calibration"] == "percentile" and settings["calibration_samples"] == 48


@pytest.mark.parametrize("name", ["fp16", "int4"])
def test_a_file_that_is_not_int8_is_not_labelled_int8(made: dict, name: str) -> None:
    result = made[name]
    assert "int8" not in result["label"] and "int8" not in result["format"]
    assert result["key"] != "student_int8"


def test_static_int8_without_calibration_sentences_is_refused(
    trained: Path, trained_onnx: Path, tmp_path: Path
) -> None:
    folder = copy_package(trained_onnx, tmp_path / "onnx")
    with pytest.raises(ValueError, match="static-int8 needs calibration sentences"):
        quantize_checked(
            folder / "model.onnx",
            trained,
            PROBE,
            calibration=None,
            cfg=QuantizeConfig(mode="static-int8"),
            max_length=64,
            recipe_hash="h",
        )
    assert not (folder / "model_static_int8.onnx").exists()


@pytest.mark.parametrize("name", MODES)
def test_the_emulator_judges_integer_files_on_the_argmax(
    made: dict, trained_onnx: Path, name: str
) -> None:
    from benchmarks.targets.emulated import is_quantized

    path = Path(made[name]["path"])
    found = detect(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    assert (found and found.name) == (None if name == "fp16" else name)  # fp16 has fp32's ops
    assert is_quantized(path) == (name != "fp16")
    assert not is_quantized(trained_onnx)


def test_fp16_for_the_gpu_is_the_fp16_modes_file(trained_onnx: Path, tmp_path: Path) -> None:
    from benchmarks.targets.cuda import fp16_onnx

    fp32 = copy_package(trained_onnx, tmp_path / "onnx") / "model.onnx"
    half = fp16_onnx(fp32)
    assert half == fp32.with_name("model_fp16.onnx")
    types = {i.data_type for i in onnx.load(str(half)).graph.initializer}
    assert TensorProto.FLOAT16 in types
    written = half.stat().st_mtime_ns
    assert fp16_onnx(fp32) == half and half.stat().st_mtime_ns == written  # made once


def test_the_roofline_counts_fused_qdq_products_as_int8_on_the_quantized_tensors() -> None:
    """x (2x3x4) -> Q -> DQ, w (4x5 int8) -> DQ, MatMul: ONNX Runtime runs one int8 product
    on the uint8 activations and int8 weights; both DequantizeLinear fold into it."""
    from benchmarks.roofline import node_costs, tensor_shapes

    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, dtype=np.uint8), "z")
    weight = numpy_helper.from_array(np.ones((4, 5), dtype=np.int8), "w")
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
            helper.make_node("DequantizeLinear", ["w", "s"], ["wd"]),
            helper.make_node("MatMul", ["xd", "wd"], ["y"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [scale, zero, weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    costs = node_costs(model, tensor_shapes(model, {"x": np.ones((2, 3, 4), np.float32)}))
    assert [c.op for c in costs] == ["QuantizeLinear", "MatMul"]
    # 2 * 30 outputs * K=4; reads 24 uint8 activations + 20 int8 weights, writes 30 floats
    assert costs[1].ops == 240.0 and costs[1].int8
    assert costs[1].bytes == 24 + 20 + 30 * 4.0


def test_the_roofline_counts_each_modes_products_at_its_rate(
    made: dict, trained_onnx: Path
) -> None:
    """The same multiply-adds in every file; only where they run changes: all float in fp32,
    fp16 and int4 (weights unpacked in the kernel), all int8 in static int8 (the activation
    products too), and int8 except the two activation products per layer in dynamic int8."""
    from benchmarks.roofline import graph_costs

    def split(path: Path) -> tuple[float, float]:
        costs = graph_costs(path, batch=2, seq_len=16)
        matmul = [c for c in costs if "MatMul" in c.op or "Gemm" in c.op]
        return sum(c.ops for c in matmul if not c.int8), sum(c.ops for c in matmul if c.int8)

    b, s, h, ffn, layers = 2, 16, 32, 64, 2
    attention = 2 * 2 * b * s * s * h  # scores and weighted values, per layer
    total = layers * (4 * 2 * b * s * h * h + attention + 2 * 2 * b * s * h * ffn)
    total += 2 * b * h * h + 2 * b * h * 2  # pooler and classifier
    assert split(trained_onnx) == (total, 0)
    for name in ("fp16", "int4"):
        assert split(Path(made[name]["path"])) == (total, 0), name
    assert split(Path(made["static-int8"]["path"])) == (0, total)
    # dynamic int8 quantizes weights: the products of two activations stay float
    float_ops = layers * attention
    assert split(Path(made["dynamic-int8"]["path"])) == (float_ops, total - float_ops)
