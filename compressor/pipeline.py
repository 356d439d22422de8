"""The chain behind the CLI: finetune a teacher; compress = distill -> export -> quantize ->
evaluate -> benchmark -> report. Each stage reads and writes the run folder and is recorded
in its state, so a stage can run alone and `--resume` skips what is done."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.console import Console

from compressor import atomic
from compressor.data import TaskData, load_task_data
from compressor.distill.objective import DistillObjective
from compressor.distill.trainer import train
from compressor.models import (
    build_student,
    check_labels,
    count_parameters,
    load_classifier,
    resolve_model_dir,
)
from compressor.recipe import Recipe
from compressor.runfolder import RunFolder

console = Console(stderr=True)


def _finish_model(run: RunFolder, train_dir: Path) -> Path:
    """Promote the best checkpoint to `model/`; the resumable state is dropped only after the
    stage is recorded (`_drop_training`), so a crash in between still resumes."""
    target = run.path / "model"
    with atomic.atomic_dir(target) as tmp:
        for item in (train_dir / "best").iterdir():
            shutil.copy2(item, tmp / item.name)
    return target


def _drop_training(run: RunFolder) -> None:
    shutil.rmtree(run.path / "training", ignore_errors=True)


def _describe(data: TaskData) -> dict:
    return {
        "source": data.source,
        "train_examples": len(data.train),
        "dev_examples": len(data.dev),
        "labels": data.label_names,
        "notes": data.notes,
    }


def finetune(model: str, recipe: Recipe, out: Path, *, overwrite: bool, resume: bool) -> Path:
    """Fine-tune a backbone (or re-tune a classifier) on the task: the teacher of a run."""
    run = RunFolder.create(out, "finetune", recipe, overwrite=overwrite, resume=resume)
    if not run.done("train"):
        data = load_task_data(recipe.data)
        classifier, tokenizer = load_classifier(model, data.num_labels, data.label_names)

        def ce_loss(m, batch):
            out = m(**batch)
            return out.loss, {"ce": out.loss.item()}

        state = train(
            classifier,
            tokenizer,
            data.train,
            data.dev,
            recipe.finetune,
            max_length=recipe.data.max_length,
            out_dir=run.path / "training",
            compute_loss=ce_loss,
            resume=resume,
            description="fine-tuning teacher",
        )
        _finish_model(run, run.path / "training")
        run.complete(
            "train",
            base_model=str(model),
            data=_describe(data),
            steps=state.step,
            best_step=state.best_step,
            dev_accuracy=state.best_dev_accuracy,
            history=state.history,
            parameters=count_parameters(classifier),
            train_examples=state.train_examples,
        )
        _drop_training(run)
    result = run.result("train")
    console.print(
        f"teacher: dev accuracy {result['dev_accuracy']:.4f} after {result['steps']} steps "
        f"-> {run.path / 'model'}"
    )
    return run.path / "model"


def _distill(run: RunFolder, teacher_path: str, recipe: Recipe, data: TaskData, resume: bool):
    teacher, tokenizer = load_classifier(teacher_path)
    check_labels(teacher, data.label_names, data.source)
    teacher.requires_grad_(False)
    student = build_student(teacher, recipe.student)
    objective = DistillObjective(teacher, student, recipe.distill)
    state = train(
        student,
        tokenizer,
        data.train,
        data.dev,
        recipe.train,
        max_length=recipe.data.max_length,
        out_dir=run.path / "training",
        compute_loss=objective,
        extra_modules=objective.modules,
        frozen_modules=[teacher],
        resume=resume,
        description=f"distilling {recipe.student.layers}-layer student",
    )
    _finish_model(run, run.path / "training")
    run.complete(
        "distill",
        teacher=teacher_path,
        data=_describe(data),
        steps=state.step,
        best_step=state.best_step,
        best_dev_accuracy=state.best_dev_accuracy,
        history=state.history,
        train_examples=state.train_examples,
        train_seconds=round(state.train_seconds, 2),
        train_samples_per_s=round(
            state.samples_per_second(recipe.train.batch_size, recipe.train.grad_accum), 2
        ),
        teacher_parameters=count_parameters(teacher),
        student_parameters=count_parameters(student),
        teacher_non_embedding_parameters=count_parameters(teacher, embeddings=False),
        student_non_embedding_parameters=count_parameters(student, embeddings=False),
    )
    _drop_training(run)


def _export(run: RunFolder, recipe: Recipe, data: TaskData) -> None:
    from compressor.artifacts import export_checked

    result = export_checked(
        run.path / "model",
        run.path / "onnx",
        data.dev.take(recipe.export.parity_samples),
        opset=recipe.export.opset,
        tolerance=recipe.export.parity_tolerance,
        max_length=recipe.data.max_length,
        recipe_hash=recipe.hash(),
    )
    if not result["parity"]["passed"]:
        console.print(f"[red]ONNX parity FAILED: {result['parity']}")
    run.complete("export", **result)


def _quantize(run: RunFolder, recipe: Recipe, data: TaskData) -> None:
    from compressor.artifacts import quantize_checked

    result = quantize_checked(
        Path(run.result("export")["path"]),
        run.path / "model",
        data.dev.take(recipe.export.parity_samples),
        per_channel=recipe.quantize.per_channel,
        max_length=recipe.data.max_length,
        recipe_hash=recipe.hash(),
    )
    run.complete("quantize", **result)


def _artifacts(run: RunFolder, teacher_path: str) -> dict[str, tuple[str, str, Path]]:
    """key -> (label, format, path) of every artifact the report covers."""
    items = {
        "teacher": ("teacher PyTorch", "pytorch", Path(resolve_model_dir(teacher_path))),
        "student": ("student PyTorch", "pytorch", run.path / "model"),
    }
    if run.done("export"):
        items["student_onnx"] = ("student ONNX", "onnx", Path(run.result("export")["path"]))
    if run.done("quantize"):
        items["student_int8"] = (
            "student ONNX int8",
            "onnx-int8",
            Path(run.result("quantize")["path"]),
        )
    return items


def _size_mb(path: Path) -> float:
    files = (
        [path]
        if path.is_file()
        else [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".onnx", ".data")]
    )
    return round(sum(os.path.getsize(p) for p in files) / 2**20, 3)


def _evaluate(run: RunFolder, teacher_path: str, recipe: Recipe, data: TaskData) -> None:
    from benchmarks.evaluate import accuracy

    scores = {}
    for key, (_label, _fmt, path) in _artifacts(run, teacher_path).items():
        with console.status(f"dev accuracy of {key}"):
            scores[key] = accuracy(
                path,
                data.dev.texts,
                data.dev.pairs,
                data.dev.labels,
                max_length=recipe.data.max_length,
            )
    run.complete("evaluate", dev_accuracy=scores, dev_examples=len(data.dev))


def benchmark(run: RunFolder, teacher_path: str, recipe: Recipe) -> None:
    """Latency of teacher and student, PyTorch and ONNX, each in its own process."""
    from benchmarks.latency import Variant, run_latency, speedups
    from exporters.onnx import export_onnx

    teacher_dir = Path(resolve_model_dir(teacher_path))
    teacher_onnx = run.path / "teacher_onnx" / "model.onnx"
    if not teacher_onnx.is_file():
        with console.status("exporting the teacher to ONNX for a like-for-like comparison"):
            teacher_onnx = export_onnx(teacher_dir, teacher_onnx.parent, opset=recipe.export.opset)
    arts = _artifacts(run, teacher_path)
    variants = [
        Variant("teacher PyTorch", teacher_dir, "pytorch"),
        Variant("teacher ONNX", teacher_onnx, "onnxruntime"),
        Variant("student PyTorch", arts["student"][2], "pytorch"),
    ]
    if "student_onnx" in arts:
        variants.append(Variant("student ONNX", arts["student_onnx"][2], "onnxruntime"))
    if "student_int8" in arts:
        variants.append(Variant("student ONNX int8", arts["student_int8"][2], "onnxruntime"))
    cfg = recipe.benchmark
    threads = cfg.threads or os.cpu_count() or 1
    results = run_latency(
        variants,
        batches=tuple(cfg.batches),
        seq_lens=tuple(cfg.seq_lens),
        threads=threads,
        warmup=cfg.warmup,
        iters=cfg.iters,
        rounds=cfg.rounds,
    )
    labels = {v.label for v in variants}
    pairs = [
        (a, b)
        for a, b in [
            ("teacher PyTorch", "student PyTorch"),
            ("teacher PyTorch", "student ONNX"),
            ("teacher ONNX", "student ONNX"),
            ("teacher ONNX", "student ONNX int8"),
            ("teacher PyTorch", "student ONNX int8"),
        ]
        if a in labels and b in labels
    ]
    run.complete(
        "benchmark",
        target="cpu",
        threads=threads,
        results=results,
        speedups=speedups(results, pairs),
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


def build_report(run: RunFolder) -> dict:
    """Assemble every measured figure of a compress run into the report schema."""
    distill = run.result("distill")
    teacher_path = distill.get("teacher", "")
    accs = run.result("evaluate").get("dev_accuracy", {})
    parities = {
        "student_onnx": run.result("export").get("parity"),
        "student_int8": run.result("quantize").get("parity"),
    }

    def params(key: str, prefix: str = "") -> int | None:
        owner = "teacher" if key == "teacher" else "student"
        return distill.get(f"{owner}_{prefix}parameters")

    models = {}
    for key, (label, fmt, path) in _artifacts(run, teacher_path).items():
        models[key] = {
            "label": label,
            "format": fmt,
            "path": str(path),
            "parameters": params(key),
            "non_embedding_parameters": params(key, "non_embedding_"),
            "size_mb": _size_mb(path) if path.exists() else None,
            "dev_accuracy": accs.get(key),
            "parity": parities.get(key),
        }
    notes = [f"student: {n}" for n in distill.get("data", {}).get("notes", [])]
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
        },
        "latency": {
            "threads": bench.get("threads"),
            "results": bench.get("results", []),
            "speedups": bench.get("speedups", []),
        }
        if bench
        else None,
    }


def write_run_report(run: RunFolder) -> dict[str, Path]:
    from benchmarks.report import write_report

    return write_report(run.path, build_report(run))


def compress(
    teacher: str,
    recipe: Recipe,
    out: Path,
    *,
    overwrite: bool,
    resume: bool,
    skip_benchmark: bool = False,
) -> dict[str, Path]:
    """The whole chain; each finished stage is skipped on --resume."""
    run = RunFolder.create(out, "compress", recipe, overwrite=overwrite, resume=resume)
    data = load_task_data(recipe.data)
    if not run.done("distill"):
        _distill(run, teacher, recipe, data, resume)
    if not run.done("export"):
        with console.status("exporting the student to ONNX and checking parity"):
            _export(run, recipe, data)
    if recipe.quantize.mode != "none" and not run.done("quantize"):
        with console.status("quantizing (dynamic int8) and checking agreement"):
            _quantize(run, recipe, data)
    if not run.done("evaluate"):
        _evaluate(run, teacher, recipe, data)
    if not skip_benchmark and not run.done("benchmark"):
        benchmark(run, teacher, recipe)
    return write_run_report(run)


def plan(teacher: str, recipe: Recipe) -> dict:
    """What `compress` would do, after every input check it makes (for --dry-run)."""
    import math

    data = load_task_data(recipe.data)
    model, _tokenizer = load_classifier(teacher)
    check_labels(model, data.label_names, data.source)
    student = build_student(model, recipe.student)
    cfg = recipe.train
    per_epoch = math.ceil(len(data.train) / (cfg.batch_size * cfg.grad_accum))
    steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    return {
        "data": f"{data.source}: {len(data.train)} train / {len(data.dev)} dev examples, "
        f"{data.num_labels} labels" + (f" ({'; '.join(data.notes)})" if data.notes else ""),
        "teacher": f"{teacher}: {model.config.num_hidden_layers} layers, "
        f"{count_parameters(model) / 1e6:.1f} M parameters",
        "student": f"{recipe.student.layers} layers from teacher layers "
        f"{recipe.student.init}, {count_parameters(student) / 1e6:.1f} M parameters",
        "distillation": f"T={recipe.distill.temperature}, alpha={recipe.distill.alpha}, "
        f"intermediate={[s.name for s in recipe.distill.intermediate]}",
        "training": f"{steps} steps of batch {cfg.batch_size} x {cfg.grad_accum}, lr {cfg.lr}",
        "then": f"export ONNX (opset {recipe.export.opset}) -> quantize {recipe.quantize.mode} "
        f"-> evaluate -> benchmark batches {recipe.benchmark.batches} -> report",
        "recipe hash": recipe.hash(),
    }
