"""Commands that train: `finetune` (a teacher), `compress` and `prune` (the chain), `metakd`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.app import app, console, print_plan, resumable
from compressor.cli.options import (
    BatchSize,
    ChainOptions,
    DataOptions,
    LabelCol,
    RecipeOpt,
    RunOptions,
    TeacherOpt,
    TextCol,
    TrainOptions,
    grouped,
)
from compressor.recipe import Recipe, default_teacher_backbone, load_recipe


@app.command()
@grouped
def finetune(
    out: Annotated[
        Path, typer.Option(help="Run folder to create (the teacher lands in out/model).")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Hub id or folder of the backbone. \\[default: all-MiniLM-L6-v2, bundled]"
        ),
    ] = None,
    data: DataOptions = DataOptions(),
    training: TrainOptions = TrainOptions(),
    recipe: RecipeOpt = None,
    run: RunOptions = RunOptions(),
) -> None:
    """Fine-tune a teacher classifier on the task (the first step of every distillation)."""
    from compressor.pipeline import finetune as run_finetune

    effective = load_recipe(recipe, data.overrides() | training.overrides("finetune"))
    with resumable():
        path = run_finetune(
            model or default_teacher_backbone(),
            effective,
            out,
            overwrite=run.overwrite,
            resume=run.resume,
        )
    console.print(f"[green]teacher saved to {path}")


@app.command()
@grouped
def compress(
    teacher: TeacherOpt,
    out: Annotated[Path, typer.Option(help="Run folder to create for the student.")],
    data: DataOptions = DataOptions(),
    student_kind: Annotated[
        str | None,
        typer.Option(
            help="What the student is: transformer (the teacher's architecture, fewer "
            "layers), bilstm (Tang et al.) or cnn (AdaBERT cells); see recipes/bilstm.yaml and "
            "recipes/cnn.yaml for their losses. \\[default: transformer]"
        ),
    ] = None,
    layers: Annotated[int | None, typer.Option(help="Student layers. \\[default: 3]")] = None,
    student_model: Annotated[
        str | None,
        typer.Option(
            help="A pre-trained student (hub id or folder, any BERT-family model with the "
            "teacher's tokenizer) instead of one cut from the teacher."
        ),
    ] = None,
    training: TrainOptions = TrainOptions(),
    temperature: Annotated[
        float | None, typer.Option(help="KD temperature T. \\[default: 2]")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(help="Weight of soft KD; 1-alpha goes to hard CE. \\[default: 0.5]"),
    ] = None,
    recipe: RecipeOpt = None,
    chain: ChainOptions = ChainOptions(),
    run: RunOptions = RunOptions(),
) -> None:
    """Distil -> export ONNX -> quantize -> evaluate -> benchmark -> report, in one run folder."""
    overrides = data.overrides() | training.overrides("train")
    overrides |= {
        "student.kind": student_kind,
        "student.layers": layers,
        "student.model": student_model,
        "distill.temperature": temperature,
        "distill.alpha": alpha,
        "vocab.prune": chain.prune_vocab,
    }
    _run_chain(teacher, load_recipe(recipe, overrides), out, chain, run)


@app.command()
@grouped
def prune(
    teacher: TeacherOpt,
    out: Annotated[Path, typer.Option(help="Run folder to create for the pruned student.")],
    data: DataOptions = DataOptions(),
    heads: Annotated[int | None, typer.Option(help="Attention heads kept per layer.")] = None,
    ffn: Annotated[int | None, typer.Option(help="FFN neurons kept per layer.")] = None,
    hidden: Annotated[
        int | None,
        typer.Option(help="Hidden width kept (a multiple of the head size; caps heads per layer)."),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(help="Fraction of non-embedding parameters to keep, instead of heads/ffn."),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            help="'task': distil a fine-tuned classifier on labelled task data; 'mlm': "
            "task-agnostic, as in the paper: a masked-LM teacher on unlabelled text (only "
            "--text-column is read), giving a smaller pre-trained model. \\[default: task]"
        ),
    ] = None,
    training: TrainOptions = TrainOptions(),
    recipe: Annotated[
        Path | None,
        typer.Option(
            "--recipe", "-r", help="YAML recipe (e.g. recipes/homodistil.yaml); flags override it."
        ),
    ] = None,
    chain: ChainOptions = ChainOptions(),
    run: RunOptions = RunOptions(),
) -> None:
    """HomoDistil: prune an exact copy of the teacher while distilling into it, cut the pruned
    heads / neurons / hidden dimensions out, then export -> quantize -> evaluate -> benchmark
    -> report like `compress`. The student is a plain, smaller HF model."""
    overrides = data.overrides() | training.overrides("prune.train")
    overrides |= {
        "prune.enabled": True,
        "prune.start": "teacher",
        "prune.heads": heads,
        "prune.ffn": ffn,
        "prune.hidden": hidden,
        "prune.budget": budget,
        "prune.objective": objective,
        "vocab.prune": chain.prune_vocab,
    }
    _run_chain(teacher, load_recipe(recipe, overrides), out, chain, run)


def _run_chain(
    teacher: str, effective: Recipe, out: Path, chain: ChainOptions, run: RunOptions
) -> None:
    """Print the plan of `compress` / `prune`, or run it and say where the report is."""
    from compressor import pipeline

    if chain.dry_run:
        print_plan(pipeline.plan(teacher, effective))
        return
    with resumable():
        paths = pipeline.compress(
            teacher,
            effective,
            out,
            overwrite=run.overwrite,
            resume=run.resume,
            skip_benchmark=chain.skip_benchmark,
            skip_export=chain.skip_export,
        )
    console.print(f"[green]report: {paths['md']}  (JSON: {paths['json']}, HTML: {paths['html']})")


@app.command()
@grouped
def metakd(
    out: Annotated[
        Path, typer.Option(help="Run folder to create (the student lands in out/model).")
    ],
    target_domain: Annotated[
        str | None,
        typer.Option(help="Domain the student is distilled for (a file stem or column value)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Backbone of the meta-teacher (hub id or folder). "
            "\\[default: all-MiniLM-L6-v2, bundled]"
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Folder with one .tsv/.csv/.jsonl file per domain (e.g. "
            "../shared/data/sentiment3), or one file with --domain-column."
        ),
    ] = None,
    domain_column: Annotated[
        str | None, typer.Option(help="Column naming each example's domain (one-file data).")
    ] = None,
    text_column: TextCol = None,
    label_column: LabelCol = None,
    fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of the target domain's training part used (few-shot). \\[default: 1]"
        ),
    ] = None,
    max_train_examples: Annotated[
        int | None, typer.Option(help="Cap on every domain's training part.")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            help="Prototype score: weight of the own domain's prototype. \\[default: 0.5]"
        ),
    ] = None,
    gamma1: Annotated[
        float | None, typer.Option(help="Weight of the domain-adversarial loss. \\[default: 0.5]")
    ] = None,
    gamma2: Annotated[
        float | None,
        typer.Option(help="Weight of the transferable-knowledge loss. \\[default: 0.5]"),
    ] = None,
    layers: Annotated[int | None, typer.Option(help="Student layers. \\[default: 3]")] = None,
    teacher_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps of the meta-teacher.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps of the student.")] = None,
    batch_size: BatchSize = None,
    recipe: Annotated[
        Path | None,
        typer.Option(
            "--recipe", "-r", help="YAML recipe (e.g. recipes/metakd.yaml); flags override it."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Check inputs and print the plan; train nothing.")
    ] = False,
    run: RunOptions = RunOptions(),
) -> None:
    """Meta-KD: train one meta-teacher on all domains (prototype-weighted, domain-adversarial),
    then meta-distil a student for --target-domain. The student is a plain HF model."""
    from compressor.metakd import run as metakd_run

    overrides = {
        "data.source": data,
        "data.text_column": text_column,
        "data.label_column": label_column,
        "data.max_train_examples": max_train_examples,
        "metakd.domain_column": domain_column,
        "metakd.target_domain": target_domain,
        "metakd.fraction": fraction,
        "metakd.alpha": alpha,
        "metakd.gamma1": gamma1,
        "metakd.gamma2": gamma2,
        "student.layers": layers,
        "finetune.max_steps": teacher_steps,
        "finetune.batch_size": batch_size,
        "train.max_steps": steps,
        "train.batch_size": batch_size,
    }
    effective = load_recipe(recipe, overrides)
    backbone = model or default_teacher_backbone()
    if dry_run:
        print_plan(metakd_run.plan(backbone, effective))
        return
    with resumable():
        report = metakd_run.metakd(
            backbone, effective, out, overwrite=run.overwrite, resume=run.resume
        )
    console.print(
        f"[green]student for {report['target_domain']}: dev accuracy "
        f"{report['student']['dev_accuracy']:.4f} -> {out / 'model'} (report: {out / 'report.md'})"
    )
