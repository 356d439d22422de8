"""The `make demo` run as a results file: every model's dev accuracy, size and speed-up over
the teacher's own files (PyTorch, ONNX, and its own int8 file: the number to beat), read
from the run's report.json (where all of them were measured in one interleaved run) and
stamped with the commit, machine, date and command.

    python -m benchmarks.experiments.demo_summary runs/demo/student
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.experiments.results import RESULTS, write_results
from compressor.errors import UserError
from compressor.markdown import table

HEADERS = [
    "model",
    "format",
    "dev accuracy",
    "size MB",
    "vs teacher PyTorch",
    "vs teacher ONNX",
    "vs teacher ONNX int8",
]


def _setting(speedups: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch 1 at the longest fixed length the run timed, at its most threads: one setting,
    so every row of the summary measures the same work."""
    ones = [s for s in speedups if s["batch"] == 1 and isinstance(s["seq_len"], int)]
    if not ones:
        return {}
    return {
        "batch": 1,
        "seq_len": max(s["seq_len"] for s in ones),
        "threads": max(s.get("threads") or 0 for s in ones),
    }


def _ratio(
    speedups: list[dict[str, Any]], setting: dict[str, Any], baseline: str, candidate: str
) -> str | None:
    """The speed-up of `candidate` over `baseline` at `setting`, with its spread over rounds."""
    for s in speedups:
        if (
            s["baseline"] == baseline
            and s["candidate"] == candidate
            and all(s.get(k) == v for k, v in setting.items())
        ):
            return f"{s['ratio']:.2f}x ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})"
    return None


def summary(report: dict[str, Any]) -> tuple[str, list[list[Any]]]:
    """Markdown of the summary (setup lines, then the table) and its rows."""
    models = report.get("models") or {}
    cpu = (report.get("benchmarks") or {}).get("benchmark") or {}
    speedups = cpu.get("speedups") or []
    setting = _setting(speedups)
    rows = []
    for key, model in models.items():
        label = model.get("label") or key
        accuracy = model.get("dev_accuracy")
        rows.append(
            [
                label,
                model.get("format"),
                None if accuracy is None else f"{100 * accuracy:.2f} %",
                model.get("size_mb"),
                "1.00x"
                if key == "teacher"
                else _ratio(speedups, setting, "teacher PyTorch", label),
                _ratio(speedups, setting, "teacher ONNX", label),
                _ratio(speedups, setting, "teacher ONNX int8", label),
            ]
        )
    run = report.get("run") or {}
    setup = [
        f"Run: {run.get('name')}, recipe hash {run.get('recipe_hash')}, teacher "
        f"{run.get('teacher')}, data {run.get('data')}.",
        f"Device: {run.get('device')}. Speed-ups: median over paired rounds of the teacher's "
        f"p50 over the model's (min-max) at {setting or 'no timed setting'}; every model in "
        "its own process, rounds interleaved.",
        *[f"Note: {note}" for note in run.get("notes") or []],
    ]
    text = "\n".join(f"- {line}" for line in setup) + "\n\n" + table(HEADERS, rows)
    return text, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the compress run folder of `make demo`")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    path = args.run / "report.json"
    if not path.is_file():
        raise UserError(f"{args.run} has no report.json — run `make demo` first")
    text, rows = summary(json.loads(path.read_text(encoding="utf-8")))
    written = write_results("demo", text, {"rows": rows}, folder=args.results)
    print(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
