"""Several runs side by side: what each student costs and buys, from their report.json.

Latency from different runs was measured at different times, so each row's speed-up is
against the teacher timed in its own run (a ratio the machine's drift cancels in), and the
absolute p50s are shown only for orientation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compressor.errors import UserError

HEADERS = [
    "Run",
    "Model",
    "Format",
    "Dev accuracy",
    "Δ vs teacher (pts)",
    "Size MB",
    "p50 ms",
    "Speed-up vs teacher",
    "Setting",
]


def load_report(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no report.json — pass compress run folders")
    return json.loads(path.read_text(encoding="utf-8"))


def _setting(results: Sequence[dict[str, Any]]) -> tuple[int, Any, int] | None:
    """The one (batch, seq, threads) every row is read at: batch 1, first length, most threads."""
    ones = [r for r in results if r.get("batch") == 1] or list(results)
    if not ones:
        return None
    threads = max(r.get("threads") or 0 for r in ones)
    return ones[0]["batch"], ones[0]["seq_len"], threads


def compare_rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, report in runs.items():
        results = (report.get("latency") or {}).get("results") or []
        setting = _setting(results)
        p50 = {
            r["label"]: r["p50_ms"]
            for r in results
            if setting and (r["batch"], r["seq_len"], r.get("threads") or 0) == setting
        }
        models = report.get("models") or {}
        teacher = models.get("teacher") or {}
        teacher_p50 = p50.get(teacher.get("label"))
        teacher_onnx_p50 = p50.get("teacher ONNX")
        for key, model in models.items():
            label = model.get("label") or key
            own = p50.get(label)
            # ONNX files against the teacher's ONNX, PyTorch against PyTorch: export is its own gain
            base = teacher_onnx_p50 if model.get("format", "").startswith("onnx") else teacher_p50
            acc, t_acc = model.get("dev_accuracy"), teacher.get("dev_accuracy")
            rows.append(
                {
                    "run": name,
                    "model": label,
                    "format": model.get("format"),
                    "dev_accuracy": acc,
                    "delta_points": None if acc is None or t_acc is None else 100 * (acc - t_acc),
                    "size_mb": model.get("size_mb"),
                    "p50_ms": own,
                    "speedup": None if own is None or base is None else base / own,
                    "setting": None
                    if setting is None
                    else f"batch {setting[0]}, seq {setting[1]}, {setting[2]} threads",
                }
            )
    return rows


def render_markdown(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in rows:
        acc = "—" if r["dev_accuracy"] is None else f"{100 * r['dev_accuracy']:.2f}%"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["run"],
                    r["model"],
                    str(r["format"] or "—"),
                    acc,
                    cell(r["delta_points"], "+.2f"),
                    cell(r["size_mb"], ".1f"),
                    cell(r["p50_ms"], ".2f"),
                    "—" if r["speedup"] is None else f"{r['speedup']:.2f}\u00d7",
                    r["setting"] or "—",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def compare(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    names = [Path(d).name for d in run_dirs]
    keys = names if len(set(names)) == len(names) else [str(d) for d in run_dirs]
    return compare_rows({key: load_report(d) for key, d in zip(keys, run_dirs, strict=True)})
