"""The Typer application and what every command shares: one red line and exit 2 for user
errors, and a hint to --resume when a long run is interrupted."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from compressor.errors import UserError

app = typer.Typer(
    help="Distil, prune, quantize, export and benchmark transformer classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
recipe_app = typer.Typer(help="Inspect recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")
console = Console()


@contextmanager
def resumable() -> Iterator[None]:
    """Ctrl-C during a long run: say how to continue instead of a bare 'Aborted!'."""
    try:
        yield
    except KeyboardInterrupt:
        Console(stderr=True).print(
            "[yellow]interrupted — rerun the same command with --resume to continue"
        )
        raise typer.Exit(130) from None


def print_plan(plan: dict[str, str]) -> None:
    for key, value in plan.items():
        console.print(f"[bold]{key}[/]: {value}")


def main() -> None:
    """Console entry point: user errors print one line and exit 2, without a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except UserError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
