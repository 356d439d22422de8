"""The report of a compress run: every measured figure the stages recorded, assembled into the
typed report model (`benchmarks.report.Report`) and written as report.json / .md / .html.

Benchmark sections come from whichever targets the run recorded (`recorded_sections`), so a
new target shows up here without an edit; the run's device line is built from those same
sections, never assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import Report, RunInfo, device_of, write_model_cards, write_report
from benchmarks.report.model import ModelEntry, Pruning, Training
from benchmarks.targets import recorded_sections
from compressor.layout import package_root
from compressor.pipeline.artifacts import run_artifacts
from compressor.pipeline.context import size_mb
from compressor.runfolder import RECIPE, RunFolder

PRUNING_FIELDS = (
    "source",
    "criterion",
    "targets",
    "kept",
    "schedule",
    "architecture",
    "shrink_max_abs_diff",
    "non_embedding_parameters_before",
    "trace",
)


def _teacher_notes(teacher_path: str) -> list[str]:
    """How the teacher was made, when it came from a `finetune` run folder."""
    for folder in (Path(teacher_path), Path(teacher_path).parent):
        if (folder / "state.json").is_file():
            train = RunFolder.open(folder).result("train")
            if train:
                lines = [
                    f"teacher: fine-tuned from {train['base_model']} for {train['steps']} steps "
                    f"on {train['train_examples']} examples"
                ]
                return lines + [f"teacher: {n}" for n in train.get("data", {}).get("notes", [])]
    return []


def _models(run: RunFolder, trained: dict[str, Any], teacher_path: str) -> dict[str, ModelEntry]:
    """Every model file of the run with its size, dev accuracy and export parity."""
    accs = run.result("evaluate").get("dev_accuracy", {})
    batched = run.result("evaluate").get("dev_accuracy_batched", {})
    figures = run.result("evaluate").get("dev_figures", {})
    quantize = run.result("quantize")
    parities = {
        "student_onnx": run.result("export").get("parity"),
        "student_optimized": (run.result("export").get("optimized") or {}).get("parity"),
        quantize.get("key", "student_int8"): quantize.get("parity"),
        "teacher_int8": (run.result("teacher_files").get("int8") or {}).get("parity"),
    }
    vocab = run.result("vocab")

    def params(key: str, prefix: str = "") -> int | None:
        owner = "teacher" if key.startswith("teacher") else "student"
        if owner == "student" and not prefix and vocab:
            return vocab["student_parameters"]
        return trained.get(f"{owner}_{prefix}parameters")

    return {
        key: ModelEntry.model_validate(
            {
                "label": artifact.label,
                "format": artifact.format,
                "path": str(artifact.path),
                "parameters": params(key),
                "non_embedding_parameters": params(key, "non_embedding_"),
                "size_mb": size_mb(artifact.path) if artifact.path.exists() else None,
                "dev_accuracy": accs.get(key),
                "dev_accuracy_batched": batched.get(key),
                "dev_figures": figures.get(key),
                "parity": parities.get(key),
            }
        )
        for key, artifact in run_artifacts(run, teacher_path).items()
    }


def _notes(run: RunFolder, trained: dict[str, Any], teacher_path: str) -> list[str]:
    """What a reader must know to read the figures: data caveats, vocabulary pruning, a
    masked-LM student, how the teacher was made."""
    notes = [f"student: {n}" for n in trained.get("data", {}).get("notes", [])]
    vocab = run.result("vocab")
    if vocab:
        notes.append(
            f"student: vocabulary pruned from {vocab['vocab_before']} to {vocab['vocab_after']} "
            f"tokens (those of the training text), {vocab['size_mb_before']} -> "
            f"{vocab['size_mb_after']} MB; training text gives the same logits "
            f"(max diff {vocab['max_abs_diff_on_train_text']:.1e}), unseen word-pieces -> [UNK]"
        )
    evaluate = run.result("evaluate")
    metric = evaluate.get("dev_metric", "accuracy")
    for key, figure in evaluate.get("dev_accuracy_batched", {}).items():
        notes.append(
            f"{key}: dev {metric} {100 * evaluate['dev_accuracy'][key]:.2f}% one sentence at a "
            f"time (as served and timed), {100 * figure['dev_accuracy']:.2f}% at `predict`'s "
            f"batch of {figure['batch_size']}: dynamic int8 computes its activation scales per "
            "batch, padding included, so a label can depend on the batch"
        )
    if run.result("prune").get("objective") == "mlm":
        notes.append(
            "task-agnostic (masked LM): dev accuracy is masked-token accuracy; fine-tune the "
            "student with `compressor finetune --model <run>/model` for a task"
        )
    return notes + _teacher_notes(teacher_path)


def build_report(run: RunFolder) -> Report:
    """Assemble every measured figure of a compress run into the report model."""
    prune = run.result("prune")
    trained = prune or run.result("distill")  # the stage that made the final student
    teacher_path = trained.get("teacher", "")
    benchmarks = recorded_sections(run.state["stages"])
    return Report(
        run=RunInfo(
            name=run.path.name,
            created=run.state.get("created"),
            recipe_hash=run.state.get("recipe_hash"),
            device=device_of(benchmarks),
            teacher=teacher_path,
            data=trained.get("data", {}).get("source"),
            metric=run.result("evaluate").get("dev_metric"),
            notes=_notes(run, trained, teacher_path),
        ),
        models=_models(run, trained, teacher_path),
        training=Training.model_validate(
            {
                "steps": trained.get("steps"),
                "best_step": trained.get("best_step"),
                "best_dev_accuracy": trained.get("best_dev_accuracy"),
                "train_examples": trained.get("train_examples"),
                "samples_per_s": trained.get("train_samples_per_s"),
                "train_seconds": trained.get("train_seconds"),
                "word_embeddings": trained.get("word_embeddings"),
                "history": trained.get("history"),
                "stages": trained.get("stages"),
                "augmentation": trained.get("augmentation"),
            }
        ),
        pruning=Pruning.model_validate({key: prune.get(key) for key in PRUNING_FIELDS})
        if prune
        else None,
        benchmarks=benchmarks,
    )


def write_run_report(run: RunFolder) -> dict[str, Path]:
    """The report files, and the model card of each shipped folder, from the same report."""
    report = build_report(run)
    paths = write_report(run.path, report)
    exported = run.result("export").get("path")
    return paths | write_model_cards(
        report,
        (run.path / RECIPE).read_text(encoding="utf-8"),
        model_dir=run.path / "model",
        package=package_root(Path(exported)) if exported else None,
    )
