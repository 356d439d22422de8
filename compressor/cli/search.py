"""`compressor search`: the fastest student on a target within an accuracy tolerance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.app import app, console, print_plan, resumable
from compressor.cli.options import DataOptions, RecipeOpt, RunOptions, TeacherOpt, grouped
from compressor.recipe import load_recipe


@app.command()
@grouped
def search(
    teacher: TeacherOpt,
    out: Annotated[
        Path, typer.Option(help="Search folder: the study, every candidate, best/ (shipped).")
    ],
    data: DataOptions = DataOptions(),
    max_drop: Annotated[
        float,
        typer.Option(help="Dev accuracy points the student may lose against the teacher."),
    ] = 1.0,
    target: Annotated[
        str,
        typer.Option(
            help="Where candidates are timed: cpu (measured here, beside the teacher's files) "
            "or arm:<profile> (roofline estimate, e.g. arm:cortex-a55)."
        ),
    ] = "cpu",
    threads: Annotated[int, typer.Option(min=1, help="Intra-op threads of the timing.")] = 2,
    batch: Annotated[int, typer.Option(min=1, help="Batch size of the timing.")] = 1,
    seq_len: Annotated[
        str,
        typer.Option(help="Tokens per example of the timing, or 'dev': the dev set's own lengths."),
    ] = "dev",
    iters: Annotated[
        int, typer.Option(min=1, help="Timed iterations per round (3 rounds) on the CPU.")
    ] = 30,
    budget: Annotated[
        str,
        typer.Option(
            help="Wall clock of this worker's search (90s, 60m, 1.5h; a number is minutes). A "
            "resumed search gets the budget again. The chosen candidate's full training comes "
            "after it."
        ),
    ] = "60m",
    max_trials: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many trials, budget or not.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Where the study lives: a database URL (sqlite:///s.db, postgresql://...) or "
            "a journal file. Workers on other machines pass the same URL and "
            "--no-ship. \\[default: OUT/study.journal]"
        ),
    ] = None,
    ship: Annotated[
        bool,
        typer.Option(
            help="Train the chosen candidate at full budget into OUT/best when the search "
            "ends; extra workers pass --no-ship."
        ),
    ] = True,
    recipe: RecipeOpt = None,
    dry_run: Annotated[
        bool, typer.Option(help="Check the space and print it with what a trial costs.")
    ] = False,
    run: RunOptions = RunOptions(),
) -> None:
    """Search student kinds, sizes, distillation and quantization for the fastest file on the
    target within --max-drop points; ship the chosen one (or the most accurate, saying how far
    it is, when none is within the tolerance)."""
    from compressor.search import SearchTarget, parse_budget
    from compressor.search import plan as search_plan
    from compressor.search import search as run_search

    effective = load_recipe(recipe, data.overrides())
    where = SearchTarget.parse(target, threads=threads, batch=batch, seq_len=seq_len, iters=iters)
    seconds = parse_budget(budget)
    if dry_run:
        print_plan(search_plan(effective, where, seconds, storage, out))
        return
    with resumable():
        paths = run_search(
            teacher,
            effective,
            out,
            where,
            max_drop=max_drop,
            budget_s=seconds,
            storage=storage,
            max_trials=max_trials,
            overwrite=run.overwrite,
            resume=run.resume,
            ship=ship,
        )
    console.print(f"[green]search: {paths['md']}  (JSON: {paths['json']}, HTML: {paths['html']})")
