"""What a benchmark target records, and the format-neutral blocks the report renders from it.

A target's `measure` returns a `BenchmarkSection`: a pydantic model that is both the record in
the run's state.json and the entry in report.json, so the two can never differ. Unknown fields
are kept (`extra="allow"`): a record written by a newer or older version still loads, and
dumping it gives back what was read. The report renders every section through its target's
`blocks` — a title, bullet lines and a table of strings — so Markdown and HTML are two
syntaxes of the same text and cannot disagree on a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DASH = "\u2014"
# Spelled as escapes: ruff flags the literal characters as look-alikes of "-" and "x".
EN_DASH = "\u2013"
TIMES = "\u00d7"

Mode = Literal["measured", "emulated", "estimated", "skipped"]


def fmt(value: Any, spec: str) -> str:
    """A number in `spec`, or a dash when the figure is missing (a half-finished run)."""
    return DASH if value is None else format(value, spec)


def pct(fraction: float | None) -> str:
    return DASH if fraction is None else f"{fraction * 100:.2f}%"


class Record(BaseModel):
    """A JSON object of a run: the fields the code reads are typed, the rest travel along."""

    model_config = ConfigDict(extra="allow")

    def record(self) -> dict[str, Any]:
        """The JSON object with the fields it was given, no defaults added: what a run records
        is what it measured, and a report rebuilt from it holds the same object."""
        return self.model_dump(mode="json", exclude_unset=True)


class BenchmarkSection(Record):
    """One target's figures: `mode` says how they were obtained, so an estimate can never
    pass for a measurement; a target that cannot run here records mode "skipped" and its
    `reason`, so the run still finishes and its report says why the figures are missing."""

    target: str
    mode: Mode = "measured"
    reason: str | None = None


@dataclass
class Block:
    """One section of the report as text. `timings` are the latency results the HTML plots
    beside it (accuracy against p50, the distribution); Markdown shows only the table."""

    title: str
    lines: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    timings: list[LatencyResult] = field(default_factory=list)


class LatencyResult(Record):
    """One model at one (threads, batch, seq_len), as `benchmarks.latency.run_latency` gives."""

    label: str | None = None
    engine: str | None = None
    batch: int | None = None
    seq_len: int | str | None = None
    threads: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    throughput_per_s: float | None = None
    peak_rss_mb: float | None = None
    samples_ms: list[float] | None = None


class Speedup(Record):
    """baseline p50 / candidate p50 over rounds paired by index (`benchmarks.latency.speedups`)."""

    baseline: str | None = None
    candidate: str | None = None
    batch: int | None = None
    seq_len: int | str | None = None
    threads: int | None = None
    ratio: float | None = None
    ratio_min: float | None = None
    ratio_max: float | None = None

    def cell(self) -> str:
        """The ratio with its spread over rounds: a ratio without its range hides drift."""
        if self.ratio is None:
            return DASH
        spread = ""
        if self.ratio_min is not None and self.ratio_max is not None:
            spread = f"  ({self.ratio_min:.2f}{EN_DASH}{self.ratio_max:.2f})"
        return f"{self.ratio:.2f}{TIMES}{spread}"


class LatencySection(BenchmarkSection):
    """Models timed by the latency harness: on this CPU or GPU, on an ARM machine, or on a
    device over SSH (`remote`, with what the device said it is in `device`)."""

    machine: str | None = None
    device_name: str | None = None
    driver: str | None = None
    threads: int | list[int] | None = None
    unavailable: dict[str, str] | None = None
    remote: str | None = None
    device: dict[str, Any] | None = None
    note: str | None = None
    results: list[LatencyResult] | None = None
    speedups: list[Speedup] | None = None

    def measured_results(self) -> list[LatencyResult]:
        return list(self.results or []) if self.mode == "measured" else []

    def blocks(self, title: str, speedups_title: str) -> list[Block]:
        """The timings and the speed-ups, under the target's own titles."""
        return [self._latency_block(title), self._speedups_block(speedups_title)]

    def _latency_block(self, title: str) -> Block:
        lines = []
        if self.note:
            lines.append(f"WARNING: {self.note}.")
        if self.remote:
            device = self.device or {}
            lines.append(
                f"Measured on the device {self.remote} over SSH ({device.get('machine')}, "
                f"{device.get('cores')} cores) by its own ONNX Runtime "
                f"{device.get('onnxruntime')}, Python {device.get('python')}."
            )
        if self.device_name:
            driver = f", driver {self.driver}" if self.driver else ""
            lines.append(f"Device: {self.device_name}{driver}")
        if self.threads is not None:
            lines.append(
                f"Threads: {self.threads}; each model timed in its own process, "
                "percentiles over all samples of all rounds."
            )
        results = self.results or []
        if any(r.seq_len == "dev" for r in results):
            lines.append(
                "Seq 'dev': the dev sentences' own token counts, consecutive sentences batched "
                "and padded to the longest of their batch (real traffic)."
            )
        if self.mode == "skipped":
            lines.append(f"Skipped: {self.reason or DASH}")
        rows = [
            [
                str(r.label or DASH),
                str(r.engine or DASH),
                fmt(r.threads, ""),
                fmt(r.batch, ""),
                fmt(r.seq_len, ""),
                fmt(r.p50_ms, ".2f"),
                fmt(r.p90_ms, ".2f"),
                fmt(r.p99_ms, ".2f"),
                fmt(r.throughput_per_s, ".1f"),
                fmt(r.peak_rss_mb, ".0f"),
            ]
            for r in results
        ]
        headers = ["Model", "Engine", "Threads", "Batch", "Seq", "p50 ms", "p90 ms", "p99 ms",
                   "Throughput /s", "Peak RSS MB"]  # fmt: skip
        return Block(title, lines, headers, rows, timings=self.measured_results())

    def _speedups_block(self, title: str) -> Block:
        rows = [
            [
                str(s.baseline or DASH),
                str(s.candidate or DASH),
                fmt(s.threads, ""),
                fmt(s.batch, ""),
                fmt(s.seq_len, ""),
                s.cell(),
            ]
            for s in self.speedups or []
        ]
        lines = (
            [
                "Baseline p50 / candidate p50: median over rounds paired by index "
                f"(min{EN_DASH}max over rounds)."
            ]
            if rows
            else []
        )
        headers = ["Baseline", "Candidate", "Threads", "Batch", "Seq", "Speed-up"]
        return Block(title, lines, headers, rows)


def latency_section(
    target: str,
    results: Sequence[Mapping[str, Any]],
    speedups: Sequence[Mapping[str, Any]],
    **fields: Any,
) -> LatencySection:
    """A measured section from the harness's result and speed-up dicts."""
    return LatencySection.model_validate(
        {"target": target, "mode": "measured", **fields, "results": results, "speedups": speedups}
    )
