"""Several runs side by side: what each student costs and buys, from their report.json.

Latency from different runs was measured at different times, so each row's speed-up is
against the teacher timed in its own run (a ratio the machine's drift cancels in), and the
absolute p50s are shown only for orientation. Each run is read at the first target it timed
(`compress` times the CPU), and the setting column names that target.

Only report.json is read, never the renderer: its benchmark sections are typed by their
targets (`benchmarks.targets.load_section`), its models are plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from benchmarks.targets import load_section
from benchmarks.targets.sections import TIMES, LatencyResult, LatencySection, fmt
from compressor.atomic import write_json, write_text
from compressor.errors import UserError
from compressor.markdown import table

HEADERS = [
    "Run",
    "Model",
    "Format",
    "Dev {metric}",
    "Δ vs teacher (pts)",
    "Size MB",
    "p50 ms",
    "Speed-up vs teacher",
    "Setting",
]


class CompareRow(TypedDict):
    run: str
    model: str
    format: str | None
    dev_accuracy: float | None
    metric: str
    """What `dev_accuracy` holds: the task's main figure (accuracy, entity F1)."""
    delta_points: float | None
    size_mb: float | None
    p50_ms: float | None
    speedup: float | None
    setting: str | None


def load_report(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no report.json — pass compress run folders")
    report = json.loads(path.read_text(encoding="utf-8"))
    if "latency" in report and "benchmarks" not in report:
        raise UserError(
            f"{path} was written by an older version — rebuild it with "
            f"`compressor report {run_dir}`"
        )
    return report


def _first_timed(report: Mapping[str, Any]) -> LatencySection | None:
    """The first recorded section with measured latency results."""
    for record in (report.get("benchmarks") or {}).values():
        section = load_section(record)
        if isinstance(section, LatencySection) and section.measured_results():
            return section
    return None


def _setting(results: Sequence[LatencyResult]) -> tuple[int | None, int | str | None, int] | None:
    """The one (batch, seq, threads) every row is read at: batch 1, first length, most threads."""
    ones = [r for r in results if r.batch == 1] or list(results)
    if not ones:
        return None
    threads = max(r.threads or 0 for r in ones)
    return ones[0].batch, ones[0].seq_len, threads


def compare_rows(runs: Mapping[str, Mapping[str, Any]]) -> list[CompareRow]:
    rows = []
    for name, report in runs.items():
        timed = _first_timed(report)
        results = timed.measured_results() if timed else []
        setting = _setting(results)
        p50 = {
            r.label: r.p50_ms
            for r in results
            if setting and (r.batch, r.seq_len, r.threads or 0) == setting
        }
        models = report.get("models") or {}
        teacher = models.get("teacher") or {}
        teacher_p50 = p50.get(teacher.get("label"))
        teacher_onnx_p50 = p50.get("teacher ONNX")
        t_acc = teacher.get("dev_accuracy")
        metric = (report.get("run") or {}).get("metric") or "accuracy"
        for key, model in models.items():
            label = model.get("label") or key
            own = p50.get(label)
            # ONNX files against the teacher's ONNX, PyTorch against PyTorch: export is its own gain
            onnx = (model.get("format") or "").startswith("onnx")
            base = teacher_onnx_p50 if onnx else teacher_p50
            acc = model.get("dev_accuracy")
            rows.append(
                CompareRow(
                    run=name,
                    model=label,
                    format=model.get("format"),
                    dev_accuracy=acc,
                    metric=metric,
                    delta_points=None if acc is None or t_acc is None else 100 * (acc - t_acc),
                    size_mb=model.get("size_mb"),
                    p50_ms=own,
                    speedup=None if own is None or base is None else base / own,
                    setting=None
                    if setting is None or timed is None
                    else f"{timed.target}: batch {setting[0]}, seq {setting[1]}, "
                    f"{setting[2]} threads",
                )
            )
    return rows


def render_markdown(rows: Sequence[CompareRow]) -> str:
    """One table; runs of tasks with other metrics (accuracy, entity F1) say theirs per cell."""
    metrics = {r["metric"] for r in rows}
    shared = next(iter(metrics)) if len(metrics) == 1 else None

    def score(r: CompareRow) -> str | None:
        if r["dev_accuracy"] is None:
            return None
        return f"{100 * r['dev_accuracy']:.2f}%" + ("" if shared else f" ({r['metric']})")

    headers = [h.format(metric=shared or "score") for h in HEADERS]
    return table(
        headers,
        (
            [
                r["run"],
                r["model"],
                r["format"],
                score(r),
                fmt(r["delta_points"], "+.2f"),
                fmt(r["size_mb"], ".1f"),
                fmt(r["p50_ms"], ".2f"),
                None if r["speedup"] is None else f"{r['speedup']:.2f}{TIMES}",
                r["setting"],
            ]
            for r in rows
        ),
    )


def compare(run_dirs: Sequence[Path]) -> list[CompareRow]:
    names = [Path(d).name for d in run_dirs]
    keys = names if len(set(names)) == len(names) else [str(d) for d in run_dirs]
    return compare_rows({key: load_report(d) for key, d in zip(keys, run_dirs, strict=True)})


def compare_to_file(run_dirs: Sequence[Path], out: Path | None) -> str:
    """The table of `compressor compare`; with `out`, also written there (.md) with its rows
    beside it (.json) for scripts that want the numbers unformatted."""
    rows = compare(run_dirs)
    text = render_markdown(rows)
    if out is not None:
        write_text(out, text)
        write_json(out.with_suffix(".json"), rows)
    return text
