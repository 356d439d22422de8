"""What a search found: every trial, the Pareto front of accuracy drop against speed, and the
candidate chosen for the user's tolerance (or, when none meets it, the most accurate one and
how far it is), written as search.json, search.md and report.html."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from jinja2 import Environment, PackageLoader, StrictUndefined
from optuna.trial import TrialState

from benchmarks.report.plots import figure, png
from benchmarks.report.render import data_uri
from benchmarks.targets.sections import TIMES
from compressor import atomic
from compressor.markdown import table
from compressor.search.space import KIND
from compressor.search.study import REPEAT_OF, outcome_of
from compressor.search.trial import Outcome


@dataclass
class Row:
    """One trial as the tables show it."""

    number: int
    state: str
    kind: str
    settings: dict[str, Any]
    outcome: Outcome | None
    stopped: str | None
    seconds: float | None
    on_front: bool = False
    repeat_of: int | None = None
    searched: list[str] = field(default_factory=list)


@dataclass
class Choice:
    """The candidate to ship and why it was picked."""

    number: int
    met: bool
    reason: str


@dataclass
class Summary:
    target: str
    max_drop: float
    teacher_accuracy: float
    rows: list[Row]
    choice: Choice | None
    shipped: dict[str, Any] = field(default_factory=dict)
    metric: str = "accuracy"
    """What `teacher_accuracy` and every candidate's dev figure are (the task's main one)."""

    def counts(self) -> dict[str, int]:
        states = [r.state for r in self.rows if r.repeat_of is None]
        counts = {s.lower(): states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
        return counts | {"repeat": sum(r.repeat_of is not None for r in self.rows)}


def rows_of(study: optuna.Study) -> list[Row]:
    front = {t.number for t in study.best_trials}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = None
        if trial.datetime_start and trial.datetime_complete:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        rows.append(
            Row(
                number=trial.number,
                state=trial.state.name,
                kind=str(trial.params.get("kind", "?")),
                settings=dict(trial.user_attrs.get("settings", {})),
                outcome=outcome_of(trial),
                stopped=trial.user_attrs.get("stopped"),
                seconds=seconds,
                on_front=trial.number in front and trial.state == TrialState.COMPLETE,
                repeat_of=trial.user_attrs.get(REPEAT_OF),
                searched=[name.rpartition(":")[2] for name in trial.params if name != KIND],
            )
        )
    return rows


def choose(rows: list[Row], max_drop: float) -> Choice | None:
    """The fastest finished candidate within `max_drop` points; when none is, the most
    accurate one (a search that finds nothing within tolerance still ships its best)."""
    done = [r for r in rows if r.outcome is not None]
    if not done:
        return None
    within = [r for r in done if r.outcome and r.outcome.drop <= max_drop]
    if within:
        best = max(within, key=lambda r: r.outcome.speedup if r.outcome else 0.0)
        return Choice(best.number, True, f"the fastest of {len(within)} candidates within "
                      f"{max_drop:g} points")  # fmt: skip
    best = min(done, key=lambda r: r.outcome.drop if r.outcome else float("inf"))
    gap = best.outcome.drop - max_drop if best.outcome else 0.0
    return Choice(best.number, False, f"no candidate met --max-drop {max_drop:g}; this is the "
                  f"most accurate, {gap:.2f} points short of it")  # fmt: skip


def _describe(row: Row) -> str:
    """The searched keys only: a kind's fixed settings are the same in all its rows."""
    return ", ".join(f"{k}={json.dumps(row.settings[k])}" for k in row.searched
                     if k in row.settings)  # fmt: skip


def lines(summary: Summary) -> list[str]:
    """The paragraphs above the table: target, tolerance, counts, the choice, the shipped run."""
    counts = summary.counts()
    out = [
        f"Target: {summary.target}. Tolerance: {summary.max_drop:g} points below the teacher's "
        f"{100 * summary.teacher_accuracy:.2f} % dev {summary.metric}. Trials: "
        f"{counts['complete']} "
        f"finished, {counts['pruned']} stopped early, {counts['fail']} failed; "
        f"{counts['repeat']} proposals repeated a candidate already run (reused, not listed). "
        "Speed-ups are the teacher's latency over the candidate's, timed (or estimated) in "
        "one run."
    ]
    if summary.choice:
        out.append(f"Chosen: trial {summary.choice.number}, {summary.choice.reason}.")
    if summary.shipped:
        s = summary.shipped
        out.append(
            f"Shipped (trained again at the recipe's full budget, scored on the whole dev set): "
            f"{s['folder']}, dev {summary.metric} {100 * s['dev_accuracy']:.2f} % (drop "
            f"{s['drop']:.2f} points), "
            + (f"{s['speedup']:.2f}x as fast as" if s["speedup"] else "not timed against")
            + " the teacher's own int8 file."
        )
    return out


def headers(summary: Summary) -> list[str]:
    return ["Trial", "State", "Kind", "Settings", f"Dev {summary.metric} %", "Drop",
            f"{TIMES} teacher int8", f"{TIMES} teacher", "MB", "Front", "Minutes"]  # fmt: skip


def trial_rows(summary: Summary) -> list[list[str]]:
    body = []
    for r in summary.rows:
        if r.repeat_of is not None:
            continue
        o = r.outcome
        body.append(
            [
                str(r.number),
                r.state.lower() + (f" ({r.stopped})" if r.stopped else ""),
                r.kind,
                _describe(r),
                f"{100 * o.dev_accuracy:.2f}" if o else "",
                f"{o.drop:.2f}" if o else "",
                f"{o.speedup:.2f}" if o else "",
                f"{o.speed['vs_teacher']:.2f}" if o else "",
                f"{o.size_mb:.1f}" if o else "",
                "yes" if r.on_front else "",
                f"{r.seconds / 60:.1f}" if r.seconds else "",
            ]
        )
    return body


def markdown(summary: Summary) -> str:
    parts = ["# Search", "", *[f"{line}\n" for line in lines(summary)]]
    return "\n".join([*parts, table(headers(summary), trial_rows(summary)), ""])


def front_png(summary: Summary) -> bytes | None:
    """Drop against speed-up for every finished trial, the front joined."""
    done = [r for r in summary.rows if r.outcome]
    if not done:
        return None
    fig = figure(4.2)
    ax = fig.add_subplot()
    for kind in sorted({r.kind for r in done}):
        mine = [r for r in done if r.kind == kind and r.outcome]
        ax.scatter([r.outcome.speedup for r in mine if r.outcome],
                   [r.outcome.drop for r in mine if r.outcome], label=kind, s=40)  # fmt: skip
    front = sorted((r.outcome.speedup, r.outcome.drop) for r in done if r.on_front and r.outcome)
    ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="tab:gray",
            label="Pareto front")  # fmt: skip
    ax.axhline(summary.max_drop, color="tab:red", linewidth=0.8, label="--max-drop")
    ax.set_xlabel("times faster than the teacher's int8 file")
    ax.set_ylabel(f"{summary.metric} drop, points")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    return png(fig)


def write_summary(out: Path, summary: Summary) -> dict[str, Path]:
    paths = {"json": out / "search.json", "md": out / "search.md", "html": out / "report.html"}
    atomic.write_json(paths["json"], asdict(summary))
    atomic.write_text(paths["md"], markdown(summary))
    env = Environment(
        loader=PackageLoader("compressor.search", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )
    image = front_png(summary)
    html = env.get_template("search.html.j2").render(
        lines=lines(summary),
        headers=headers(summary),
        rows=trial_rows(summary),
        plot=data_uri(image) if image else None,
    )
    atomic.write_text(paths["html"], html)
    return paths
