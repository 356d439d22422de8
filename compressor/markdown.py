"""The one Markdown table renderer: the report, `compressor compare` and every experiment's
results file write their tables through it, so escaping and layout cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

DASH = "\u2014"


def cell(value: object) -> str:
    """A value as table text: None is a dash, a pipe is escaped so it cannot split a cell."""
    return DASH if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """GitHub-flavoured Markdown table, one line per row, ending in a newline."""
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
