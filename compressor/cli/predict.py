"""`compressor predict`: labels and probabilities from a run's shipped file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from compressor.cli.app import app, console
from compressor.errors import UserError


@app.command()
def predict(
    run: Annotated[
        Path,
        typer.Argument(
            help="A compress run folder, an ONNX package folder (config.json and onnx/) or an "
            ".onnx file."
        ),
    ],
    text: Annotated[
        list[str] | None, typer.Option(help="A sentence to label; repeat for several.")
    ] = None,
    text_pair: Annotated[
        list[str] | None,
        typer.Option(help="Sentence-pair tasks: the second sentence of each --text, in order."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(help="A .tsv file with a header line (or .csv / .jsonl) to label row by row."),
    ] = None,
    text_column: Annotated[
        str, typer.Option(help="The --file column holding the sentences.")
    ] = "sentence",
    text_pair_column: Annotated[
        str | None,
        typer.Option(
            "--text-pair-column",
            "--pair-column",
            help="The --file column holding the second sentence of pair tasks. \\[default: none]",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write one JSON object a row here ({text, label, probabilities}), and which "
            "file and batch size made them beside it (NAME.meta.json). \\[default: --text: a "
            "table; --file: JSON lines on stdout]"
        ),
    ] = None,
    artifact: Annotated[
        str | None,
        typer.Option(
            help="int8 (the quantized file), fp32 (onnx/model.onnx) or e2e (the tokenizer "
            "inside the graph). \\[default: int8 when there is one, else fp32]"
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Sentences a batch, in length order: a dynamic-int8 file's labels depend on it, "
            "and the default is evaluation's, so dev labels agree with the report. "
            "\\[default: 64]"
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="ONNX Runtime intra-op threads. \\[default: all cores]")
    ] = None,
) -> None:
    """Label sentences with a run's shipped ONNX file: names and probabilities of each label
    (for a token classifier, its entities: type, text, character span and score)."""
    from compressor.predict import (
        Predictor,
        entity_rows,
        prediction_rows,
        read_texts,
        write_predictions,
    )

    if (text is None) == (file is None):
        raise UserError("pass the sentences with --text (repeatable) or --file, one of the two")
    if text_pair is not None and file is not None:
        raise UserError("--text-pair goes with --text; a --file names its --text-pair-column")
    predictor = Predictor(run, artifact, batch_size=batch_size, threads=threads)
    choice = predictor.choice
    about = (
        f"{choice.path} ({choice.artifact}, {choice.why}); batch size {predictor.batch_size}, "
        f"max length {choice.max_length}"
    )
    if file is None:
        texts, pairs = list(text or []), text_pair
    else:
        texts, pairs = read_texts(file, text_column, text_pair_column)
    errors = Console(stderr=True)
    if file is not None or out is not None:
        errors.print(about, highlight=False, soft_wrap=True)
    if predictor.tags_words and pairs is not None:
        raise UserError(f"{choice.path} tags the words of one text — drop the text pairs")
    if predictor.tags_words:
        rows = entity_rows(texts, _answer(predictor.entities, texts, file is not None, errors))
    else:
        answer = partial(predictor.predict, pairs=pairs)
        rows = prediction_rows(texts, pairs, _answer(answer, texts, file is not None, errors))
    if out is not None:
        write_predictions(out, rows, predictor.describe() | {"input": str(file or "--text")})
        console.print(f"{len(rows)} predictions -> {out}", highlight=False, soft_wrap=True)
    elif file is not None:
        sys.stdout.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    elif predictor.tags_words:
        _entity_table(rows, about)
    else:
        _table(predictor.labels, rows, about)


def _answer(ask: Callable[..., list], texts: list[str], bar: bool, to: Console) -> list:
    """`ask(texts, on_progress)`, under a bar on stderr when `bar` (stdout may carry the JSON
    lines), which also logs plain lines when stderr is not a terminal."""
    from compressor.progress import LoggedProgress, LogLine

    if not bar:
        return ask(texts)
    progress = LoggedProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TimeRemainingColumn(), console=to)  # fmt: skip
    with progress:
        task = progress.add_task("predicting", total=len(texts), log=LogLine(items="sentences"))
        return ask(texts, on_progress=lambda n: progress.advance(task, n))


def _entity_table(rows: list[dict], caption: str) -> None:
    table = Table("text", "entities", caption=caption)
    for row in rows:
        found = [
            f"{e['type']} {e['word']!r} [{e['start']}:{e['end']}] {e['score']:.4f}"
            for e in row["entities"]
        ]
        table.add_row(row["text"], "\n".join(found) or "—")
    console.print(table)


def _table(labels: list[str], rows: list[dict], caption: str) -> None:
    table = Table("text", "label", *labels, caption=caption)
    for row in rows:
        shown = row["text"] + (f" / {row['text_pair']}" if "text_pair" in row else "")
        table.add_row(shown, row["label"], *(f"{p:.4f}" for p in row["probabilities"].values()))
    console.print(table)
