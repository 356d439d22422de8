"""`compressor` command line: thin Typer commands that build the recipe and call one
pipeline function. User errors become one red line and exit code 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from compressor.errors import UserError
from compressor.recipe import Recipe, benchmark_settings, default_teacher_backbone, load_recipe

app = typer.Typer(
    help="Distil, prune, quantize, export and benchmark transformer classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
recipe_app = typer.Typer(help="Inspect recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")
console = Console()

RecipeOpt = Annotated[
    Path | None, typer.Option("--recipe", "-r", help="YAML recipe; flags override its keys.")
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        help="Folder with train.* (+ dev.*) files, one .tsv/.csv/.jsonl file, or "
        "hf:<dataset>[:<config>]. Default: ../shared/data/sst2, else hf:glue:sst2."
    ),
]
TextCol = Annotated[str | None, typer.Option(help="Column holding the text. [default: sentence]")]
PairCol = Annotated[
    str | None, typer.Option(help="Second text column for sentence-pair tasks. [default: none]")
]
LabelCol = Annotated[str | None, typer.Option(help="Column holding the label. [default: label]")]
MaxTrain = Annotated[
    int | None, typer.Option(help="Train on a seeded subset of this many examples.")
]
Steps = Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")]
Epochs = Annotated[float | None, typer.Option(help="Passes over the training set. [default: 1]")]
BatchSize = Annotated[int | None, typer.Option(help="Examples per batch. [default: 32]")]
Lr = Annotated[float | None, typer.Option(help="Peak learning rate (linear warm-up / decay).")]
Overwrite = Annotated[bool, typer.Option(help="Replace a previous run in the output folder.")]
Resume = Annotated[
    bool, typer.Option(help="Continue the run in the output folder from its last checkpoint.")
]


@contextmanager
def _resumable() -> Iterator[None]:
    """Ctrl-C during a long run: say how to continue instead of a bare 'Aborted!'."""
    try:
        yield
    except KeyboardInterrupt:
        Console(stderr=True).print(
            "[yellow]interrupted — rerun the same command with --resume to continue"
        )
        raise typer.Exit(130) from None


def _data_overrides(data, text_column, text_pair_column, label_column, max_train) -> dict:
    return {
        "data.source": data,
        "data.text_column": text_column,
        "data.text_pair_column": text_pair_column,
        "data.label_column": label_column,
        "data.max_train_examples": max_train,
    }


def _train_overrides(section: str, steps, epochs, batch_size, lr) -> dict:
    return {
        f"{section}.max_steps": steps,
        f"{section}.epochs": epochs,
        f"{section}.batch_size": batch_size,
        f"{section}.lr": lr,
    }


@app.command()
def finetune(
    out: Annotated[
        Path, typer.Option(help="Run folder to create (the teacher lands in out/model).")
    ],
    model: Annotated[
        str | None,
        typer.Option(help="Hub id or folder of the backbone. [default: all-MiniLM-L6-v2, bundled]"),
    ] = None,
    data: DataOpt = None,
    text_column: TextCol = None,
    text_pair_column: PairCol = None,
    label_column: LabelCol = None,
    max_train_examples: MaxTrain = None,
    steps: Steps = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    recipe: RecipeOpt = None,
    overwrite: Overwrite = False,
    resume: Resume = False,
) -> None:
    """Fine-tune a teacher classifier on the task (the first step of every distillation)."""
    from compressor.pipeline import finetune as run_finetune

    overrides = _data_overrides(
        data, text_column, text_pair_column, label_column, max_train_examples
    )
    overrides |= _train_overrides("finetune", steps, epochs, batch_size, lr)
    effective = load_recipe(recipe, overrides)
    with _resumable():
        path = run_finetune(
            model or default_teacher_backbone(), effective, out, overwrite=overwrite, resume=resume
        )
    console.print(f"[green]teacher saved to {path}")


@app.command()
def compress(
    teacher: Annotated[
        str,
        typer.Option(help="Fine-tuned teacher: a finetune run folder, a model folder or a hub id."),
    ],
    out: Annotated[Path, typer.Option(help="Run folder to create for the student.")],
    data: DataOpt = None,
    text_column: TextCol = None,
    text_pair_column: PairCol = None,
    label_column: LabelCol = None,
    max_train_examples: MaxTrain = None,
    layers: Annotated[int | None, typer.Option(help="Student layers. [default: 3]")] = None,
    student_model: Annotated[
        str | None,
        typer.Option(
            help="A pre-trained student (hub id or folder, any BERT-family model with the "
            "teacher's tokenizer) instead of one cut from the teacher."
        ),
    ] = None,
    steps: Steps = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    temperature: Annotated[
        float | None, typer.Option(help="KD temperature T. [default: 2]")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(help="Weight of soft KD; 1-alpha goes to hard CE. [default: 0.5]"),
    ] = None,
    recipe: RecipeOpt = None,
    prune_vocab: Annotated[
        bool | None,
        typer.Option(
            help="Keep only the tokens of the training text in the vocabulary and embeddings "
            "(WordPiece tokenizers). [default: off]"
        ),
    ] = None,
    skip_benchmark: Annotated[bool, typer.Option(help="Stop after evaluation.")] = False,
    skip_export: Annotated[
        bool,
        typer.Option(help="Keep the PyTorch student only: no ONNX export or quantization."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Check inputs and print the plan; train nothing.")
    ] = False,
    overwrite: Overwrite = False,
    resume: Resume = False,
) -> None:
    """Distil -> export ONNX -> quantize -> evaluate -> benchmark -> report, in one run folder."""
    overrides = _data_overrides(
        data, text_column, text_pair_column, label_column, max_train_examples
    )
    overrides |= _train_overrides("train", steps, epochs, batch_size, lr)
    overrides |= {
        "student.layers": layers,
        "student.model": student_model,
        "distill.temperature": temperature,
        "distill.alpha": alpha,
        "vocab.prune": prune_vocab,
    }
    _run_chain(
        teacher,
        load_recipe(recipe, overrides),
        out,
        dry_run=dry_run,
        overwrite=overwrite,
        resume=resume,
        skip_benchmark=skip_benchmark,
        skip_export=skip_export,
    )


@app.command()
def prune(
    teacher: Annotated[
        str,
        typer.Option(help="Fine-tuned teacher: a finetune run folder, a model folder or a hub id."),
    ],
    out: Annotated[Path, typer.Option(help="Run folder to create for the pruned student.")],
    data: DataOpt = None,
    text_column: TextCol = None,
    text_pair_column: PairCol = None,
    label_column: LabelCol = None,
    max_train_examples: MaxTrain = None,
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
            "--text-column is read), giving a smaller pre-trained model. [default: task]"
        ),
    ] = None,
    steps: Steps = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    recipe: Annotated[
        Path | None,
        typer.Option(
            "--recipe", "-r", help="YAML recipe (e.g. recipes/homodistil.yaml); flags override it."
        ),
    ] = None,
    prune_vocab: Annotated[
        bool | None,
        typer.Option(
            help="Keep only the tokens of the training text in the vocabulary and embeddings "
            "(WordPiece tokenizers). [default: off]"
        ),
    ] = None,
    skip_benchmark: Annotated[bool, typer.Option(help="Stop after evaluation.")] = False,
    skip_export: Annotated[
        bool,
        typer.Option(help="Keep the PyTorch student only: no ONNX export or quantization."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Check inputs and targets and print the plan; train nothing.")
    ] = False,
    overwrite: Overwrite = False,
    resume: Resume = False,
) -> None:
    """HomoDistil: prune an exact copy of the teacher while distilling into it, cut the pruned
    heads / neurons / hidden dimensions out, then export -> quantize -> evaluate -> benchmark
    -> report like `compress`. The student is a plain, smaller HF model."""
    overrides = _data_overrides(
        data, text_column, text_pair_column, label_column, max_train_examples
    )
    overrides |= _train_overrides("prune.train", steps, epochs, batch_size, lr)
    overrides |= {
        "prune.enabled": True,
        "prune.start": "teacher",
        "prune.heads": heads,
        "prune.ffn": ffn,
        "prune.hidden": hidden,
        "prune.budget": budget,
        "prune.objective": objective,
        "vocab.prune": prune_vocab,
    }
    _run_chain(
        teacher,
        load_recipe(recipe, overrides),
        out,
        dry_run=dry_run,
        overwrite=overwrite,
        resume=resume,
        skip_benchmark=skip_benchmark,
        skip_export=skip_export,
    )


@app.command()
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
            "[default: all-MiniLM-L6-v2, bundled]"
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
            help="Share of the target domain's training part used (few-shot). [default: 1]"
        ),
    ] = None,
    max_train_examples: Annotated[
        int | None, typer.Option(help="Cap on every domain's training part.")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(help="Prototype score: weight of the own domain's prototype. [default: 0.5]"),
    ] = None,
    gamma1: Annotated[
        float | None, typer.Option(help="Weight of the domain-adversarial loss. [default: 0.5]")
    ] = None,
    gamma2: Annotated[
        float | None,
        typer.Option(help="Weight of the transferable-knowledge loss. [default: 0.5]"),
    ] = None,
    layers: Annotated[int | None, typer.Option(help="Student layers. [default: 3]")] = None,
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
    overwrite: Overwrite = False,
    resume: Resume = False,
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
        _print_plan(metakd_run.plan(backbone, effective))
        return
    with _resumable():
        report = metakd_run.metakd(backbone, effective, out, overwrite=overwrite, resume=resume)
    console.print(
        f"[green]student for {report['target_domain']}: dev accuracy "
        f"{report['student']['dev_accuracy']:.4f} -> {out / 'model'} (report: {out / 'report.md'})"
    )


def _run_chain(teacher: str, effective: Recipe, out: Path, *, dry_run: bool, **flags: bool) -> None:
    """Print the plan of `compress` / `prune`, or run it and say where the report is."""
    from compressor import pipeline

    if dry_run:
        _print_plan(pipeline.plan(teacher, effective))
        return
    with _resumable():
        paths = pipeline.compress(teacher, effective, out, **flags)
    console.print(f"[green]report: {paths['md']}  (JSON: {paths['json']}, HTML: {paths['html']})")


def _print_plan(plan: dict) -> None:
    for key, value in plan.items():
        console.print(f"[bold]{key}[/]: {value}")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="Model folder or run folder to export.")],
    out: Annotated[Path, typer.Option(help="Folder for model.onnx + tokenizer + manifest.")],
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    data: DataOpt = None,
    text_column: TextCol = None,
    text_pair_column: PairCol = None,
    samples: Annotated[int, typer.Option(help="Dev sentences for the parity check.")] = 128,
    tolerance: Annotated[float, typer.Option(help="Max |logit difference| allowed.")] = 1e-3,
) -> None:
    """Export to ONNX (dynamic batch / sequence axes) and check parity on real dev inputs."""
    from exporters.artifacts import export_model

    recipe = load_recipe(
        None,
        {
            "data.source": data,
            "data.text_column": text_column,
            "data.text_pair_column": text_pair_column,
        },
    )
    result = export_model(model, out, recipe, opset=opset, samples=samples, tolerance=tolerance)
    console.print(result)


@app.command()
def quantize(
    onnx_dir: Annotated[Path, typer.Argument(help="Folder holding model.onnx (or the file).")],
    mode: Annotated[
        str,
        typer.Option(
            help="dynamic-int8 (activations quantized at run time), static-int8 (QDQ, "
            "activation ranges calibrated on the training sentences of --data), int4 "
            "(weight-only) or fp16 (GPU targets; LayerNorm / Softmax stay fp32)."
        ),
    ] = "dynamic-int8",
    per_channel: Annotated[bool, typer.Option(help="Per-channel weight scales.")] = True,
    calibration: Annotated[
        str | None,
        typer.Option(help="static-int8: minmax, entropy or percentile. [default: percentile]"),
    ] = None,
    calibration_samples: Annotated[
        int | None, typer.Option(help="static-int8: calibration sentences. [default: 512]")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="int8: regex on ONNX node names to keep in fp32 (repeatable)."),
    ] = None,
    data: DataOpt = None,
    text_column: TextCol = None,
    text_pair_column: PairCol = None,
) -> None:
    """Quantize an exported model and re-measure its dev accuracy next to the fp32 file's."""
    from exporters.artifacts import quantize_model

    recipe = load_recipe(
        None,
        {
            "data.source": data,
            "data.text_column": text_column,
            "data.text_pair_column": text_pair_column,
            "quantize.mode": mode,
            "quantize.per_channel": per_channel,
            "quantize.calibration": calibration,
            "quantize.calibration_samples": calibration_samples,
            "quantize.exclude": exclude,
        },
    )
    console.print(quantize_model(onnx_dir, recipe))


@app.command()
def benchmark(
    run_dir: Annotated[Path, typer.Argument(help="A compress run folder.")],
    against: Annotated[
        str | None, typer.Option(help="Teacher to compare with. [default: the run's teacher]")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="cpu (this machine), cuda (the GPU; skipped with a note when absent) or arm "
            "(see --arm-mode). [default: the recipe's benchmark.target]"
        ),
    ] = None,
    threads: Annotated[
        list[int] | None,
        typer.Option(help="Intra-op thread count; repeat to sweep. [default: 1, 2, all cores]"),
    ] = None,
    batch: Annotated[
        list[int] | None, typer.Option(help="Batch size; repeat for several. [default: 1, 32]")
    ] = None,
    seq_len: Annotated[
        list[str] | None,
        typer.Option(
            help="Sequence length, or 'dev' for the dev set's own lengths in dynamically padded "
            "batches; repeat for several. [default: 32, 128, dev]"
        ),
    ] = None,
    iters: Annotated[int | None, typer.Option(help="Timed calls per round.")] = None,
    rounds: Annotated[
        int | None, typer.Option(help="Interleaved rounds (the ratios' spread).")
    ] = None,
    torch_compile: Annotated[
        bool | None, typer.Option(help="Also time PyTorch under torch.compile.")
    ] = None,
    arm_mode: Annotated[
        str | None,
        typer.Option(
            help="arm target: estimated (roofline against device profiles), measured (on an "
            "aarch64 machine, or on the --remote device), emulated (qemu-user functional "
            "check). [default: estimated; measured with --remote]"
        ),
    ] = None,
    profile: Annotated[
        list[str] | None,
        typer.Option(help="Device profile for arm estimates (benchmarks/profiles); repeat."),
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option(
            help="user@host of an ARM device reachable by key-based SSH: its own ONNX Runtime "
            "times the ONNX files there (implies --target arm --arm-mode measured)."
        ),
    ] = None,
    remote_python: Annotated[
        str | None,
        typer.Option(help="Python with numpy and onnxruntime on the --remote device."),
    ] = None,
) -> None:
    """Time teacher and student side by side (each model in its own process, rounds
    interleaved) and update the report. Figures are labelled measured / estimated."""
    from compressor import pipeline
    from compressor.runfolder import RunFolder

    run = RunFolder.open(run_dir)
    recipe = run.recipe()
    lengths = None if seq_len is None else [n if n == "dev" else _int(n) for n in seq_len]
    if remote:
        if (target or "arm") != "arm" or (arm_mode or "measured") != "measured":
            raise UserError(
                "--remote measures on the device: use it with --target arm --arm-mode measured, "
                "or leave both out"
            )
        target, arm_mode = "arm", "measured"
    overrides = {
        "target": target,
        "threads": threads,
        "batches": batch,
        "seq_lens": lengths,
        "iters": iters,
        "rounds": rounds,
        "torch_compile": torch_compile,
        "arm_mode": arm_mode,
        "arm_profiles": profile,
        "remote": remote,
        "remote_python": remote_python,
    }
    recipe = recipe.model_copy(
        update={"benchmark": benchmark_settings(recipe.benchmark, overrides)}
    )
    trained = run.result("prune") or run.result("distill")
    pipeline.benchmark(run, against or trained.get("teacher", ""), recipe)
    paths = pipeline.write_run_report(run)
    console.print(f"[green]report: {paths['md']}")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--seq-len {text!r} is neither a number nor 'dev'") from None


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Two or more compress run folders.")],
    out: Annotated[
        Path | None, typer.Option(help="Also write the table here (.md) and its .json beside.")
    ] = None,
) -> None:
    """Runs side by side: accuracy, its drop from the teacher, size, and each model's speed-up
    over the teacher timed in the same run (batch 1, first length, most threads)."""
    from benchmarks.compare import compare as compare_runs
    from benchmarks.compare import render_markdown
    from compressor import atomic

    rows = compare_runs(runs)
    table = render_markdown(rows)
    typer.echo(table, nl=False)
    if out is not None:
        atomic.write_text(out, table)
        atomic.write_json(out.with_suffix(".json"), rows)
        console.print(f"[green]table: {out}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A compress run folder.")]) -> None:
    """Rebuild report.json / report.md / report.html from a run's recorded measurements."""
    from compressor import pipeline
    from compressor.runfolder import RunFolder

    paths = pipeline.write_run_report(RunFolder.open(run_dir))
    console.print(Path(paths["md"]).read_text(encoding="utf-8"))
    console.print(f"[green]report: {paths['md']}")


@recipe_app.command("show")
def recipe_show(
    recipe: Annotated[
        Path | None, typer.Argument(help="YAML recipe to merge over defaults.")
    ] = None,
) -> None:
    """Print the effective recipe (defaults merged with the file)."""
    effective: Recipe = load_recipe(recipe)
    typer.echo(effective.to_yaml(), nl=False)


def main() -> None:
    """Console entry point: user errors print one line and exit 2, without a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except UserError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
