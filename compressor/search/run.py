"""`compressor search` from end to end: the teacher's files and accuracy once, candidates until
the budget is spent, then the chosen one trained again at the recipe's full budget and
shipped as an ordinary compress run folder (`out/best`), its drop measured again on the whole
dev set."""

from __future__ import annotations

import time
from pathlib import Path

import optuna

from benchmarks.targets import get_target
from compressor.data import load_task_data
from compressor.errors import UserError
from compressor.models import resolve_model_dir
from compressor.pipeline.artifacts import run_artifacts
from compressor.pipeline.benchmark import benchmark_stage, dev_lengths
from compressor.pipeline.chain import compress
from compressor.pipeline.context import RunContext, console
from compressor.pipeline.teacher import TeacherFiles
from compressor.recipe import Recipe, SearchConfig
from compressor.runfolder import RunFolder
from compressor.search.result import Summary, choose, rows_of, write_summary
from compressor.search.space import candidate_recipe, check_space, describe_space
from compressor.search.speed import SearchTarget, speed_in
from compressor.search.study import (
    Budget,
    Rungs,
    objective_for,
    open_storage,
    open_study,
    outcome_of,
    recover_killed,
)
from compressor.search.trial import Baseline, shippable
from compressor.tasks import DEFAULT_TASK, task_named

TEACHER_ACCURACY = "teacher_accuracy"


def for_task(recipe: Recipe, task: str) -> Recipe:
    """The recipe with the search section the data's task gets (the tagger defaults for
    tagged words, unless the recipe lists its own kinds)."""
    if task == DEFAULT_TASK:
        return recipe
    return recipe.model_copy(update={"search": recipe.search.for_tagged_words()})


def check(recipe: Recipe, task: str = DEFAULT_TASK) -> None:
    """Refusals that need no teacher: the space, and keys a search must not vary."""
    for key in [
        *recipe.search.shared_space,
        *(k for s in recipe.search.kind_spaces.values() for k in s.space),
    ]:
        if key.startswith(("data.", "search.", "benchmark.")):
            raise UserError(
                f"search space key {key}: every candidate is scored on the same data and "
                "timed the same way — set it in the recipe instead of the search space"
            )
    check_space(recipe, task)


def plan(recipe: Recipe, target: SearchTarget, budget_s: float, storage: str | None,
         out: Path) -> dict[str, str]:  # fmt: skip
    """--dry-run: the space the data's task gets and what a trial costs; durations measured
    by earlier trials in the same storage when there are any."""
    task = load_task_data(recipe.data).task
    recipe = for_task(recipe, task)
    check(recipe, task)
    cfg = recipe.search
    lines = describe_space(cfg)
    lines["trial"] = (
        f"at most {cfg.trial_steps} steps, judged on dev {task_named(task).metric} at steps "
        f"{[cfg.first_eval() * cfg.reduction_factor**k for k in range(cfg.rungs)]} "
        f"({cfg.pruner}), then exported, quantized, scored on the whole dev set and timed on "
        f"{target.describe()} beside the teacher's files"
    )
    lines["budget"] = f"{budget_s / 60:.0f} minutes of search, then the chosen candidate trained " \
        "again at the recipe's full budget"  # fmt: skip
    lines["cost"] = _measured_cost(cfg, storage, out, budget_s)
    return lines


def _measured_cost(cfg: SearchConfig, storage: str | None, out: Path, budget_s: float) -> str:
    exists = storage is not None or (out / "study.journal").is_file()
    if not exists:
        return "unknown until trials run: each kind's first trial measures it"
    main = open_study(open_storage(storage, out), cfg)
    durations: dict[str, list[float]] = {}
    for trial in main.get_trials(deepcopy=False):
        if trial.datetime_start and trial.datetime_complete:
            kind = str(trial.params.get("kind"))
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
            durations.setdefault(kind, []).append(seconds)
    if not durations:
        return "unknown until trials run: each kind's first trial measures it"
    means = {k: sum(v) / len(v) for k, v in durations.items()}
    per = ", ".join(f"{k} {m / 60:.1f} min" for k, m in means.items())
    overall = sum(means.values()) / len(means)
    return f"mean trial so far: {per}; about {budget_s / overall:.0f} trials fit the budget"


def search(
    teacher: str,
    recipe: Recipe,
    out: Path,
    target: SearchTarget,
    *,
    max_drop: float,
    budget_s: float,
    storage: str | None = None,
    max_trials: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    ship: bool = True,
) -> dict[str, Path]:
    data = RunContext(recipe, teacher).data
    recipe = for_task(recipe, data.task)
    check(recipe, data.task)
    budget = Budget(budget_s)
    run = RunFolder.create(out, "search", recipe, overwrite=overwrite, resume=resume)
    ctx = RunContext(recipe, teacher, run, resume=resume, preloaded=data)
    base = _baseline(ctx, target)
    opened = open_storage(storage, out)
    main, rungs = open_study(opened, recipe.search), Rungs(opened, recipe.search)
    requeued = recover_killed(main, rungs)
    if requeued:
        console.print(f"search: trials {requeued} were cut off by a kill; queued again, "
                      "their run folders resume")  # fmt: skip
    objective = objective_for(recipe, base, rungs, out / "trials", budget)
    started = time.monotonic()

    short = task_named(data.task).short_metric

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        rows = rows_of(study)
        choice = choose(rows, max_drop)
        outcome = outcome_of(trial)
        done = f"{short} {100 * outcome.dev_accuracy:.2f} % (drop {outcome.drop:.2f}), " \
            f"{outcome.speedup:.2f}x teacher int8" if outcome else \
            trial.user_attrs.get("stopped", trial.state.name.lower())  # fmt: skip
        best = "none yet"
        if choice:
            o = next(r.outcome for r in rows if r.number == choice.number)
            best = f"#{choice.number} drop {o.drop:.2f}, {o.speedup:.2f}x" if o else best
        console.print(
            f"search: trial {trial.number} ({trial.params.get('kind')}) {done} | "
            f"{sum(r.outcome is not None for r in rows)} finished, "
            f"{sum(r.state == 'PRUNED' for r in rows)} stopped early | best: {best} | "
            f"{budget.left() / 60:.1f} min left"
        )
        if budget.spent or budget.left() <= 0:
            study.stop()

    if budget.left() > 0:
        main.optimize(
            objective,
            n_trials=max_trials,
            timeout=budget.left(),
            callbacks=[report],
            catch=(UserError,),
            gc_after_trial=True,
        )
    console.print(f"search: {time.monotonic() - started:.0f} s of search")
    summary = Summary(
        target=target.describe(),
        max_drop=max_drop,
        teacher_accuracy=base.teacher_accuracy,
        metric=task_named(data.task).metric,
        rows=rows_of(main),
        choice=None,
    )
    summary.choice = choose(summary.rows, max_drop)
    if summary.choice is None:
        write_summary(out, summary)
        raise UserError(
            "no candidate finished within the budget — raise --budget (or lower "
            "search.trial_steps) and rerun with --resume"
        )
    if ship:
        summary.shipped = _ship(teacher, recipe, out, target, summary, resume)
    return write_summary(out, summary)


def _baseline(ctx: RunContext, target: SearchTarget) -> Baseline:
    """The teacher's ONNX and own int8 files and its dev score (the task's main figure),
    once per search."""
    from compressor.inference import dev_scores

    teacher_dir = Path(resolve_model_dir(ctx.teacher))
    teacher_files = TeacherFiles()
    if not teacher_files.done(ctx):
        with console.status(teacher_files.status(ctx)):
            teacher_files.run(ctx)
    run, dev = ctx.folder, ctx.data.dev
    if not run.done(TEACHER_ACCURACY):
        score = dev_scores(teacher_dir, dev, max_length=ctx.recipe.data.max_length)["score"]
        run.complete(TEACHER_ACCURACY, dev_accuracy=score, dev_examples=len(dev))
    files = run.result(teacher_files.name)
    return Baseline(
        teacher=ctx.teacher,
        teacher_onnx=Path(files["onnx"]),
        teacher_int8=Path(files["int8"]["path"]) if files["int8"].get("path") else None,
        teacher_accuracy=run.result(TEACHER_ACCURACY)["dev_accuracy"],
        data=ctx.data,
        target=target,
        lengths=dev_lengths(teacher_dir, ctx.data, ctx.recipe.data.max_length)
        if target.seq_len == "dev"
        else None,
    )


def _ship(teacher: str, recipe: Recipe, out: Path, target: SearchTarget, summary: Summary,
          resume: bool) -> dict[str, object]:  # fmt: skip
    """The chosen candidate with the recipe's full training, timed at the search's shape."""
    assert summary.choice is not None
    row = next(r for r in summary.rows if r.number == summary.choice.number)
    final = candidate_recipe(recipe, row.settings)
    final = final.model_copy(update={"benchmark": target.config()})
    best = out / "best"
    console.print(f"search: training trial {row.number}'s candidate at full budget into {best}")
    paths = compress(teacher, final, best, overwrite=not resume, resume=resume)
    finished = RunFolder.open(best)
    scores = finished.result("evaluate")["dev_accuracy"]
    shipped = shippable(run_artifacts(finished, teacher))
    section = get_target(final.benchmark.target).parse(
        finished.result(benchmark_stage(final.benchmark))
    )
    speed = speed_in(section, shipped.label, target)
    return {
        "folder": str(best),
        "trial": row.number,
        "file": shipped.label,
        "dev_accuracy": scores[shipped.key],
        "drop": round(100 * (scores["teacher"] - scores[shipped.key]), 3),
        "speedup": speed.vs_teacher_int8 if speed else None,
        "report": str(paths["md"]),
    }
