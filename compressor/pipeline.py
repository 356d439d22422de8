"""The chain behind the CLI: finetune a teacher; compress = distill -> export -> quantize ->
evaluate -> benchmark -> report. Each stage reads and writes the run folder and is recorded
in its state, so a stage can run alone and `--resume` skips what is done."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor import atomic
from compressor.data import Split, TaskData, load_task_data
from compressor.distill.objective import DistillObjective
from compressor.distill.trainer import seed_fresh_weights, total_steps, train
from compressor.models import (
    check_labels,
    count_parameters,
    load_classifier,
    load_extra_teacher,
    load_masked_lm,
    load_student,
    load_tokenizer,
    resolve_model_dir,
)
from compressor.recipe import BenchmarkConfig, DistillConfig, Recipe
from compressor.runfolder import RunFolder, cache_root

console = Console(stderr=True)


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
        seed_fresh_weights(recipe.finetune.seed)
        classifier, tokenizer = load_classifier(model, data.num_labels, data.label_names)

        def ce_loss(m, batch, progress):
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
        run.promote(run.path / "training", run.path / "model")
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
        run.drop_training()
    result = run.result("train")
    console.print(
        f"teacher: dev accuracy {result['dev_accuracy']:.4f} after {result['steps']} steps "
        f"-> {run.path / 'model'}"
    )
    return run.path / "model"


def _training_split(recipe: Recipe, teacher_path: str, data: TaskData) -> tuple[Split, dict | None]:
    """The training examples, with the teacher-labelled augmented set appended when asked."""
    if not recipe.augment.enabled:
        return data.train, None
    import torch

    from compressor.augment import augment_split

    return augment_split(
        data.train,
        resolve_model_dir(teacher_path),
        recipe.augment,
        cache_root() / "augment",
        max_length=recipe.data.max_length,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )


def _load_teachers(
    recipe: Recipe, data: TaskData, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> dict[str, PreTrainedModel]:
    """Every extra teacher any stage names, loaded once, frozen, checked against the main
    teacher's tokenizer and labels."""
    teachers = {}
    for _name, distill, _train in recipe.stage_plan():
        for spec in distill.extra_teachers:
            if spec.model not in teachers:
                teachers[spec.model] = load_extra_teacher(
                    spec.model, teacher, tokenizer, data.train.texts[:32]
                )
    return teachers


def _distill(run: RunFolder, teacher_path: str, recipe: Recipe, data: TaskData, resume: bool):
    """Distil through each stage of the recipe; a finished stage is skipped on --resume and
    the next starts from its kept model (TinyBERT: intermediate layers, then predictions)."""
    from transformers import AutoModelForSequenceClassification

    teacher, tokenizer = load_classifier(teacher_path)
    check_labels(teacher, data.label_names, data.source)
    teacher.requires_grad_(False)
    extra = _load_teachers(recipe, data, teacher, tokenizer)
    train_split, augmentation = _training_split(recipe, teacher_path, data)
    seed_fresh_weights(recipe.train.seed)
    student, student_tok = load_student(teacher, tokenizer, recipe.student, data.train.texts[:32])
    student_params = count_parameters(student), count_parameters(student, embeddings=False)
    plan = recipe.stage_plan()
    stages = []
    for i, (name, distill_cfg, train_cfg) in enumerate(plan):
        last = i == len(plan) - 1
        target = run.path / "model" if last else run.path / "stages" / name
        if not last and run.done(f"distill:{name}"):
            stages.append(run.result(f"distill:{name}"))
            student = AutoModelForSequenceClassification.from_pretrained(target)
            continue
        seed_fresh_weights(train_cfg.seed)
        objective = DistillObjective(
            teacher,
            student,
            distill_cfg,
            [(extra[spec.model], spec.weight) for spec in distill_cfg.extra_teachers],
        )
        train_dir = run.path / "training" / (name if len(plan) > 1 else "")
        stage_label = f" — stage {i + 1}/{len(plan)}: {name}" if len(plan) > 1 else ""
        state = train(
            student,
            student_tok,
            train_split,
            data.dev,
            train_cfg,
            max_length=recipe.data.max_length,
            out_dir=train_dir,
            compute_loss=objective,
            extra_modules=objective.modules,
            frozen_modules=objective.frozen,
            resume=resume,
            description=f"distilling {student.config.num_hidden_layers}-layer student"
            + stage_label,
        )
        run.promote(train_dir, target)
        result = {
            "name": name,
            "steps": state.step,
            "kept": train_cfg.keep,
            "best_step": state.best_step,
            "best_dev_accuracy": state.best_dev_accuracy,
            "history": state.history,
            "train_seconds": round(state.train_seconds, 2),
            "train_samples_per_s": round(
                state.samples_per_second(train_cfg.batch_size, train_cfg.grad_accum), 2
            ),
            "losses": ["soft_kd", "hard_ce"] * (distill_cfg.prediction_weight > 0)
            + [term.name for term in distill_cfg.intermediate if term.weight > 0],
        }
        stages.append(result)
        if not last:
            run.complete(f"distill:{name}", **result)
            student = AutoModelForSequenceClassification.from_pretrained(target)
    final = stages[-1]
    seconds = sum(stage["train_seconds"] for stage in stages)
    samples = sum(stage["train_samples_per_s"] * stage["train_seconds"] for stage in stages)
    run.complete(
        "distill",
        teacher=teacher_path,
        student_source=recipe.student.model or "cut from the teacher",
        extra_teachers=[spec.model for spec in recipe.distill.extra_teachers],
        data=_describe(data),
        augmentation=augmentation,
        stages=stages,
        steps=sum(stage["steps"] for stage in stages),
        best_step=final["best_step"],
        best_dev_accuracy=final["best_dev_accuracy"],
        history=final["history"],
        train_examples=len(train_split),
        train_seconds=round(seconds, 2),
        train_samples_per_s=round(samples / max(seconds, 1e-9), 2),
        teacher_parameters=count_parameters(teacher),
        student_parameters=student_params[0],
        teacher_non_embedding_parameters=count_parameters(teacher, embeddings=False),
        student_non_embedding_parameters=student_params[1],
    )
    run.drop_training()


def _prune(run: RunFolder, teacher_path: str, recipe: Recipe, data: TaskData, resume: bool):
    """HomoDistil: prune the teacher's exact copy (or the distilled student) while
    distilling, then save the physically smaller model as the run's student."""
    import copy

    from transformers import AutoModelForSequenceClassification

    from compressor.prune.homodistil import prune_while_distilling, thin_trace

    mlm = recipe.prune.objective == "mlm"
    if mlm:
        teacher, tokenizer = load_masked_lm(teacher_path)
    else:
        teacher, tokenizer = load_classifier(teacher_path)
        check_labels(teacher, data.label_names, data.source)
    teacher.requires_grad_(False)
    if recipe.prune.start == "teacher":
        student = copy.deepcopy(teacher).requires_grad_(True)
        source = "an exact copy of the teacher"
    else:
        student = AutoModelForSequenceClassification.from_pretrained(run.path / "model")
        source = "the distilled student"
    before = count_parameters(student), count_parameters(student, embeddings=False)
    train_split, augmentation = (
        (data.train, None) if mlm else _training_split(recipe, teacher_path, data)
    )
    train_dir = run.path / "training" / "prune"
    outcome = prune_while_distilling(
        teacher, student, tokenizer, train_split, data.dev, recipe, train_dir, resume=resume
    )
    with atomic.atomic_dir(run.path / "model") as tmp:
        outcome.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    state, pruner = outcome.state, outcome.pruner
    config = outcome.model.config
    _distill_cfg, train_cfg = recipe.prune_plan()
    run.complete(
        "prune",
        teacher=teacher_path,
        source=source,
        objective=recipe.prune.objective,
        data=_describe(data),
        augmentation=augmentation,
        steps=state.step,
        best_step=state.best_step,
        best_dev_accuracy=state.best_dev_accuracy,
        history=state.history,
        train_examples=len(train_split),
        train_seconds=round(state.train_seconds, 2),
        train_samples_per_s=round(
            state.samples_per_second(train_cfg.batch_size, train_cfg.grad_accum), 2
        ),
        targets=pruner.targets,
        kept=pruner.masks.kept(),
        criterion=recipe.prune.criterion,
        schedule={"begin": pruner.begin, "end": pruner.end, "every": recipe.prune.every},
        architecture={
            "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size,
            "heads_per_layer": [
                layer.attention.self.num_attention_heads
                for layer in outcome.model.base_model.encoder.layer
            ],
        },
        shrink_max_abs_diff=outcome.shrink_max_abs_diff,
        trace=thin_trace(pruner.trace),
        parameters_before=before[0],
        non_embedding_parameters_before=before[1],
        teacher_parameters=count_parameters(teacher),
        student_parameters=count_parameters(outcome.model),
        teacher_non_embedding_parameters=count_parameters(teacher, embeddings=False),
        student_non_embedding_parameters=count_parameters(outcome.model, embeddings=False),
    )
    run.drop_training()


def _prune_vocab(run: RunFolder, recipe: Recipe, data: TaskData) -> None:
    """Cut the student's vocabulary to the training text's tokens; training sentences must
    give the same logits before and after, or the student is left as it was."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from compressor.prune.vocab import check_same_logits, prune_vocabulary

    model_dir = run.path / "model"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = load_tokenizer(model_dir)
    probe = data.train.take(64)

    def logits(tok) -> torch.Tensor:
        batch = tok(probe.texts, probe.pairs, truncation=True, padding=True,
                    max_length=recipe.data.max_length, return_tensors="pt")  # fmt: skip
        with torch.no_grad():
            return model(**batch).logits

    before, size_before = logits(tokenizer), _size_mb(model_dir)
    new_tokenizer, kept = prune_vocabulary(model, tokenizer, data.train.texts, data.train.pairs)
    diff = float((logits(new_tokenizer) - before).abs().max())
    check_same_logits(diff, len(probe))
    with atomic.atomic_dir(model_dir) as tmp:
        model.save_pretrained(tmp)
        new_tokenizer.save_pretrained(tmp)
    run.complete(
        "vocab",
        **kept,
        size_mb_before=size_before,
        size_mb_after=_size_mb(model_dir),
        max_abs_diff_on_train_text=diff,
        student_parameters=count_parameters(model),
    )


def _export(run: RunFolder, recipe: Recipe, data: TaskData) -> None:
    """fp32 ONNX (a parity failure raises, so `compress` stops with nothing shipped), then the
    optimized file, which is only dropped when it fails: fp32 still serves."""
    from exporters.artifacts import export_checked, optimize_checked

    probe = data.dev.take(recipe.export.parity_samples)
    result = export_checked(
        run.path / "model",
        run.path / "onnx",
        probe,
        opset=recipe.export.opset,
        tolerance=recipe.export.parity_tolerance,
        max_length=recipe.data.max_length,
        recipe_hash=recipe.hash(),
    )
    if recipe.export.optimize:
        result["optimized"] = optimize_checked(
            Path(result["path"]),
            run.path / "model",
            probe,
            tolerance=recipe.export.parity_tolerance,
            max_length=recipe.data.max_length,
            recipe_hash=recipe.hash(),
        )
        if result["optimized"]["path"] is None:
            console.print(
                f"[red]optimized ONNX failed parity, not shipped: {result['optimized']['parity']}"
            )
    run.complete("export", **result)


def _ort_format(run: RunFolder, recipe: Recipe, data: TaskData) -> None:
    """Every shipped ONNX file (fp32, optimized, quantized) also as .ort; one that does not
    match its source is removed by `ort_format_checked` and reported here."""
    from exporters.artifacts import ort_format_checked

    export = run.result("export")
    candidates = [
        export["path"],
        (export.get("optimized") or {}).get("path"),
        run.result("quantize").get("path"),
    ]
    files = [Path(path) for path in candidates if path]
    probe = data.dev.take(recipe.export.parity_samples)
    made = ort_format_checked(
        files, probe, max_length=recipe.data.max_length, recipe_hash=recipe.hash()
    )
    for item in made:
        if item["ort"] is None:
            console.print(
                f"[red]{Path(item['source']).name} as .ort does not match it, not shipped: "
                f"{item['parity']}"
            )
    run.complete("ort_format", files=made)


def _quantize(run: RunFolder, recipe: Recipe, data: TaskData) -> None:
    from exporters.artifacts import quantize_checked

    result = quantize_checked(
        Path(run.result("export")["path"]),
        run.path / "model",
        data.dev.take(recipe.export.parity_samples),
        cfg=recipe.quantize,
        calibration=data.train,
        max_length=recipe.data.max_length,
        recipe_hash=recipe.hash(),
    )
    if result["path"] is None:
        console.print(
            f"[red]{recipe.quantize.mode} file failed its agreement gate and was not shipped: "
            f"{result['parity']}"
        )
    run.complete("quantize", **result)


def _artifacts(run: RunFolder, teacher_path: str) -> dict[str, tuple[str, str, Path]]:
    """key -> (label, format, path) of every artifact the report covers."""
    items = {
        "teacher": ("teacher PyTorch", "pytorch", Path(resolve_model_dir(teacher_path))),
        "student": ("student PyTorch", "pytorch", run.path / "model"),
    }
    if run.done("export"):
        export = run.result("export")
        items["student_onnx"] = ("student ONNX", "onnx", Path(export["path"]))
        if (export.get("optimized") or {}).get("path"):
            items["student_optimized"] = (
                "student ONNX optimized",
                "onnx",
                Path(export["optimized"]["path"]),
            )
    if run.result("quantize").get("path"):
        mode = run.result("quantize").get("quantization", {}).get("mode", "dynamic-int8")
        items["student_int8"] = (
            "student ONNX int8" if mode == "dynamic-int8" else f"student ONNX {mode}",
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
    """Dev accuracy of every artifact; each shipped ONNX and .ort file also carries its own
    score in the manifest, so a deployed copy states what it was measured at."""
    from compressor.inference import accuracy
    from exporters.artifacts import record_dev_accuracy

    dev, max_length = data.dev, recipe.data.max_length
    scores = {}
    for key, (_label, _fmt, path) in _artifacts(run, teacher_path).items():
        with console.status(f"dev accuracy of {key}"):
            if path.suffix == ".onnx":
                scores[key] = record_dev_accuracy(path, dev, max_length=max_length)
            else:
                scores[key] = accuracy(path, dev.texts, dev.pairs, dev.labels,
                                       max_length=max_length)  # fmt: skip
    for item in run.result("ort_format").get("files", []):
        if item["ort"]:
            with console.status(f"dev accuracy of {Path(item['ort']).name}"):
                record_dev_accuracy(Path(item["ort"]), dev, max_length=max_length)
    run.complete("evaluate", dev_accuracy=scores, dev_examples=len(dev))


ARM_MODES = ("measured", "emulated", "estimated")


def benchmark_stage(cfg: BenchmarkConfig) -> str:
    """Each target (and each ARM mode) keeps its own record, so a run can carry measured,
    emulated and estimated figures side by side without one overwriting another."""
    if cfg.target == "arm":
        return f"benchmark_arm_{cfg.arm_mode}"
    return "benchmark" if cfg.target == "cpu" else f"benchmark_{cfg.target}"


def benchmark(
    run: RunFolder, teacher_path: str, recipe: Recipe, data: TaskData | None = None
) -> dict:
    """Latency of teacher and students on the recipe's target (benchmark.target), recorded
    under that target's stage so CPU, GPU and ARM figures sit side by side in one report."""
    from benchmarks.targets import Artifacts
    from exporters.artifacts import export_teacher_checked

    cfg = recipe.benchmark
    teacher_dir = Path(resolve_model_dir(teacher_path))
    teacher_onnx = run.path / "teacher_onnx" / "model.onnx"
    needs_data = not teacher_onnx.is_file() or "dev" in cfg.seq_lens
    data = data or (load_task_data(recipe.data) if needs_data else None)
    if not teacher_onnx.is_file():
        with console.status("exporting the teacher to ONNX for a like-for-like comparison"):
            teacher_onnx = export_teacher_checked(
                teacher_dir,
                teacher_onnx.parent,
                data.dev.take(recipe.export.parity_samples),
                opset=recipe.export.opset,
                max_length=recipe.data.max_length,
                recipe_hash=recipe.hash(),
                tolerance=recipe.export.parity_tolerance,
            )
    arts = _artifacts(run, teacher_path)
    quantized = arts.get("student_int8")
    artifacts = Artifacts(
        teacher_dir=teacher_dir,
        teacher_onnx=teacher_onnx,
        student_dir=arts["student"][2],
        student_onnx=arts["student_onnx"][2] if "student_onnx" in arts else None,
        quantized_label=quantized[0] if quantized else None,
        quantized=quantized[2] if quantized else None,
        optimized=arts["student_optimized"][2] if "student_optimized" in arts else None,
    )
    lengths = None
    if "dev" in cfg.seq_lens:
        lengths = dev_lengths(artifacts.student_dir, data, recipe.data.max_length)
    cores = os.cpu_count() or 1
    if cfg.target == "cuda":
        from benchmarks.targets.cuda import measure_cuda

        result = measure_cuda(artifacts, cfg, lengths=lengths)
        if result["mode"] == "skipped":
            console.print(f"[yellow]CUDA benchmark skipped: {result['reason']}")
    elif cfg.target == "arm":
        from benchmarks.targets.arm import measure_arm

        result = measure_arm(artifacts, cfg, cores=cores, lengths=lengths)
    else:
        from benchmarks.targets.cpu import measure_cpu

        result = measure_cpu(artifacts, cfg, cores=cores, lengths=lengths)
    run.complete(benchmark_stage(cfg), **result)
    return result


def dev_lengths(model_dir: Path, data: TaskData, max_length: int) -> list[int]:
    """Token count of every dev example as the model would see it (specials included,
    truncated like the evaluation): the "real traffic" workload."""
    tokenizer = load_tokenizer(model_dir)
    pairs = data.dev.pairs or [None] * len(data.dev.texts)
    return [
        len(tokenizer(text, pair, truncation=True, max_length=max_length)["input_ids"])
        for text, pair in zip(data.dev.texts, pairs, strict=True)
    ]


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
        "student_int8": run.result("quantize").get("parity"),
    }

    vocab = run.result("vocab")

    def params(key: str, prefix: str = "") -> int | None:
        owner = "teacher" if key == "teacher" else "student"
        if owner == "student" and not prefix and vocab:
            return vocab["student_parameters"]
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


def compress(
    teacher: str,
    recipe: Recipe,
    out: Path,
    *,
    overwrite: bool,
    resume: bool,
    skip_benchmark: bool = False,
    skip_export: bool = False,
) -> dict[str, Path]:
    """The whole chain; each finished stage is skipped on --resume. With pruning enabled the
    student is pruned after distillation, or instead of it when pruning starts from the
    teacher (HomoDistil). `skip_export` keeps the PyTorch student only (method comparisons
    that need no deployable artifact)."""
    if recipe.vocab.prune:  # refuse a BPE tokenizer before hours of training, not after
        from compressor.prune.vocab import check_supported

        check_supported(load_tokenizer(resolve_model_dir(teacher)))
    run = RunFolder.create(out, "compress", recipe, overwrite=overwrite, resume=resume)
    mlm = recipe.prune.enabled and recipe.prune.objective == "mlm"
    data = load_task_data(recipe.data, labelled=not mlm)
    homodistil = recipe.prune.enabled and recipe.prune.start == "teacher"
    if not homodistil and not run.done("distill"):
        _distill(run, teacher, recipe, data, resume)
    if recipe.prune.enabled and not run.done("prune"):
        _prune(run, teacher, recipe, data, resume)
    if mlm:  # a smaller pre-trained masked LM: fine-tune it, then export the classifier
        return write_run_report(run)
    if recipe.vocab.prune and not run.done("vocab"):
        with console.status("pruning the vocabulary to the training text's tokens"):
            _prune_vocab(run, recipe, data)
    if not skip_export and not run.done("export"):
        with console.status("exporting the student to ONNX and checking parity"):
            _export(run, recipe, data)
    if not skip_export and recipe.quantize.mode != "none" and not run.done("quantize"):
        with console.status(f"quantizing ({recipe.quantize.mode}) and checking agreement"):
            _quantize(run, recipe, data)
    if not skip_export and recipe.export.ort_format and not run.done("ort_format"):
        with console.status("converting to ORT format for ONNX Runtime Mobile"):
            _ort_format(run, recipe, data)
    if not run.done("evaluate"):
        _evaluate(run, teacher, recipe, data)
    if not skip_benchmark and not run.done(benchmark_stage(recipe.benchmark)):
        benchmark(run, teacher, recipe, data)
    return write_run_report(run)


def _describe_distill(cfg: DistillConfig) -> str:
    terms = [f"{t.name}x{t.weight}" for t in cfg.intermediate if t.weight > 0]
    pred = (
        f"KD T={cfg.temperature} ({cfg.temperature_schedule}), alpha={cfg.alpha}"
        if cfg.prediction_weight > 0
        else "no prediction loss"
    )
    teachers = f", +{len(cfg.extra_teachers)} teachers" if cfg.extra_teachers else ""
    return f"{pred}{teachers}, intermediate={terms or 'none'}"


def _describe_prune(teacher: PreTrainedModel, recipe: Recipe, train_examples: int) -> str:
    """The pruning stage of a plan, its targets checked against the teacher's shapes."""
    from compressor.prune.pruner import targets
    from compressor.prune.units import layout_of

    cfg = recipe.prune
    distill_cfg, train_cfg = recipe.prune_plan()
    wanted = targets(cfg, layout_of(teacher))
    total = total_steps(train_cfg, train_examples)
    return (
        f"{'masked-LM (task-agnostic)' if cfg.objective == 'mlm' else 'task'} distillation, "
        f"from the {'teacher' if cfg.start == 'teacher' else 'distilled student'} to {wanted} "
        f"({cfg.criterion}, cubic from step {int(cfg.begin * total)} to {int(cfg.end * total)} "
        f"every {cfg.every}); {total} steps of batch {train_cfg.batch_size}, lr {train_cfg.lr}; "
        f"{_describe_distill(distill_cfg)}"
    )


def plan(teacher: str, recipe: Recipe) -> dict:
    """What `compress` would do, after every input check it makes (for --dry-run)."""
    mlm = recipe.prune.enabled and recipe.prune.objective == "mlm"
    data = load_task_data(recipe.data, labelled=not mlm)
    if mlm:
        model, tokenizer = load_masked_lm(teacher)
    else:
        model, tokenizer = load_classifier(teacher)
        check_labels(model, data.label_names, data.source)
    _load_teachers(recipe, data, model, tokenizer)
    student, _tok = load_student(model, tokenizer, recipe.student, data.train.texts[:32])
    source = (
        f"{recipe.student.model} (pre-trained; tokenizer matches the teacher's)"
        if recipe.student.model
        else f"cut from teacher layers {recipe.student.init}"
    )
    steps = []
    for name, distill_cfg, cfg in recipe.stage_plan():
        total = total_steps(cfg, len(data.train))
        steps.append(
            f"{name}: {total} steps of batch {cfg.batch_size} x {cfg.grad_accum}, lr {cfg.lr}, "
            f"keep {cfg.keep}; {_describe_distill(distill_cfg)}"
        )
    homodistil = recipe.prune.enabled and recipe.prune.start == "teacher"
    if homodistil:
        steps = ["skipped: HomoDistil prunes an exact copy of the teacher instead"]
    aug = recipe.augment
    return {
        "data": f"{data.source}: {len(data.train)} train / {len(data.dev)} dev examples, "
        f"{data.num_labels} labels" + (f" ({'; '.join(data.notes)})" if data.notes else ""),
        "augmentation": f"{aug.methods} x{aug.per_example} per example, labelled by the teacher "
        f"(cached in {cache_root() / 'augment'}; epochs grow with the set)"
        if aug.enabled
        else "none",
        "teacher": f"{teacher}: {model.config.num_hidden_layers} layers, "
        f"{count_parameters(model) / 1e6:.1f} M parameters",
        "student": f"{student.config.num_hidden_layers} layers, {source}, "
        f"{count_parameters(student) / 1e6:.1f} M parameters",
        "distillation": " | ".join(steps),
        "pruning": _describe_prune(model, recipe, len(data.train))
        if recipe.prune.enabled
        else "none",
        "then": "report (a pre-trained masked LM: fine-tune it for a task)"
        if mlm
        else ("prune vocabulary -> " if recipe.vocab.prune else "")
        + f"export ONNX (opset {recipe.export.opset}) -> quantize {recipe.quantize.mode} "
        f"-> evaluate -> benchmark batches {recipe.benchmark.batches} -> report",
        "recipe hash": recipe.hash(),
    }
