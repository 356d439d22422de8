"""Latency of teacher and students on the recipe's target (benchmark.target), recorded under
that target's own state key so CPU, GPU and ARM figures sit side by side in one report. The
target decides everything target-specific (`benchmarks.targets`): its key, how it measures,
what it records."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.targets import Artifacts, get_target
from benchmarks.targets.sections import BenchmarkSection
from compressor.data import TaskData, load_task_data
from compressor.layout import graphs_dir
from compressor.models import load_tokenizer, resolve_model_dir
from compressor.pipeline.artifacts import run_artifacts
from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage
from compressor.recipe import BenchmarkConfig, Recipe
from compressor.runfolder import RunFolder

BASE_KEYS = ("teacher", "teacher_int8", "student", "student_onnx", "student_optimized")


def benchmark_stage(cfg: BenchmarkConfig) -> str:
    """The run-state key these settings record under: the target's, so a run can carry
    several targets (and ARM measured, emulated and estimated) without one overwriting
    another."""
    return get_target(cfg.target).state_key(cfg)


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
) -> BenchmarkSection:
    """Time the run's files on the recipe's target and record them, against the teacher's
    files from the `teacher_files` stage; a run without them (export skipped) gets the
    teacher's ONNX file exported (and parity-checked) here, for a like-for-like comparison."""
    from exporters.artifacts import export_teacher_checked

    cfg = recipe.benchmark
    target = get_target(cfg.target)
    teacher_dir = Path(resolve_model_dir(teacher_path))
    recorded = run.result("teacher_files").get("onnx")
    teacher_package = run.path / "teacher_onnx"
    teacher_onnx = Path(recorded) if recorded else graphs_dir(teacher_package) / "model.onnx"
    needs_data = not teacher_onnx.is_file() or "dev" in cfg.seq_lens
    data = data or (load_task_data(recipe.data) if needs_data else None)
    if not teacher_onnx.is_file():
        with console.status("exporting the teacher to ONNX for a like-for-like comparison"):
            teacher_onnx = export_teacher_checked(
                teacher_dir,
                teacher_package,
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
        teacher_quantized=arts["teacher_int8"].path if "teacher_int8" in arts else None,
    )
    lengths = None
    if "dev" in cfg.seq_lens:
        lengths = dev_lengths(artifacts.student_dir, data, recipe.data.max_length)
    section = target.measure(artifacts, cfg, cores=os.cpu_count() or 1, lengths=lengths)
    if section.mode == "skipped":
        console.print(f"[yellow]{cfg.target} benchmark skipped: {section.reason}")
    run.complete(target.state_key(cfg), **section.record())
    return section


def dev_lengths(model_dir: Path, data: TaskData, max_length: int) -> list[int]:
    """Token count of every dev example as the model would see it (specials included,
    truncated like the evaluation): the "real traffic" workload."""
    tokenizer = load_tokenizer(model_dir)
    pairs = data.dev.pairs or [None] * len(data.dev)
    return [
        len(tokenizer(text, pair, truncation=True, max_length=max_length)["input_ids"])
        for text, pair in zip(data.dev.sentences, pairs, strict=True)
    ]
