import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

from compressor.errors import UserError
from compressor.inference import predict_logits
from exporters.manifest import update_manifest
from exporters.onnx import export_onnx
from exporters.parity import check_parity
from exporters.quant import static_int8
from exporters.quant.dynamic_int8 import quantize_dynamic_int8
from exporters.quant.static_int8 import quantize_static_int8
from tests.conftest import FEW_BINS, save_variant, sst2_rows
from tests.packages import copy_package

TEXTS = [text for text, _ in sst2_rows("dev", limit=64)]


@pytest.fixture(scope="module")
def spread_dir(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose predictions split between both classes on real sentences.

    The default init (std 0.02) gives near-constant logits, so every artifact "agrees" on
    the argmax trivially. A wider init spreads the logits, and a bias at the median logit
    difference puts the decision boundary among the sentences, where quantization noise shows.
    """
    out = save_variant(
        tiny_teacher_dir, tmp_path_factory.mktemp("spread"), seed=0, initializer_range=0.2
    )
    logits = predict_logits(out, TEXTS)
    model = BertForSequenceClassification.from_pretrained(out)
    with torch.no_grad():
        model.classifier.bias[1] -= float(np.median(logits[:, 1] - logits[:, 0]))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def spread_onnx(spread_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(spread_dir, tmp_path_factory.mktemp("spread_onnx") / "onnx")


def test_teacher_export_matches_pytorch(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in tiny_teacher_dir.iterdir())
    onnx_path = export_onnx(tiny_teacher_dir, tmp_path / "onnx")
    assert onnx_path == tmp_path / "onnx" / "onnx" / "model.onnx"  # the hub's layout
    assert {"onnx", "config.json", "tokenizer.json", "vocab.txt"} <= {
        p.name for p in (tmp_path / "onnx").iterdir()
    }
    assert [p.name for p in onnx_path.parent.iterdir()] == ["model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["onnx"]
    result = check_parity(tiny_teacher_dir, onnx_path, TEXTS, tolerance=1e-4)
    assert result.passed and result.n == 64 and result.argmax_agreement == 1.0
    assert result.max_abs_diff < 1e-5
    assert sorted(p.name for p in tiny_teacher_dir.iterdir()) == before


def test_parity_on_spread_logits(spread_dir: Path, spread_onnx: Path) -> None:
    logits = predict_logits(spread_dir, TEXTS)
    assert np.ptp(logits[:, 1] - logits[:, 0]) > 0.3
    assert 20 <= int((logits.argmax(axis=1) == 1).sum()) <= 44
    result = check_parity(spread_dir, spread_onnx, TEXTS, tolerance=1e-4)
    assert result.passed and result.argmax_agreement == 1.0 and result.max_abs_diff < 1e-4


def test_graph_has_dynamic_batch_and_sequence(spread_dir: Path, spread_onnx: Path) -> None:
    session = ort.InferenceSession(str(spread_onnx), providers=["CPUExecutionProvider"])
    assert all(
        shape == ["batch_size", "sequence_length"]
        for shape in (i.shape for i in session.get_inputs())
    )
    tokenizer = AutoTokenizer.from_pretrained(spread_dir)
    model = BertForSequenceClassification.from_pretrained(spread_dir).eval()
    shapes = set()
    for batch in (TEXTS[:1], TEXTS[1:8]):
        enc = tokenizer(batch, padding=True, return_tensors="np")
        shapes.add(enc["input_ids"].shape)
        got = session.run(None, {k: v.astype(np.int64) for k, v in enc.items()})[0]
        with torch.no_grad():
            want = model(**tokenizer(batch, padding=True, return_tensors="pt")).logits.numpy()
        assert got.shape == (len(batch), 2)
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert len({s[0] for s in shapes}) == 2 and len({s[1] for s in shapes}) == 2


def test_sentence_pairs_reach_the_exported_graph(spread_dir: Path, spread_onnx: Path) -> None:
    pairs = TEXTS[1:] + TEXTS[:1]
    result = check_parity(spread_dir, spread_onnx, TEXTS, pairs, tolerance=1e-4)
    assert result.passed
    single = predict_logits(spread_onnx, TEXTS)
    paired = predict_logits(spread_onnx, TEXTS, pairs)
    assert np.abs(single - paired).max() > 1e-2


def test_pruned_heads_and_narrow_ffn_export(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    src = save_variant(tiny_teacher_dir, tmp_path / "pruned", seed=3, intermediate_size=16)
    model = BertForSequenceClassification.from_pretrained(src)
    model.prune_heads({0: [0, 1], 2: [3]})
    model.save_pretrained(src)
    reloaded = BertForSequenceClassification.from_pretrained(src)
    assert reloaded.bert.encoder.layer[0].attention.self.query.out_features == 16
    onnx_path = export_onnx(src, tmp_path / "onnx")
    result = check_parity(src, onnx_path, TEXTS, tolerance=1e-4)
    assert result.passed and result.argmax_agreement == 1.0


def test_int8_is_smaller_and_agrees(spread_onnx: Path, tmp_path: Path) -> None:
    folder = copy_package(spread_onnx, tmp_path / "onnx")
    before = {p.name for p in folder.iterdir()}
    int8 = quantize_dynamic_int8(folder / "model.onnx", folder / "model_int8.onnx")
    assert {p.name for p in folder.iterdir()} == before | {"model_int8.onnx"}
    assert int8.stat().st_size < 0.8 * (folder / "model.onnx").stat().st_size
    result = check_parity(folder / "model.onnx", int8, TEXTS, tolerance=math.inf, min_agreement=0.9)
    assert result.passed and result.argmax_agreement >= 0.9
    assert 0 < result.max_abs_diff < 0.2
    assert result.to_dict()["tolerance"] is None
    per_tensor = quantize_dynamic_int8(folder / "model.onnx", folder / "t.onnx", per_channel=False)
    coarse = check_parity(folder / "model.onnx", per_tensor, TEXTS, tolerance=math.inf)
    assert coarse.max_abs_diff > 1.5 * result.max_abs_diff
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_int8_is_qdq_calibrated_and_agrees(
    spread_onnx: Path, tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compressor.data import Split
    from exporters.artifacts import calibration_feeds

    monkeypatch.setitem(static_int8.CALIBRATOR_OPTIONS, "entropy", FEW_BINS)
    folder = copy_package(spread_onnx, tmp_path / "onnx")
    calibration = Split([t for t, _ in sst2_rows("dev", 96)[64:]], [0] * 32)
    feeds = calibration_feeds(folder / "model.onnx", calibration, max_length=64)
    assert [len(f["input_ids"]) for f in feeds] == [8, 8, 8, 8]
    out = folder / "model_static_int8.onnx"
    skipped = quantize_static_int8(folder / "model.onnx", out, feeds, method=method,
                                   exclude=["classifier"])  # fmt: skip
    assert skipped and all("classifier" in name for name in skipped)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("QuantizeLinear") > 10 and "DequantizeLinear" in ops
    # in QDQ a product is quantized when both its operands come out of DequantizeLinear
    operands = _operand_producers(out)
    assert skipped == ["/classifier/Gemm"] and len(operands) == 4 * 8 + 2
    assert "DequantizeLinear" not in operands["/classifier/Gemm"]  # the excluded head: float
    quantized = {name for name, made_by in operands.items() if made_by == ["DequantizeLinear"] * 2}
    assert quantized == set(operands) - set(skipped)  # every other product is quantized
    # a random hidden-32 model is harsh on 8-bit activations; chance agreement would be ~0.5
    result = check_parity(folder / "model.onnx", out, TEXTS, tolerance=math.inf, min_agreement=0.75)
    assert result.passed and 0 < result.max_abs_diff < 0.5
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


def test_requantizing_with_other_exclusions_reuses_the_calibration(
    spread_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quantize.max_drop makes one file per candidate node from the same model and feeds:
    the ranges are computed once, and a file reads the same ones either way."""
    from onnxruntime.quantization import calibrate

    from compressor.data import Split
    from exporters.artifacts import calibration_feeds

    calls = []
    real = calibrate.create_calibrator
    monkeypatch.setattr(calibrate, "create_calibrator",
                        lambda *a, **k: calls.append(1) or real(*a, **k))  # fmt: skip
    folder = copy_package(spread_onnx, tmp_path / "onnx")
    fp32 = folder / "model.onnx"
    sample = Split([t for t, _ in sst2_rows("dev", 32)], [0] * 32)
    feeds = calibration_feeds(fp32, sample, max_length=64)
    quantize_static_int8(fp32, folder / "all.onnx", feeds, exclude=[])
    quantize_static_int8(fp32, folder / "head.onnx", feeds, exclude=["classifier"])
    assert len(calls) == 1
    every, head = _activation_scales(folder / "all.onnx"), _activation_scales(folder / "head.onnx")
    assert head and all(every[name] == scale for name, scale in head.items())
    fresh = calibration_feeds(fp32, sample, max_length=64)  # other feeds: calibrated anew
    quantize_static_int8(fp32, folder / "again.onnx", fresh, exclude=[])
    assert len(calls) == 2 and _activation_scales(folder / "again.onnx") == every


def _operand_producers(path: Path) -> dict[str, list[str | None]]:
    """Matrix product name -> op types that produce its two operands (None: a graph input or
    an initializer)."""
    graph = onnx.load(str(path)).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    return {
        node.name: [producers.get(name) for name in node.input[:2]]
        for node in graph.node
        if node.op_type in ("MatMul", "Gemm")
    }


def _activation_scales(path: Path) -> dict[str, float]:
    return {
        i.name: float(onnx.numpy_helper.to_array(i))
        for i in onnx.load(str(path)).graph.initializer
        if i.name.endswith("_output_0_scale") and onnx.numpy_helper.to_array(i).size == 1
    }


def test_entropy_calibration_clips_where_minmax_keeps_the_full_range(
    spread_onnx: Path, tmp_path: Path
) -> None:
    from compressor.data import Split
    from exporters.artifacts import calibration_feeds

    fp32 = spread_onnx
    feeds = calibration_feeds(fp32, Split(TEXTS, [0] * len(TEXTS)), max_length=64)
    scales = {}
    for method in ("minmax", "entropy"):
        quantize_static_int8(fp32, tmp_path / f"{method}.onnx", feeds, method=method)
        scales[method] = _activation_scales(tmp_path / f"{method}.onnx")
    assert scales["minmax"].keys() == scales["entropy"].keys() and len(scales["minmax"]) > 10
    narrower = [k for k in scales["minmax"] if scales["entropy"][k] < 0.99 * scales["minmax"][k]]
    assert len(narrower) > len(scales["minmax"]) // 2  # KL thresholds cut the outliers


def test_optimized_int4_and_ort_files_keep_the_predictions(
    spread_onnx: Path, tmp_path: Path
) -> None:
    from exporters.mobile import convert_to_ort
    from exporters.optimize import optimize_transformer
    from exporters.quant.int4 import quantize_int4_weights

    folder = copy_package(spread_onnx, tmp_path / "onnx")
    fp32 = folder / "model.onnx"
    fused = optimize_transformer(fp32, folder / "model_optimized.onnx")
    assert fused.get("SkipLayerNormalization", 0) >= 4  # 4 layers x 2, at least partly fused
    optimized = check_parity(fp32, folder / "model_optimized.onnx", TEXTS, tolerance=1e-4)
    assert optimized.passed, optimized

    int4 = quantize_int4_weights(fp32, folder / "model_int4.onnx", block_size=16)
    ops = {n.op_type for n in onnx.load(str(int4)).graph.node}
    assert "MatMulNBits" in ops
    # 4-bit weights of a hidden-32 random model move logits more than 8-bit ones do
    weight_only = check_parity(fp32, int4, TEXTS, tolerance=math.inf, min_agreement=0.6)
    int8 = quantize_dynamic_int8(fp32, folder / "model_int8.onnx")
    eight_bit = check_parity(fp32, int8, TEXTS, tolerance=math.inf)
    assert weight_only.passed and weight_only.max_abs_diff > eight_bit.max_abs_diff

    made = convert_to_ort(fp32)
    assert Path(made["ort"]).name == "model.ort"
    assert "MatMul" in Path(made["required_operators"]).read_text()
    mobile = check_parity(fp32, Path(made["ort"]), TEXTS, tolerance=1e-6)
    assert mobile.passed and mobile.argmax_agreement == 1.0


def test_a_quantized_file_under_the_agreement_gate_is_not_shipped(
    spread_dir: Path, spread_onnx: Path, tmp_path: Path
) -> None:
    from compressor.data import Split
    from compressor.recipe import QuantizeConfig
    from exporters.artifacts import quantize_checked

    folder = copy_package(spread_onnx, tmp_path / "onnx")
    probe = Split(TEXTS, [0] * len(TEXTS))
    kept = quantize_checked(folder / "model.onnx", spread_dir, probe, calibration=None,
                            cfg=QuantizeConfig(mode="dynamic-int8"), max_length=64,
                            recipe_hash="h")  # fmt: skip
    assert kept["path"] and kept["parity"]["passed"]
    # 4-bit weights of this random model flip about a third of the decisions (see above)
    dropped = quantize_checked(folder / "model.onnx", spread_dir, probe, calibration=None,
                               cfg=QuantizeConfig(mode="int4", min_agreement=0.95),
                               max_length=64, recipe_hash="h")  # fmt: skip
    assert dropped["path"] is None and not dropped["parity"]["passed"]
    assert not (folder / "model_int4.onnx").exists()
    manifest = json.loads((folder.parent / "manifest.json").read_text())
    assert "onnx/model_int8.onnx" in manifest and "onnx/model_int4.onnx" not in manifest


def test_quantize_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        quantize_dynamic_int8(tmp_path / "model.onnx", tmp_path / "model_int8.onnx")
    assert list(tmp_path.iterdir()) == []


def test_differently_seeded_candidate_fails(
    tiny_teacher_dir: Path, spread_dir: Path, tmp_path: Path
) -> None:
    other = save_variant(tiny_teacher_dir, tmp_path / "other", seed=1, initializer_range=0.2)
    result = check_parity(spread_dir, export_onnx(other, tmp_path / "onnx"), TEXTS)
    assert not result.passed
    assert result.max_abs_diff > 0.1 and result.argmax_agreement < 0.9
    assert result.to_dict() == {
        "max_abs_diff": result.max_abs_diff,
        "argmax_agreement": result.argmax_agreement,
        "n": 64,
        "tolerance": 1e-3,
        "passed": False,
    }


def test_manifest_records_facts_and_merges(spread_onnx: Path, tmp_path: Path) -> None:
    folder = copy_package(spread_onnx, tmp_path / "onnx")
    update_manifest(folder.parent / "config.json", note="kept")
    update_manifest(folder / "model.onnx", source_model="/m", parity={"passed": True})
    manifest = update_manifest(folder / "model.onnx", dev_accuracy=0.5)
    assert json.loads((folder.parent / "manifest.json").read_text()) == manifest
    assert not (folder / "manifest.json").exists()  # one manifest, at the package's root
    entry = manifest["onnx/model.onnx"]
    data = (folder / "model.onnx").read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["size_bytes"] == len(data)
    assert entry["opset"] == 18
    assert [i["name"] for i in entry["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i["shape"] == ["batch_size", "sequence_length"] for i in entry["inputs"])
    assert all(i["dtype"] == "int64" for i in entry["inputs"])
    assert entry["source_model"] == "/m" and entry["parity"] == {"passed": True}
    assert entry["dev_accuracy"] == 0.5
    assert manifest["config.json"]["note"] == "kept" and "opset" not in manifest["config.json"]
    assert [p.name for p in folder.parent.rglob("*.tmp")] == []


def test_export_needs_weights(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(tiny_teacher_dir / name, no_weights / name)
    with pytest.raises(UserError, match="no weights"):
        export_onnx(no_weights, tmp_path / "onnx")
    with pytest.raises(UserError, match="does not exist"):
        export_onnx(tmp_path / "missing", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_dynamic_int8_keeps_excluded_nodes_fp32(
    spread_dir: Path, spread_onnx: Path, tmp_path: Path
) -> None:
    from compressor.data import Split
    from compressor.recipe import QuantizeConfig
    from exporters.artifacts import quantize_checked

    folder = copy_package(spread_onnx, tmp_path / "onnx")
    made = quantize_checked(folder / "model.onnx", spread_dir, Split(TEXTS, [0] * len(TEXTS)),
                            cfg=QuantizeConfig(exclude=["classifier"]), calibration=None,
                            max_length=64, recipe_hash="h")  # fmt: skip
    assert made["quantization"]["excluded_nodes"] == ["/classifier/Gemm"]
    nodes = onnx.load(made["path"]).graph.node
    head = {n.op_type for n in nodes if n.name.startswith("/classifier/")}
    assert "MatMul" in head and "MatMulInteger" not in head  # the head Gemm stays float
    assert any(n.op_type == "MatMulInteger" and "pooler" in n.name for n in nodes)
    entry = json.loads((folder.parent / "manifest.json").read_text())["onnx/model_int8.onnx"]
    assert entry["quantization"]["excluded_nodes"] == ["/classifier/Gemm"]


def test_checked_export_lists_tokenizer_files_in_the_manifest(
    spread_dir: Path, tmp_path: Path
) -> None:
    from compressor.data import Split
    from exporters.artifacts import export_teacher_checked

    probe = Split(TEXTS, [0] * len(TEXTS))
    path = export_teacher_checked(spread_dir, tmp_path / "teacher_onnx", probe, opset=18,
                                  max_length=64, recipe_hash="h")  # fmt: skip
    assert path == tmp_path / "teacher_onnx" / "onnx" / "model.onnx"
    manifest = json.loads((tmp_path / "teacher_onnx" / "manifest.json").read_text())
    entry = manifest["onnx/model.onnx"]
    assert entry["parity"]["passed"] and entry["recipe_hash"] == "h"
    assert entry["source_model"] == str(spread_dir)
    assert {"tokenizer.json", "vocab.txt", "tokenizer_config.json"} <= set(entry["tokenizer_files"])
    for name in entry["tokenizer_files"]:
        assert manifest[name]["role"] == "tokenizer", name
        digest = hashlib.sha256((tmp_path / "teacher_onnx" / name).read_bytes()).hexdigest()
        assert manifest[name]["sha256"] == digest, name
    assert manifest["config.json"]["role"] == "model config"
    assert "config.json" not in entry["tokenizer_files"]


def test_an_fp32_export_that_fails_parity_is_removed_and_raises(
    tiny_teacher_dir: Path, spread_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exporters.onnx
    from compressor.data import Split
    from exporters.artifacts import export_checked, export_teacher_checked

    other = save_variant(tiny_teacher_dir, tmp_path / "other", seed=1, initializer_range=0.2)
    real_export = exporters.onnx.export_onnx

    def export_another(model_dir: Path, out_dir: Path, *, opset: int) -> Path:
        return real_export(other, out_dir, opset=opset)

    # an exporter that silently traced another model: exactly what the gate is for
    monkeypatch.setattr(exporters.onnx, "export_onnx", export_another)
    probe = Split(TEXTS, [0] * len(TEXTS))
    with pytest.raises(UserError, match="does not match PyTorch on 64 dev sentences"):
        export_checked(spread_dir, tmp_path / "onnx", probe, opset=18, tolerance=1e-3,
                       max_length=64, recipe_hash="h")  # fmt: skip
    assert not (tmp_path / "onnx").exists()
    with pytest.raises(UserError, match="removed"):
        export_teacher_checked(spread_dir, tmp_path / "teacher_onnx", probe, opset=18,
                               max_length=64, recipe_hash="h")  # fmt: skip
    assert not (tmp_path / "teacher_onnx").exists()


def test_ort_files_carry_the_onnx_facts_and_a_mismatch_is_removed(
    spread_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exporters.mobile
    from compressor.data import Split
    from exporters.artifacts import ort_format_checked
    from exporters.quant.int4 import quantize_int4_weights

    folder = copy_package(spread_onnx, tmp_path / "onnx")
    update_manifest(folder / "model.onnx", recipe_hash="h")
    probe = Split(TEXTS, [0] * len(TEXTS))
    [made] = ort_format_checked([folder / "model.onnx"], probe, max_length=64, recipe_hash="h")
    assert made["ort"] == str(folder / "model.ort") and made["parity"]["passed"]
    manifest = json.loads((folder.parent / "manifest.json").read_text())
    ort_entry, onnx_entry = manifest["onnx/model.ort"], manifest["onnx/model.onnx"]
    for key in ("recipe_hash", "opset", "inputs"):
        assert ort_entry[key] == onnx_entry[key], key
    operators = manifest[ort_entry["required_operators"]]
    assert operators["source_model"] == "onnx/model.ort"

    # a converter that wrote another model's graph (int4 weights: other logits) as model.ort
    elsewhere = copy_package(spread_onnx, tmp_path / "elsewhere")
    wrong = exporters.mobile.convert_to_ort(
        quantize_int4_weights(elsewhere / "model.onnx", elsewhere / "int4.onnx", block_size=16)
    )
    real_convert = exporters.mobile.convert_to_ort

    def convert_wrongly(source: Path) -> dict[str, str]:
        paths = real_convert(source)
        shutil.copy(wrong["ort"], paths["ort"])
        return paths

    monkeypatch.setattr(exporters.mobile, "convert_to_ort", convert_wrongly)
    int8 = quantize_dynamic_int8(folder / "model.onnx", folder / "model_int8.onnx")
    [failed] = ort_format_checked([int8], probe, max_length=64, recipe_hash="h")
    assert failed["ort"] is None and not failed["parity"]["passed"]
    assert not (folder / "model_int8.ort").exists()
    assert not (folder / "model_int8.required_operators.config").exists()
    assert "onnx/model_int8.ort" not in json.loads((folder.parent / "manifest.json").read_text())


def test_reduce_range_auto_follows_the_cpus_int8_dot_product(tmp_path: Path) -> None:
    from exporters.quant._common import cpu_has_vnni, resolve_reduce_range

    avx2 = tmp_path / "avx2"
    avx2.write_text("processor : 0\nflags : fpu sse2 avx avx2 fma\n")
    vnni = tmp_path / "vnni"
    vnni.write_text("processor : 0\nflags : fpu sse2 avx avx2 avx512f avx512_vnni\n")
    assert not cpu_has_vnni(avx2) and cpu_has_vnni(vnni)
    assert cpu_has_vnni(tmp_path / "absent")  # not Linux x86: nothing to work around
    assert resolve_reduce_range("auto") == (not cpu_has_vnni())
    assert resolve_reduce_range(True) and not resolve_reduce_range(False)
