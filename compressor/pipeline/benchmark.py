"""Latency of teacher and students on the recipe's target (benchmark.target), recorded under
that target's own state key so CPU, GPU and ARM figures sit side by side in one report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from compressor.data import TaskData, load_task_data
from compressor.models import load_tokenizer, resolve_model_dir
from compressor.pipeline.artifacts import run_artifacts
from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage
from compressor.recipe import BenchmarkConfig, Recipe
from compressor.runfolder import RunFolder

ARM_MODES = ("measured", "emulated", "estimated")


def benchmark_stage(cfg: BenchmarkConfig) -> str:
    """Each target (and each ARM mode) keeps its own record, so a run can carry measured,
    emulated and estimated figures side by side without one overwriting another."""
    if cfg.target == "arm":
        return f"benchmark_arm_{cfg.arm_mode}"
    return "benchmark" if cfg.target == "cpu" else f"benchmark_{cfg.target}"


class Benchmark(Stage):
    name = "benchmark"

    def enabled(self, ctx: RunContext) -> bool:
        return not (ctx.skip_benchmark or ctx.mlm)

    def key(self, ctx: RunContext) -> str:
        return benchmark_stage(ctx.recipe.benchmark)

    def plan(self, ctx: RunContext) -> str:
        cfg = ctx.recipe.benchmark
        return f"{cfg.target}: batches {cfg.batches}, lengths {cfg.seq_lens}"

    def run(self, ctx: RunContext) -> None:
        benchmark(ctx.folder, ctx.teacher, ctx.recipe, ctx.data)


def benchmark(
    run: RunFolder, teacher_path: str, recipe: Recipe, data: TaskData | None = None
) -> dict[str, Any]:
    """Time the run's files on the recipe's target and record them; the teacher's ONNX file is
    exported (and parity-checked) once for a like-for-like comparison."""
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
    arts = run_artifacts(run, teacher_path)
    quantized = next((a for a in arts.values() if a.key not in BASE_KEYS), None)
    artifacts = Artifacts(
        teacher_dir=teacher_dir,
        teacher_onnx=teacher_onnx,
        student_dir=arts["student"].path,
        student_onnx=arts["student_onnx"].path if "student_onnx" in arts else None,
        quantized_label=quantized.label if quantized else None,
        quantized=quantized.path if quantized else None,
        optimized=arts["student_optimized"].path if "student_optimized" in arts else None,
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


BASE_KEYS = ("teacher", "student", "student_onnx", "student_optimized")


def dev_lengths(model_dir: Path, data: TaskData, max_length: int) -> list[int]:
    """Token count of every dev example as the model would see it (specials included,
    truncated like the evaluation): the "real traffic" workload."""
    tokenizer = load_tokenizer(model_dir)
    pairs = data.dev.pairs or [None] * len(data.dev.texts)
    return [
        len(tokenizer(text, pair, truncation=True, max_length=max_length)["input_ids"])
        for text, pair in zip(data.dev.texts, pairs, strict=True)
    ]
