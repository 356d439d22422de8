"""The whole `compress` chain on a tiny teacher, as a user runs it, then its resume."""

import json
import os
import sys
from pathlib import Path

import onnx
import pytest
from transformers import AutoModelForSequenceClassification

from compressor.pipeline import compress, finetune
from compressor.recipe import load_recipe
from compressor.runfolder import RunFolder
from tests.conftest import write_sst2_subset


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sst2_subset(tmp_path_factory.mktemp("data"), 256, 128)


@pytest.fixture(scope="module")
def recipe_file(small_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    path.write_text(
        f"data:\n  source: {small_data}\n  max_length: 48\n"
        "finetune:\n  max_steps: 24\n  batch_size: 32\n  lr: 0.002\n  eval_every: 8\n"
        "  checkpoint_every: 8\n"
        "student:\n  layers: 2\n"
        "train:\n  max_steps: 16\n  batch_size: 32\n  lr: 0.002\n  eval_every: 8\n"
        "  checkpoint_every: 8\n"
        "export:\n  parity_samples: 48\n  ort_format: true\n"
        "benchmark:\n  batches: [1, 4]\n  seq_lens: [16]\n  warmup: 1\n  iters: 3\n  rounds: 1\n"
        "  threads: 1\n"
    )
    return path


@pytest.fixture(scope="module")
def compressed(tiny_teacher_dir: Path, recipe_file: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    recipe = load_recipe(recipe_file)
    teacher = finetune(
        str(tiny_teacher_dir), recipe, root / "teacher", overwrite=False, resume=False
    )
    assert teacher == root / "teacher" / "model"
    compress(str(root / "teacher"), recipe, root / "student", overwrite=False, resume=False)
    return root / "student"


def test_chain_writes_every_artifact(compressed: Path) -> None:
    for rel in (
        "model/config.json",
        "onnx/config.json",  # the hub's ONNX layout: config and tokenizer at the root
        "onnx/tokenizer.json",
        "onnx/onnx/model.onnx",
        "onnx/onnx/model_int8.onnx",
        "onnx/onnx/model_optimized.onnx",
        "onnx/onnx/model.ort",
        "onnx/onnx/model_optimized.ort",
        "onnx/onnx/model_int8.ort",
        "onnx/onnx/model_int8.required_operators.config",
        "onnx/manifest.json",
        "report.json",
        "report.md",
        "report.html",
        "recipe.yaml",
        "state.json",
    ):
        assert (compressed / rel).is_file(), rel
    assert not (compressed / "training").exists()  # resumable state removed once done
    student = AutoModelForSequenceClassification.from_pretrained(compressed / "model")
    assert student.config.num_hidden_layers == 2


def test_report_holds_every_figure(compressed: Path) -> None:
    report = json.loads((compressed / "report.json").read_text())
    models = report["models"]
    assert set(models) == {
        "teacher",
        "teacher_int8",
        "student",
        "student_onnx",
        "student_optimized",
        "student_int8",
    }
    state = RunFolder.open(compressed)
    assert state.result("export")["optimized"]["parity"]["passed"]
    manifest = json.loads((compressed / "onnx" / "manifest.json").read_text())
    for name, key in (
        ("onnx/model.onnx", "student_onnx"),
        ("onnx/model_optimized.onnx", "student_optimized"),
        ("onnx/model_int8.onnx", "student_int8"),
    ):
        assert manifest[name]["dev_accuracy"] == models[key]["dev_accuracy"], name
        assert manifest[name]["recipe_hash"] and manifest[name]["inputs"], name
        ort = manifest[name.replace(".onnx", ".ort")]
        for fact in ("recipe_hash", "opset", "inputs"):
            assert ort[fact] == manifest[name][fact], (name, fact)
        # the .ort gives its source's logits, so the same dev score
        assert ort["dev_accuracy"] == pytest.approx(manifest[name]["dev_accuracy"], abs=1 / 128)
    assert manifest["tokenizer.json"]["role"] == "tokenizer"
    # dynamic int8 labels depend on their batch: one sentence at a time, and at predict's batch
    for key in ("student_int8", "teacher_int8"):
        assert models[key]["dev_accuracy_batched"]["batch_size"] == 64, key
    assert models["student_onnx"]["dev_accuracy_batched"] is None
    assert manifest["onnx/model_int8.onnx"]["dev_accuracy_batched"]["batch_size"] == 64
    assert "dev_accuracy_batched" not in manifest["onnx/model.onnx"]
    assert any("one sentence at a time" in n for n in report["run"]["notes"])
    # the tiny 400-word vocabulary leaves words unsplittable, which the extensions' WordPiece
    # tokenizes otherwise: both end-to-end files fail their gate and are removed, not shipped
    e2e = state.result("e2e")["files"]
    assert [f["path"] for f in e2e] == [None, None]
    assert all(f["gate"]["token_id_mismatches"] > 0 for f in e2e)
    assert not list((compressed / "onnx").rglob("*_e2e.onnx"))
    assert "vocab.txt" in manifest["onnx/model.onnx"]["tokenizer_files"]
    files = state.result("ort_format")["files"]
    assert [f["parity"]["passed"] for f in files] == [True, True, True]
    assert models["student_optimized"]["parity"]["passed"]
    for key, entry in models.items():
        assert 0.0 <= entry["dev_accuracy"] <= 1.0, key
        assert entry["size_mb"] > 0, key
    assert models["student"]["parameters"] < models["teacher"]["parameters"]
    # 2 of 4 layers kept: the non-embedding count halves, up to the pooler and classifier
    ratio = (
        models["student"]["non_embedding_parameters"]
        / models["teacher"]["non_embedding_parameters"]
    )
    assert 0.5 < ratio < 0.6
    assert models["student_int8"]["size_mb"] < models["student_onnx"]["size_mb"]
    parity = models["student_onnx"]["parity"]
    assert parity["passed"] and parity["max_abs_diff"] < 1e-3 and parity["n"] == 48
    # fp32 ONNX is the same function as PyTorch, so it scores the same on dev
    assert models["student_onnx"]["dev_accuracy"] == pytest.approx(
        models["student"]["dev_accuracy"], abs=1 / 128
    )
    latency = report["benchmarks"]["benchmark"]
    labels = {r["label"] for r in latency["results"]}
    assert labels == {
        "teacher PyTorch",
        "teacher ONNX",
        "teacher ONNX int8",
        "student PyTorch",
        "student ONNX",
        "student ONNX optimized",
        "student ONNX int8",
    }
    assert {(r["batch"], r["seq_len"]) for r in latency["results"]} == {(1, 16), (4, 16)}
    ratios = {(s["baseline"], s["candidate"], s["batch"]) for s in latency["speedups"]}
    assert ("teacher PyTorch", "student ONNX int8", 1) in ratios
    assert ("teacher ONNX", "student ONNX", 4) in ratios
    assert ("student ONNX", "student ONNX int8", 1) in ratios
    assert ("student ONNX", "student ONNX optimized", 1) in ratios
    # the number to beat: the teacher's own int8 file, gated, scored and timed in the same run
    assert ("teacher ONNX int8", "student ONNX int8", 1) in ratios
    assert ("teacher ONNX", "teacher ONNX int8", 4) in ratios
    baseline = state.result("teacher_files")["int8"]
    assert baseline["parity"]["passed"] and baseline["key"] == "student_int8"
    assert models["teacher_int8"]["parity"]["argmax_agreement"] >= 0.9
    assert models["teacher_int8"]["parameters"] == models["teacher"]["parameters"]
    md = (compressed / "report.md").read_text()
    tradeoff = md.split("## Export and quantization trade-off")[1].split("\n## ")[0]
    assert "student ONNX int8" in tradeoff and "teacher ONNX int8" not in tradeoff
    teacher_manifest = json.loads((compressed / "teacher_onnx" / "manifest.json").read_text())
    assert (
        teacher_manifest["onnx/model_int8.onnx"]["dev_accuracy"]
        == models["teacher_int8"]["dev_accuracy"]
    )
    assert report["training"]["steps"] == 16
    assert [h["step"] for h in report["training"]["history"]] == [8, 16]
    assert any(n.startswith("teacher: fine-tuned from") for n in report["run"]["notes"])
    md = (compressed / "report.md").read_text()
    assert f"{models['teacher']['dev_accuracy'] * 100:.2f}" in md


def test_demo_summary_publishes_the_runs_own_ratios(compressed: Path, tmp_path: Path) -> None:
    """`make demo`'s results file quotes each model's speed-up exactly as the run measured it
    (batch 1, the longest fixed length, the most threads), stamped with its provenance."""
    from benchmarks.experiments import demo_summary

    assert demo_summary.main([str(compressed), "--results", str(tmp_path)]) == 0
    text = (tmp_path / "demo.md").read_text(encoding="utf-8")
    assert text.splitlines()[1].startswith("- commit: ")
    report = json.loads((compressed / "report.json").read_text())
    rows = {row[0]: row for row in json.loads((tmp_path / "demo.json").read_text())["data"]["rows"]}
    assert set(rows) == {m["label"] for m in report["models"].values()}
    assert rows["teacher PyTorch"][4] == "1.00x"
    (int8,) = [
        s
        for s in report["benchmarks"]["benchmark"]["speedups"]
        if s["baseline"] == "teacher ONNX"
        and s["candidate"] == "student ONNX int8"
        and s["batch"] == 1
        and s["seq_len"] == 16
    ]
    assert rows["student ONNX int8"][5] == f"{int8['ratio']:.2f}x ({int8['ratio_min']:.2f}-" + (
        f"{int8['ratio_max']:.2f})"
    )
    accuracy = report["models"]["student"]["dev_accuracy"]
    assert rows["student PyTorch"][2] == f"{100 * accuracy:.2f} %"
    assert f"| student PyTorch | pytorch | {100 * accuracy:.2f} % |" in text


def test_an_export_failing_parity_stops_compress_and_ships_nothing(
    compressed: Path, recipe_file: Path, tmp_path: Path
) -> None:
    import shutil

    from compressor.data import load_task_data
    from compressor.errors import UserError
    from compressor.pipeline.context import RunContext
    from compressor.pipeline.export import Export

    run = RunFolder.open(shutil.copytree(compressed, tmp_path / "run"))
    strict = load_recipe(recipe_file, {"export.parity_tolerance": 1e-12})
    with pytest.raises(UserError, match="does not match PyTorch on 48 dev sentences"):
        Export().run(RunContext(strict, "", run, preloaded=load_task_data(strict.data)))
    assert not (run.path / "onnx").exists()


def test_resume_skips_finished_stages(
    compressed: Path, tiny_teacher_dir: Path, recipe_file: Path
) -> None:
    run = RunFolder.open(compressed)
    del run.state["stages"]["benchmark"]
    run.save()
    model_mtime = os.path.getmtime(compressed / "model" / "model.safetensors")
    onnx_mtime = os.path.getmtime(compressed / "onnx" / "onnx" / "model.onnx")
    compress(
        str(compressed.parent / "teacher"),
        load_recipe(recipe_file),
        compressed,
        overwrite=False,
        resume=True,
    )
    assert os.path.getmtime(compressed / "model" / "model.safetensors") == model_mtime
    assert os.path.getmtime(compressed / "onnx" / "onnx" / "model.onnx") == onnx_mtime
    assert RunFolder.open(compressed).done("benchmark")


def test_resume_with_another_recipe_is_refused(compressed: Path, recipe_file: Path) -> None:
    from compressor.errors import UserError

    other = load_recipe(recipe_file, {"train.lr": 0.5})
    with pytest.raises(UserError, match="different recipe"):
        compress(
            str(compressed.parent / "teacher"), other, compressed, overwrite=False, resume=True
        )


def test_single_stage_commands_on_the_run(
    compressed: Path, small_data: Path, tmp_path: Path
) -> None:
    from tests.test_cli import cli

    data = ["--data", str(small_data)]
    exported = cli("export", str(compressed), "--out", str(tmp_path / "onnx"), *data)
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((tmp_path / "onnx" / "manifest.json").read_text())
    assert manifest["onnx/model.onnx"]["parity"]["passed"] is True
    assert manifest["onnx/model.onnx"]["opset"] == 18
    assert 0.0 <= manifest["onnx/model.onnx"]["dev_accuracy"] <= 1.0
    assert manifest["onnx/model.onnx"]["dev_examples"] == 128
    assert manifest["tokenizer_config.json"]["role"] == "tokenizer"

    strict = cli("export", str(compressed), "--out", str(tmp_path / "strict"), *data,
                 "--tolerance", "1e-12")  # fmt: skip
    assert strict.returncode == 2 and "does not match PyTorch" in strict.stderr
    assert not (tmp_path / "strict").exists()

    quantized = cli("quantize", str(tmp_path / "onnx"), *data)
    assert quantized.returncode == 0, quantized.stderr
    manifest = json.loads((tmp_path / "onnx" / "manifest.json").read_text())
    assert 0.0 <= manifest["onnx/model_int8.onnx"]["dev_accuracy"] <= 1.0
    assert manifest["onnx/model_int8.onnx"]["quantization"]["per_channel"] is True
    assert manifest["onnx/model.onnx"]["dev_examples"] == 128  # fp32 scored by quantize too

    static = cli(
        "quantize",
        str(tmp_path / "onnx"),
        *data,
        "--mode",
        "static-int8",
        "--calibration",
        "percentile",
        "--calibration-samples",
        "24",
        "--exclude",
        "classifier",
    )
    assert static.returncode == 0, static.stderr
    entry = json.loads((tmp_path / "onnx" / "manifest.json").read_text())[
        "onnx/model_static_int8.onnx"
    ]
    assert entry["quantization"]["mode"] == "static-int8"
    assert entry["quantization"]["calibration_samples"] == 24
    assert entry["quantization"]["excluded_nodes"]
    assert 0.0 <= entry["dev_accuracy"] <= 1.0

    int4 = cli("quantize", str(tmp_path / "onnx"), *data, "--mode", "int4")
    assert int4.returncode == 0, int4.stderr
    entry = json.loads((tmp_path / "onnx" / "manifest.json").read_text())["onnx/model_q4.onnx"]
    assert entry["quantization"] == {"mode": "int4", "block_size": 32, "excluded_nodes": []}
    assert 0.0 <= entry["dev_accuracy"] <= 1.0

    half = cli("quantize", str(tmp_path / "onnx"), *data, "--mode", "fp16")
    assert half.returncode == 0, half.stderr
    entry = json.loads((tmp_path / "onnx" / "manifest.json").read_text())["onnx/model_fp16.onnx"]
    assert entry["quantization"]["mode"] == "fp16"
    assert entry["parity"]["argmax_agreement"] == 1.0 and entry["parity"]["max_abs_diff"] < 1e-2
    half_graph = onnx.load(str(tmp_path / "onnx" / "onnx" / "model_fp16.onnx"))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in half_graph.graph.initializer)

    limited = cli("quantize", str(tmp_path / "onnx"), *data, "--mode", "int4", "--max-drop", "100")
    assert limited.returncode == 0, limited.stderr
    entry = json.loads((tmp_path / "onnx" / "manifest.json").read_text())["onnx/model_q4.onnx"]
    record = entry["quantization"]["max_drop"]
    assert record["limit_points"] == 100 and record["within_limit"] and record["kept_fp32"] == []
    assert "'changed_points_after'" in limited.stdout and "'within_limit': True" in limited.stdout

    (compressed / "report.md").unlink()
    reported = cli("report", str(compressed))
    assert reported.returncode == 0, reported.stderr
    assert (compressed / "report.md").is_file() and "Speed-ups" in reported.stdout


def test_benchmark_targets_on_the_run(compressed: Path) -> None:
    """cuda is skipped with its reason here (no GPU), arm is estimated and says so, and the
    CPU target sweeps threads over the dev set's own lengths."""
    from tests.test_cli import cli

    cuda = cli("benchmark", str(compressed), "--target", "cuda")
    assert cuda.returncode == 0, cuda.stderr
    report = json.loads((compressed / "report.json").read_text())
    assert report["benchmarks"]["benchmark_cuda"]["mode"] == "skipped"
    assert "no CUDA device" in report["benchmarks"]["benchmark_cuda"]["reason"]

    arm = cli(
        "benchmark",
        str(compressed),
        "--target",
        "arm",
        "--batch",
        "1",
        "--seq-len",
        "16",
        "--profile",
        "raspberry-pi-4",
        "--profile",
        "cortex-a76",
    )
    assert arm.returncode == 0, arm.stderr
    sections = json.loads((compressed / "report.json").read_text())["benchmarks"]
    (estimated,) = [s for key, s in sections.items() if key.startswith("benchmark_arm")]
    assert estimated["mode"] == "estimated" and set(estimated["profiles"]) == {
        "raspberry-pi-4",
        "cortex-a76",
    }
    by_key = {(e["profile"], e["label"], e["threads"]): e for e in estimated["estimates"]}
    # profiles x (teacher, teacher int8, student, student int8) x (1, 4 threads)
    assert len(by_key) == 2 * 4 * 2
    for profile in ("raspberry-pi-4", "cortex-a76"):
        for threads in (1, 4):
            teacher = by_key[profile, "teacher ONNX", threads]
            student = by_key[profile, "student ONNX", threads]
            # 2 of 4 layers: half the encoder's multiply-adds, counted not timed
            assert student["gflop"] == pytest.approx(teacher["gflop"] / 2, rel=0.05)
            assert student["estimate_ms"] < teacher["estimate_ms"]
        assert by_key[profile, "student ONNX int8", 1]["int8_gop"] > 0
        assert by_key[profile, "teacher ONNX int8", 1]["int8_gop"] > 0
    assert {c["label"] for c in estimated["calibration"]} == {
        "teacher ONNX",
        "teacher ONNX int8",
        "student ONNX",
        "student ONNX int8",
    }
    assert all(c["measured_p50_ms"] > 0 and c["estimate_ms"] > 0 for c in estimated["calibration"])
    md = (compressed / "report.md").read_text()
    assert "## ARM (estimated)" in md and "## Latency (CUDA, measured)" in md

    cpu = cli(
        "benchmark",
        str(compressed),
        "--seq-len",
        "dev",
        "--batch",
        "4",
        "--threads",
        "1",
        "--threads",
        "2",
        "--iters",
        "2",
        "--rounds",
        "1",
    )
    assert cpu.returncode == 0, cpu.stderr
    latency = json.loads((compressed / "report.json").read_text())["benchmarks"]["benchmark"]
    assert {(r["threads"], r["seq_len"]) for r in latency["results"]} == {(1, "dev"), (2, "dev")}
    assert {s["threads"] for s in latency["speedups"]} == {1, 2}

    refused = cli("benchmark", str(compressed), "--target", "arm", "--arm-mode", "measured")
    assert refused.returncode == 2 and "needs an ARM machine" in refused.stderr
    assert "Traceback" not in refused.stderr
    conflict = cli("benchmark", str(compressed), "--remote", "pi@board", "--target", "cpu")
    assert conflict.returncode == 2 and "--remote measures on the device" in conflict.stderr


def test_benchmark_remote_from_the_cli(compressed: Path, tmp_path: Path) -> None:
    """--remote alone means ARM, measured on the device; the report says where."""
    from tests.test_cli import cli
    from tests.test_remote import FAKE_SCP, FAKE_SSH

    for name, body in (("ssh", FAKE_SSH), ("scp", FAKE_SCP)):
        (tmp_path / name).write_text(body)
        (tmp_path / name).chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "FAKE_SSH_LOG": str(tmp_path / "log")}
    flags = ["--batch", "1", "--seq-len", "16", "--threads", "1", "--iters", "2", "--rounds", "1"]
    done = cli("benchmark", str(compressed), "--remote", "pi@board", "--remote-python",
               sys.executable, *flags, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    sections = json.loads((compressed / "report.json").read_text())["benchmarks"]
    arms = [s for key, s in sections.items() if key.startswith("benchmark_arm")]
    (measured,) = [a for a in arms if a["mode"] == "measured"]
    assert measured["remote"] == "pi@board"
    assert {r["label"] for r in measured["results"]} == {
        "teacher ONNX",
        "teacher ONNX int8",
        "student ONNX",
        "student ONNX int8",
    }
    assert "Measured on the device pi@board" in (compressed / "report.md").read_text()
