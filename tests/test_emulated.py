"""ARM emulation: the runner's JSON contract, the inputs, the comparison and the root checks
run anywhere; the one test that runs qemu needs the root `make arm-root` builds and skips
without it (CI does not build it)."""

from __future__ import annotations

import json
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from optimum.exporters.onnx import main_export

from benchmarks.targets import Artifacts, arm_root, get_target
from benchmarks.targets import emulated as em
from compressor.errors import UserError
from compressor.recipe import BenchmarkConfig


@pytest.fixture(scope="module")
def tiny_onnx(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_onnx_emulated")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter from the export, not from our code
        main_export(
            str(tiny_teacher_dir),
            output=str(out),
            task="text-classification",
            opset=17,
            do_validation=False,
        )
    return out / "model.onnx"


def _run_on_host(onnx_path: Path, folder: Path, iters: int = 3) -> dict:
    inputs = folder / "inputs.npz"
    np.savez(inputs, **em.fixed_inputs(onnx_path))
    script = em.write_runner(folder)
    args = {"model": str(onnx_path), "inputs": str(inputs), "threads": 1, "iters": iters}
    return em.run_runner([sys.executable], script, args)


def test_runner_json_contract_on_host(tiny_onnx: Path, tmp_path: Path) -> None:
    out = _run_on_host(tiny_onnx, tmp_path, iters=3)
    assert "error" not in out, out
    assert out["machine"] == platform.machine()
    assert out["providers"] == ["CPUExecutionProvider"]
    assert np.asarray(out["logits"]).shape == (em.N_SAMPLES, 2)
    assert len(out["first_call_ms"]) == em.N_SAMPLES
    assert len(out["times_ms"]) == 3
    assert out["p50_ms"] == pytest.approx(float(np.median(out["times_ms"])))
    assert out["threads"] == 1 and out["load_ms"] > 0


def test_runner_script_stands_alone(tmp_path: Path) -> None:
    """No project import may leak in: the emulated python has numpy and onnxruntime only."""
    source = em.write_runner(tmp_path).read_text(encoding="utf-8")
    compile(source, "emulated_runner.py", "exec")
    assert "compressor" not in source and "benchmarks" not in source


def test_runner_reports_failure_instead_of_raising(tmp_path: Path) -> None:
    script = em.write_runner(tmp_path)
    args = {"model": str(tmp_path / "absent.onnx"), "inputs": "x", "threads": 1, "iters": 1}
    out = em.run_runner([sys.executable], script, args)
    assert out["error"].startswith("exit 1")


def test_fixed_inputs_are_seeded_padded_and_within_vocab(tiny_onnx: Path) -> None:
    first, again = em.fixed_inputs(tiny_onnx), em.fixed_inputs(tiny_onnx)
    assert set(first) == {"input_ids", "attention_mask", "token_type_ids"}
    for name, value in first.items():
        assert value.shape == (em.N_SAMPLES, em.SEQ_LEN) and value.dtype == np.int64
        assert np.array_equal(value, again[name])
    mask, ids = first["attention_mask"], first["input_ids"]
    assert mask.sum(axis=1).tolist() == [em.SEQ_LEN - 3 * i for i in range(em.N_SAMPLES)]
    assert (ids[mask == 0] == 0).all()
    import onnx

    vocab = em._vocab_size(onnx.load(str(tiny_onnx)).graph)
    assert vocab is not None and vocab > 300
    assert ids.max() < vocab and ids[mask == 1].min() > 0


def test_compare_logits_known_numbers() -> None:
    ref = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.4]]
    cand = [[1.1, 2.0], [3.0, -1.0], [0.4, 0.5]]
    out = em.compare_logits(ref, cand)
    assert out["max_abs_diff"] == pytest.approx(0.1)
    assert out["argmax_agree"] == pytest.approx(2 / 3)
    assert out["n"] == 3
    with pytest.raises(ValueError):
        em.compare_logits(ref, cand[:2])


def _answer(logits: list[list[float]], p50: float) -> dict:
    return {
        "machine": "aarch64",
        "providers": ["CPUExecutionProvider"],
        "cpu_features": ["asimd"],
        "logits": logits,
        "load_ms": 50.0,
        "times_ms": [p50, p50 * 2],
        "p50_ms": p50,
    }


def test_check_row_verdicts_and_labels() -> None:
    host = _answer([[1.0, 2.0], [2.0, 1.0]], 1.0)
    close = _answer([[1.0, 2.0 + 1e-5], [2.0, 1.0]], 200.0)
    row = em.check_row(host, close, tolerance=1e-3)
    assert row["passed"] and row["emulation_slowdown"] == pytest.approx(200.0)
    assert "p50_ms" not in row, "an emulated time must never sit in a device-time column"
    assert row["p50_ms_emulated"] == 200.0 and row["host_p50_ms"] == 1.0

    off = _answer([[1.0, 2.1], [2.0, 1.0]], 200.0)
    assert not em.check_row(host, off, tolerance=1e-3)["passed"]
    assert em.check_row(host, off, tolerance=None)["passed"], "int8 is judged on the argmax"
    flipped = _answer([[1.0, 2.0], [1.0, 2.0]], 200.0)
    assert not em.check_row(host, flipped, tolerance=None)["passed"]

    crashed = em.check_row(host, {"error": "exit -11: "}, tolerance=1e-3)
    assert crashed == {"passed": False, "error": "exit -11: "}


def test_model_files_include_the_ort_sibling(tmp_path: Path) -> None:
    onnx_path = tmp_path / "model.onnx"
    onnx_path.touch()
    assert em.model_files(onnx_path) == [("onnx", onnx_path)]
    onnx_path.with_suffix(".ort").touch()
    assert em.model_files(onnx_path)[1] == ("ort", tmp_path / "model.ort")


def test_is_quantized_reads_the_graph(tiny_onnx: Path) -> None:
    assert not em.is_quantized(tiny_onnx)


def test_missing_root_is_one_line_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_onnx: Path
) -> None:
    monkeypatch.setenv("COMPRESSOR_CACHE_DIR", str(tmp_path / "cache"))
    arts = Artifacts(tmp_path, tiny_onnx, tmp_path)
    cfg = BenchmarkConfig(arm_mode="emulated")
    with pytest.raises(UserError, match="make arm-root") as err:
        get_target("arm").measure(arts, cfg, cores=1, lengths=None)
    assert str(tmp_path / "cache" / "arm64-root") in str(err.value)
    assert "\n" not in str(err.value)


def test_root_for_another_onnxruntime_is_refused(tmp_path: Path) -> None:
    (tmp_path / arm_root.ROOT_MANIFEST).write_text(json.dumps({"onnxruntime": "0.0.1"}))
    with pytest.raises(UserError, match="again"):
        arm_root.find_root(str(tmp_path))


def test_build_without_debootstrap_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        arm_root.shutil, "which", lambda tool: None if tool == "debootstrap" else tool
    )
    with pytest.raises(UserError, match="apt-get install debootstrap"):
        arm_root.build_arm_root(tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_emulated_check_on_the_real_root(tiny_onnx: Path, tmp_path: Path) -> None:
    """The whole check under qemu: the ONNX file and its .ort on every emulated core."""
    try:
        arm_root.find_root(None)
    except UserError as exc:
        pytest.skip(f"no arm64 emulation root here ({exc})")
    from exporters.mobile import convert_to_ort

    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(tiny_onnx.read_bytes())
    convert_to_ort(onnx_path)
    arts = Artifacts(tmp_path, onnx_path, tmp_path)
    cfg = BenchmarkConfig(arm_mode="emulated")
    result = get_target("arm").measure(arts, cfg, cores=1, lengths=None).record()
    print(json.dumps({k: v for k, v in result.items() if k != "results"}, indent=1))
    for row in result["results"]:
        print(
            f"{row['format']:4} {row['cpu']:11} max|diff| {row.get('max_abs_diff')} "
            f"argmax {row.get('argmax_agree')} p50 {row.get('p50_ms_emulated')} ms emulated "
            f"({row.get('emulation_slowdown')}x host) {row.get('error', '')}"
        )
    assert result["mode"] == "emulated" and "never a device figure" in result["note"]
    assert result["cpus"] and {row["format"] for row in result["results"]} == {"onnx", "ort"}
    assert len(result["results"]) == 2 * len(result["cpus"])
    assert all(row["machine"] == "aarch64" for row in result["results"]), result["results"]
    assert result["passed"], result["results"]
