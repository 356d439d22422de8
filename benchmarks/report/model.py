"""The report of a run as a typed model: what report.json holds and what report.md and
report.html render.

Every part is optional: a report is written after each stage, before later stages have
produced anything, and a missing value renders as a dash instead of failing the report.
Benchmark sections are keyed by the run-state key their target recorded them under and typed
by that target (`benchmarks.targets.load_section`), so the report holds any registered
target's figures without knowing the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, SerializeAsAny, field_validator

from benchmarks.targets import get_target, load_section
from benchmarks.targets.sections import BenchmarkSection, LatencySection, Record


class RunInfo(Record):
    name: str | None = None
    created: str | None = None
    recipe_hash: str | None = None
    device: str | None = None
    teacher: str | None = None
    data: str | None = None
    metric: str | None = None
    """The task's main figure, what every "dev accuracy" of the report holds (entity F1 for
    token classification); unset: accuracy."""
    notes: list[str] = Field(default_factory=list)


class Parity(Record):
    """How closely an exported file reproduces its source's logits on dev sentences."""

    max_abs_diff: float | None = None
    argmax_agreement: float | None = None
    n: int | None = None
    tolerance: float | None = None
    passed: bool | None = None


class BatchedAccuracy(Record):
    """The dev accuracy of a file whose labels depend on their batch (dynamic int8), scored
    at `predict`'s batch size; the entry's own figure is one sentence at a time."""

    batch_size: int
    dev_accuracy: float


class ModelEntry(Record):
    """One model file of the run; `label` is how benchmark results name it."""

    label: str | None = None
    format: str | None = None
    path: str | None = None
    parameters: int | None = None
    non_embedding_parameters: int | None = None
    size_mb: float | None = None
    dev_accuracy: float | None = None
    dev_accuracy_batched: BatchedAccuracy | None = None
    dev_figures: dict[str, Any] | None = None
    """The task's other figures (precision, recall, F1 per entity type, token accuracy)."""
    parity: Parity | None = None


class HistoryPoint(Record):
    step: int | None = None
    loss: float | None = None
    dev_accuracy: float | None = None


class TrainingStage(Record):
    name: str
    steps: int
    losses: list[str] = Field(default_factory=list)
    kept: str | None = None
    teacher_pass: str | None = None


class Augmentation(Record):
    original: int
    augmented: int
    methods: list[str] = Field(default_factory=list)
    candidate_source: str | None = None
    cached: bool = False


class Training(Record):
    steps: int | None = None
    best_step: int | None = None
    best_dev_accuracy: float | None = None
    train_examples: int | None = None
    samples_per_s: float | None = None
    train_seconds: float | None = None
    word_embeddings: str | None = None
    history: list[HistoryPoint] | None = None
    stages: list[TrainingStage] | None = None
    augmentation: Augmentation | None = None


class TracePoint(Record):
    """One step of the pruning run; `probe_kl` only on probed steps."""

    step: int
    probe_kl: float | None = None
    remaining: float | None = None


class Schedule(Record):
    begin: int | None = None
    end: int | None = None
    every: int | None = None


class Architecture(Record):
    hidden_size: int | None = None
    intermediate_size: int | None = None
    heads_per_layer: list[int] | None = None


class Pruning(Record):
    source: str | None = None
    criterion: str | None = None
    targets: dict[str, int] | None = None
    kept: dict[str, Any] | None = None
    schedule: Schedule | None = None
    architecture: Architecture | None = None
    shrink_max_abs_diff: float | None = None
    non_embedding_parameters_before: int | None = None
    trace: list[TracePoint] | None = None

    def probes(self) -> list[TracePoint]:
        """The probed steps: the prediction gap is measured only there."""
        return [t for t in self.trace or [] if t.probe_kl is not None]


class Report(Record):
    run: RunInfo | None = None
    models: dict[str, ModelEntry] = Field(default_factory=dict)
    training: Training | None = None
    pruning: Pruning | None = None
    benchmarks: dict[str, SerializeAsAny[BenchmarkSection]] = Field(default_factory=dict)

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _typed_by_target(cls, value: Any) -> Any:
        """Raw records become their target's section type, so a report read from JSON
        renders like the one built from the run."""
        if not isinstance(value, Mapping):
            return value
        return {
            key: load_section(section) if isinstance(section, Mapping) else section
            for key, section in value.items()
        }

    @property
    def metric(self) -> str:
        """The name of the figure the report's "dev" columns hold."""
        return (self.run.metric if self.run else None) or "accuracy"

    def timed(self) -> list[LatencySection]:
        """Sections with latency results from the harness (CPU, GPU, an ARM device), in the
        order they were recorded."""
        return [s for s in self.benchmarks.values() if isinstance(s, LatencySection)]


def device_of(benchmarks: Mapping[str, BenchmarkSection]) -> str | None:
    """What the recorded figures were obtained on, each target saying it its own way ("cpu:
    <model>", "arm (estimated)"); None when nothing was benchmarked (a skipped target
    measured nothing)."""
    devices = [get_target(s.target).device(s) for s in benchmarks.values()]
    return "; ".join(dict.fromkeys(d for d in devices if d)) or None
