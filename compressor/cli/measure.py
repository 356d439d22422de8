"""Commands that measure finished runs: `benchmark`, `compare` and `report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.app import app, console
from compressor.errors import UserError


@app.command()
def benchmark(
    run_dir: Annotated[Path, typer.Argument(help="A compress run folder.")],
    against: Annotated[
        str | None, typer.Option(help="Teacher to compare with. \\[default: the run's teacher]")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="cpu (this machine), cuda (the GPU; skipped with a note when absent) or arm "
            "(see --arm-mode). \\[default: the recipe's benchmark.target]"
        ),
    ] = None,
    threads: Annotated[
        list[int] | None,
        typer.Option(help="Intra-op thread count; repeat to sweep. \\[default: 1, 2, all cores]"),
    ] = None,
    batch: Annotated[
        list[int] | None, typer.Option(help="Batch size; repeat for several. \\[default: 1, 32]")
    ] = None,
    seq_len: Annotated[
        list[str] | None,
        typer.Option(
            help="Sequence length, or 'dev' for the dev set's own lengths in dynamically padded "
            "batches; repeat for several. \\[default: 32, 128, dev]"
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
            "check). \\[default: estimated; measured with --remote]"
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
    from compressor.pipeline.rerun import benchmark_again

    flags = {
        "target": target,
        "threads": threads,
        "batches": batch,
        "seq_lens": None if seq_len is None else [_length(n) for n in seq_len],
        "iters": iters,
        "rounds": rounds,
        "torch_compile": torch_compile,
        "arm_mode": arm_mode,
        "arm_profiles": profile,
        "remote": remote,
        "remote_python": remote_python,
    }
    paths = benchmark_again(run_dir, against, flags)
    console.print(f"[green]report: {paths['md']}")


def _length(text: str) -> int | str:
    if text == "dev":
        return text
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
    from benchmarks.compare import compare_to_file

    table = compare_to_file(runs, out)
    typer.echo(table, nl=False)
    if out is not None:
        console.print(f"[green]table: {out}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A compress run folder.")]) -> None:
    """Rebuild report.json / report.md / report.html from a run's recorded measurements."""
    from compressor.pipeline.rerun import report_again

    paths = report_again(run_dir)
    console.print(Path(paths["md"]).read_text(encoding="utf-8"))
    console.print(f"[green]report: {paths['md']}")
