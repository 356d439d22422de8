"""Model cards: hub metadata that parses and holds the report's accuracy, the teacher's own
int8 file in the table, only files that exist, remote code only where the folder ships it,
and the compress pipeline writing a card into both shipped folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from benchmarks.report import Report, model_card, write_model_cards
from compressor.pipeline.report import write_run_report
from compressor.recipe import load_recipe
from compressor.runfolder import RunFolder

RECIPE = "student:\n  layers: 2\n"
TEACHER_INT8_ROW = (
    "| teacher ONNX int8 | onnx-int8 | 22.05 | 87.27% | +0.11 | 1.79 "
    "| 1.66\u00d7  (1.60\u20131.70) | baseline |"
)
STUDENT_INT8_ROW = (
    "| student ONNX int8 | onnx-int8 | 16.79 | 84.75% | -2.41 | 0.90 "
    "| 2.50\u00d7  (2.40\u20132.60) | 1.99\u00d7  (1.90\u20132.10) |"
)


def _entry(label: str, fmt: str, path: str, size: float, acc: float) -> dict[str, Any]:
    return {"label": label, "format": fmt, "path": path, "size_mb": size, "dev_accuracy": acc}


def _timing(label: str, batch: int, p50: float) -> dict[str, Any]:
    return {"label": label, "batch": batch, "seq_len": 128, "threads": 2, "p50_ms": p50}


def _speedup(baseline: str, candidate: str, ratio: float, low: float, high: float) -> dict:
    return {"baseline": baseline, "candidate": candidate, "batch": 1, "seq_len": 128,
            "threads": 2, "ratio": ratio, "ratio_min": low, "ratio_max": high}  # fmt: skip


def report_record(data: str = "hf:glue:sst2", teacher: str = "org/tiny-teacher") -> dict:
    """A finished run as the pipeline records it: real labels, one CPU section."""
    return {
        "run": {"name": "demo: #1", "teacher": teacher, "data": data, "notes": ["student: n1"]},
        "models": {
            "teacher": _entry("teacher PyTorch", "pytorch", "t/model", 86.658, 0.8716),
            "teacher_int8": _entry(
                "teacher ONNX int8", "onnx-int8", "t/model_int8.onnx", 22.046, 0.8727
            ),
            "student": _entry("student PyTorch", "pytorch", "r/model", 66.346, 0.8498),
            "student_onnx": _entry(
                "student ONNX", "onnx", "r/onnx/onnx/model.onnx", 66.398, 0.8498
            ),
            "student_int8": _entry(
                "student ONNX int8", "onnx-int8", "r/onnx/onnx/model_int8.onnx", 16.788, 0.8475
            ),
        },
        "training": {
            "steps": 400,
            "train_examples": 12800,
            "best_step": 300,
            "best_dev_accuracy": 0.8498,
            "stages": [
                {"name": "distill", "steps": 400, "losses": ["soft_kd", "hard_ce"], "kept": "best"}
            ],
        },
        "benchmarks": {
            "benchmark": {
                "target": "cpu",
                "mode": "measured",
                "device_name": "Test CPU",
                "threads": [2],
                "results": [
                    *(_timing(label, 4, 9.0) for label in ("teacher PyTorch", "student ONNX")),
                    _timing("teacher PyTorch", 1, 5.98),
                    _timing("teacher ONNX", 1, 2.98),
                    _timing("teacher ONNX int8", 1, 1.79),
                    _timing("student PyTorch", 1, 3.34),
                    _timing("student ONNX", 1, 1.5),
                    _timing("student ONNX int8", 1, 0.9),
                ],
                "speedups": [
                    _speedup("teacher ONNX", "teacher ONNX int8", 1.66, 1.6, 1.7),
                    _speedup("teacher ONNX", "student ONNX int8", 2.5, 2.4, 2.6),
                    _speedup("teacher ONNX int8", "student ONNX int8", 1.99, 1.9, 2.1),
                    _speedup("teacher PyTorch", "student PyTorch", 1.83, 1.8, 1.85),
                ],
            }
        },
    }


def shipped(root: Path, model_config: dict[str, Any], package_config: dict[str, Any]) -> Path:
    """A run's two folders by hand: the PyTorch student and a hub-layout package holding the
    fp32 and int8 graphs only."""
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text(json.dumps(model_config), encoding="utf-8")
    (root / "onnx" / "onnx").mkdir(parents=True)
    (root / "onnx" / "config.json").write_text(json.dumps(package_config), encoding="utf-8")
    for name in ("model.onnx", "model_int8.onnx"):
        (root / "onnx" / "onnx" / name).write_bytes(b"")
    return root


def front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def cards(tmp_path: Path, record: dict[str, Any], model_type: str = "bert") -> dict[str, str]:
    config = {"model_type": model_type}
    if model_type.startswith("compressor-"):
        config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_x.X"}
    root = shipped(tmp_path / "run", config, {"model_type": model_type})
    report = Report.model_validate(record)
    paths = write_model_cards(report, RECIPE, model_dir=root / "model", package=root / "onnx")
    assert paths == {"card_model": root / "model/README.md", "card_onnx": root / "onnx/README.md"}
    return {kind: path.read_text(encoding="utf-8") for kind, path in paths.items()}


def test_front_matter_parses_and_holds_the_reports_accuracy(tmp_path: Path) -> None:
    written = cards(tmp_path, report_record())
    model, onnx = front_matter(written["card_model"]), front_matter(written["card_onnx"])
    assert model["library_name"] == "transformers"
    assert onnx["library_name"] == "transformers.js"
    for meta in (model, onnx):
        assert meta["pipeline_tag"] == "text-classification"
        assert {"distillation", "quantization", "onnx", "compressor"} <= set(meta["tags"])
        assert meta["datasets"] == ["glue"] and meta["base_model"] == "org/tiny-teacher"
        (index,) = meta["model-index"]
        assert index["name"] == "demo: #1"  # a colon and a hash stay a string in YAML
        (result,) = index["results"]
        assert result["task"]["type"] == "text-classification"
        assert result["dataset"] == {"name": "glue/sst2", "type": "glue", "config": "sst2",
                                     "split": "validation"}  # fmt: skip
    (metric,) = model["model-index"][0]["results"][0]["metrics"]
    assert metric["type"] == "accuracy" and metric["value"] == 0.8498
    metrics = onnx["model-index"][0]["results"][0]["metrics"]
    assert {m["name"]: m["value"] for m in metrics} == {
        "Dev accuracy (onnx/model.onnx)": 0.8498,
        "Dev accuracy (onnx/model_int8.onnx)": 0.8475,
    }


def test_table_shows_the_teachers_int8_file_with_its_figures(tmp_path: Path) -> None:
    for card in cards(tmp_path, report_record()).values():
        assert TEACHER_INT8_ROW in card
        assert STUDENT_INT8_ROW in card
        assert "| teacher PyTorch | pytorch | 86.66 | 87.16% | baseline | 5.98 | baseline |" in card
        assert "- cpu: Test CPU: batch 1, length 128, 2 threads\n" in card
        assert "Distilled for 400 steps on 12800 training examples" in card
        assert "student: n1" in card
        assert "```yaml\nstudent:\n  layers: 2\n```" in card


def test_onnx_card_names_only_files_on_disk(tmp_path: Path) -> None:
    card = cards(tmp_path, report_record())["card_onnx"]
    assert "- `onnx/model.onnx`: student ONNX (onnx); transformers.js dtype `fp32`" in card
    assert "- `onnx/model_int8.onnx`: student ONNX int8 (onnx-int8); transformers.js dtype" in card
    assert 'subfolder="onnx", file_name="model_int8.onnx"' in card
    assert 'path / "onnx/model_int8.onnx"' in card  # plain ONNX Runtime
    assert '{ dtype: "int8" }' in card and 'env.localModelPath = "' in card
    for absent in ("fp16", "q4", "model_optimized", "uint8"):
        assert absent not in card


def test_model_card_loads_with_from_pretrained(tmp_path: Path) -> None:
    card = cards(tmp_path, report_record())["card_model"]
    assert "AutoModelForSequenceClassification.from_pretrained(path)\n" in card
    assert "trust_remote_code" not in card and "ORTModel" not in card


def test_custom_kind_gets_remote_code_and_onnx_runtime_only(tmp_path: Path) -> None:
    written = cards(tmp_path, report_record(), model_type="compressor-bilstm")
    assert "from_pretrained(path, trust_remote_code=True)" in written["card_model"]
    onnx = written["card_onnx"]
    assert front_matter(onnx)["library_name"] == "onnx"
    assert "ort.InferenceSession" in onnx
    for unusable in ("ORTModelForSequenceClassification", "@huggingface/transformers", "dtype `"):
        assert unusable not in onnx


def test_local_data_and_teacher_claim_no_hub_ids(tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    record = report_record(data="/data/sentiment/imdb.tsv", teacher=str(teacher))
    meta = front_matter(cards(tmp_path, record)["card_model"])
    assert "datasets" not in meta and "base_model" not in meta
    dataset = meta["model-index"][0]["results"][0]["dataset"]
    assert dataset == {"name": "imdb", "type": "imdb", "split": "validation"}


def test_a_report_without_figures_still_gives_a_valid_card(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    card = model_card(Report(), folder, "model", RECIPE)
    meta = front_matter(card)
    assert "model-index" not in meta and meta["library_name"] == "transformers"
    assert "No latency was measured in this run." in card


def test_compress_report_writes_a_card_into_both_shipped_folders(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    run = RunFolder.create(tmp_path / "run", "compress", load_recipe(), overwrite=False,
                           resume=False)  # fmt: skip
    data = {"source": "hf:glue:sst2", "notes": []}
    run.complete("distill", teacher=str(tiny_teacher_dir), data=data, steps=4, history=[])
    shutil.copytree(tiny_teacher_dir, run.path / "model")
    package = run.path / "onnx"
    graph = package / "onnx" / "model.onnx"
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"")
    shutil.copy(tiny_teacher_dir / "config.json", package / "config.json")
    run.complete("export", path=str(graph))
    run.complete("evaluate", dev_accuracy={"student": 0.75, "student_onnx": 0.5})

    paths = write_run_report(run)
    assert paths["card_model"] == run.path / "model" / "README.md"
    assert paths["card_onnx"] == package / "README.md"
    model = front_matter(paths["card_model"].read_text(encoding="utf-8"))
    assert model["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.75
    onnx = front_matter(paths["card_onnx"].read_text(encoding="utf-8"))
    assert onnx["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.5
    assert (run.path / "recipe.yaml").read_text(encoding="utf-8").strip() in paths[
        "card_model"
    ].read_text(encoding="utf-8")


def test_a_flat_package_loads_without_a_subfolder(tmp_path: Path) -> None:
    """An export from before the hub layout (graphs beside the config) still gets a card
    that loads it, and no transformers.js section, which needs `onnx/`."""
    package = tmp_path / "onnx"
    package.mkdir()
    (package / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    (package / "model_int8.onnx").write_bytes(b"")
    card = model_card(Report.model_validate(report_record()), package, "onnx", RECIPE)
    assert "- `model_int8.onnx`: student ONNX int8 (onnx-int8)\n" in card
    assert '(\n    path, file_name="model_int8.onnx"\n)' in card
    assert "subfolder" not in card and "transformers.js" not in card


def test_an_end_to_end_file_gets_its_own_snippet_and_is_never_loaded_as_a_model(
    tmp_path: Path,
) -> None:
    root = shipped(tmp_path / "run", {"model_type": "bert"}, {"model_type": "bert"})
    (root / "onnx" / "onnx" / "model_int8_e2e.onnx").write_bytes(b"")
    card = model_card(Report.model_validate(report_record()), root / "onnx", "onnx", RECIPE)
    assert "- `onnx/model_int8_e2e.onnx`: end to end, the tokenizer inside (strings in)" in card
    assert "register_custom_ops_library(get_library_path())" in card
    assert '/onnx/model_int8_e2e.onnx", options' in card
    assert 'file_name="model_int8.onnx"' in card and 'file_name="model_int8_e2e' not in card
    assert '{ dtype: "int8" }' in card
