"""The report of a compress run: every measured figure the stages recorded, assembled into
the report schema and written as report.json / .md / .html."""

from __future__ import annotations

from pathlib import Path

from compressor.pipeline.artifacts import run_artifacts
from compressor.pipeline.benchmark import ARM_MODES
from compressor.pipeline.context import size_mb
from compressor.runfolder import RunFolder


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


def build_report(run: RunFolder) -> dict:
    """Assemble every measured figure of a compress run into the report schema."""
    prune = run.result("prune")
    distill = prune or run.result("distill")  # the stage that made the final student
    teacher_path = distill.get("teacher", "")
    accs = run.result("evaluate").get("dev_accuracy", {})
    parities = {
        "student_onnx": run.result("export").get("parity"),
        "student_optimized": (run.result("export").get("optimized") or {}).get("parity"),
        run.result("quantize").get("key", "student_int8"): run.result("quantize").get("parity"),
    }

    vocab = run.result("vocab")

    def params(key: str, prefix: str = "") -> int | None:
        owner = "teacher" if key == "teacher" else "student"
        if owner == "student" and not prefix and vocab:
            return vocab["student_parameters"]
        return distill.get(f"{owner}_{prefix}parameters")

    models = {}
    for key, artifact in run_artifacts(run, teacher_path).items():
        path = artifact.path
        models[key] = {
            "label": artifact.label,
            "format": artifact.format,
            "path": str(path),
            "parameters": params(key),
            "non_embedding_parameters": params(key, "non_embedding_"),
            "size_mb": size_mb(path) if path.exists() else None,
            "dev_accuracy": accs.get(key),
            "parity": parities.get(key),
        }
    notes = [f"student: {n}" for n in distill.get("data", {}).get("notes", [])]
    if vocab:
        notes.append(
            f"student: vocabulary pruned from {vocab['vocab_before']} to {vocab['vocab_after']} "
            f"tokens (those of the training text), {vocab['size_mb_before']} -> "
            f"{vocab['size_mb_after']} MB; training text gives the same logits "
            f"(max diff {vocab['max_abs_diff_on_train_text']:.1e}), unseen word-pieces -> [UNK]"
        )
    if prune.get("objective") == "mlm":
        notes.append(
            "task-agnostic (masked LM): dev accuracy is masked-token accuracy; fine-tune the "
            "student with `compressor finetune --model <run>/model` for a task"
        )
    notes += _teacher_notes(teacher_path)
    bench = run.result("benchmark")
    return {
        "run": {
            "name": run.path.name,
            "created": run.state.get("created"),
            "recipe_hash": run.state.get("recipe_hash"),
            "device": "cpu",
            "teacher": teacher_path,
            "data": distill.get("data", {}).get("source"),
            "notes": notes,
        },
        "models": models,
        "training": {
            "steps": distill.get("steps"),
            "best_step": distill.get("best_step"),
            "best_dev_accuracy": distill.get("best_dev_accuracy"),
            "train_examples": distill.get("train_examples"),
            "samples_per_s": distill.get("train_samples_per_s"),
            "history": distill.get("history"),
            "stages": distill.get("stages"),
            "augmentation": distill.get("augmentation"),
        },
        "pruning": {
            key: prune.get(key)
            for key in (
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
        }
        if prune
        else None,
        "latency": {
            "mode": bench.get("mode", "measured"),
            "device_name": bench.get("device_name"),
            "threads": bench.get("threads"),
            "results": bench.get("results", []),
            "speedups": bench.get("speedups", []),
        }
        if bench
        else None,
        "latency_cuda": run.result("benchmark_cuda") or None,
        "arm": [
            run.result(f"benchmark_arm_{m}") for m in ARM_MODES if run.done(f"benchmark_arm_{m}")
        ],
    }


def write_run_report(run: RunFolder) -> dict[str, Path]:
    from benchmarks.report import write_report

    return write_report(run.path, build_report(run))
