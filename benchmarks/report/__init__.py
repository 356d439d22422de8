"""A run's report: a typed model (`Report`) written as report.json, report.md and a
self-contained report.html, and as the model card (README.md) of each shipped folder.

Both text formats are rendered from one list of format-neutral blocks, so the Markdown and the
HTML can never disagree on a number; benchmark sections are rendered by the target that
recorded them (`benchmarks.targets`), so a new target needs no edit here.
"""

from benchmarks.report.card import model_card, write_model_cards
from benchmarks.report.model import Report, RunInfo, device_of
from benchmarks.report.plots import pareto_front
from benchmarks.report.render import render_html, render_markdown, write_report
from benchmarks.targets.sections import EN_DASH, TIMES

__all__ = [
    "EN_DASH",
    "TIMES",
    "Report",
    "RunInfo",
    "device_of",
    "model_card",
    "pareto_front",
    "render_html",
    "render_markdown",
    "write_model_cards",
    "write_report",
]
