"""The Typer application and what every command shares: one red line and exit 2 for user
errors, and a hint to --resume when a long run is interrupted."""

from __future__ import annotations

import errno
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


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EROFS, errno.EPERM)
# torch and safetensors report a full disk in their own exception types, by message
DISK_FULL_WORDS = ("No space left on device", "StorageFull", "file write failed")


def environment_error(exc: BaseException) -> UserError | None:
    """A full disk or an unwritable folder met anywhere in a run (a checkpoint, an export, a
    cache), as the one-line error the user can act on; None for anything else."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL + NOT_WRITABLE:
            where = f" ({seen.filename})" if seen.filename else ""
            if seen.errno in DISK_FULL:
                return UserError(
                    f"no space left on the device{where} — free disk space, then rerun the "
                    "same command with --resume"
                )
            return UserError(
                f"cannot write{where}: {seen.strerror} — choose a writable --out folder "
                "(or COMPRESSOR_CACHE_DIR for the cache)"
            )
        if any(words in str(seen) for words in DISK_FULL_WORDS):
            return UserError(
                "no space left on the device — free disk space, then rerun the same command "
                "with --resume"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def main() -> None:
    """Console entry point: user errors print one line and exit 2, without a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except UserError as exc:
        fail(exc)
    except (OSError, RuntimeError) as exc:
        error = environment_error(exc)
        if error is None:
            raise
        fail(error)


def fail(error: UserError) -> None:
    """The error as one line (never wrapped at the console's width: a log keeps it whole),
    and exit 2."""
    Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    sys.exit(2)
