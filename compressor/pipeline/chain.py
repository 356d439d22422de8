"""The chain of `compress`: one ordered list of stages that the run, `--resume` and
`--dry-run` all read. Each stage records itself in the run folder's state, so a finished
stage is skipped when the run resumes and any stage can run alone from its CLI command."""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path

from compressor.distill.objective import check_servable
from compressor.models import count_parameters, load_tokenizer, resolve_model_dir
from compressor.pipeline.adabert import AdaBert
from compressor.pipeline.benchmark import Benchmark
from compressor.pipeline.context import RunContext, console
from compressor.pipeline.distill import Distill, describe_augmentation
from compressor.pipeline.e2e import EndToEnd
from compressor.pipeline.evaluate import Evaluate
from compressor.pipeline.export import Export
from compressor.pipeline.inputs import load_extra_teachers, load_teacher
from compressor.pipeline.mobile import OrtFormat
from compressor.pipeline.prune import Prune
from compressor.pipeline.quantize import Quantize
from compressor.pipeline.report import write_run_report
from compressor.pipeline.stage import Stage
from compressor.pipeline.support import check_task_support
from compressor.pipeline.teacher import TeacherFiles
from compressor.pipeline.vocab import Vocab
from compressor.recipe import Recipe
from compressor.runfolder import RunFolder
from compressor.students import kind_named, kind_of, make_student

STAGES: list[Stage] = [
    AdaBert(),
    Distill(),
    Prune(),
    Vocab(),
    Export(),
    Quantize(),
    EndToEnd(),
    OrtFormat(),
    TeacherFiles(),
    Evaluate(),
    Benchmark(),
]


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
    """Run every enabled stage not yet recorded, in order, then write the report. With
    pruning the student is pruned after distillation, or instead of it when pruning starts
    from the teacher (HomoDistil). `skip_export` keeps the PyTorch student only (method
    comparisons that need no deployable artifact)."""
    if recipe.vocab.prune:  # refuse a BPE tokenizer before hours of training, not after
        from compressor.prune.vocab import check_supported

        check_supported(load_tokenizer(resolve_model_dir(teacher)))
    run = RunFolder.create(out, "compress", recipe, overwrite=overwrite, resume=resume)
    ctx = RunContext(
        recipe, teacher, run, resume=resume, skip_export=skip_export, skip_benchmark=skip_benchmark
    )
    check_task_support(ctx)
    run_stages(ctx)
    return write_run_report(run)


def run_stages(ctx: RunContext, only: Collection[str] | None = None) -> None:
    """Run each enabled stage of `STAGES` (or of those named in `only`) not yet recorded, in
    order, with a line at its start and end when there is no terminal to draw a spinner."""
    for stage in STAGES:
        if only is not None and stage.name not in only:
            continue
        if not stage.enabled(ctx) or stage.done(ctx):
            continue
        message = stage.status(ctx)
        if message is None:
            stage.run(ctx)
        elif console.is_terminal:
            with console.status(message):
                stage.run(ctx)
        else:  # a spinner draws nothing in a log: a line when the stage starts and ends
            started = time.perf_counter()
            console.print(f"{message} ...")
            stage.run(ctx)
            console.print(f"{message}: done in {time.perf_counter() - started:.0f} s")


def plan(teacher: str, recipe: Recipe) -> dict[str, str]:
    """What `compress` would do, after every input check it makes (for --dry-run): the
    teacher, its extra teachers and the student are loaded and checked, then each stage of
    the chain says what it would do or why it is skipped."""
    ctx = RunContext(recipe, teacher)
    data = ctx.data
    check_task_support(ctx)
    model, tokenizer = load_teacher(ctx)
    load_extra_teachers(recipe, data, model, tokenizer)
    for _name, distill_cfg, _train_cfg in recipe.stage_plan():
        check_servable(kind_named(recipe.student.kind), distill_cfg)
    student, _tok = make_student(model, tokenizer, recipe.student, data.train.sentences[:32])
    notes = f" ({'; '.join(data.notes)})" if data.notes else ""
    lines = {
        "data": f"{data.source}: {data.task}, {len(data.train)} train / {len(data.dev)} dev "
        f"examples, {data.num_labels} labels{notes}",
        "augmentation": describe_augmentation(ctx),
        "teacher": f"{teacher}: {model.config.num_hidden_layers} layers, "
        f"{count_parameters(model) / 1e6:.1f} M parameters",
        "student": f"{kind_of(student).describe(student, recipe.student)}, "
        f"{count_parameters(student) / 1e6:.1f} M parameters"
        + ("; its cells will come from the AdaBERT search" if recipe.adabert.enabled else ""),
    }
    for stage in STAGES:
        enabled = stage.enabled(ctx)
        lines[stage.name] = stage.plan(ctx) if enabled else f"skipped: {stage.skipped_because(ctx)}"
    lines["recipe hash"] = recipe.hash()
    return lines
