"""The report's figures as PNG bytes, drawn on an explicit Agg canvas instead of pyplot, so no
global backend or figure state leaks into (or from) the process that writes the report. Each
returns None when the run has nothing to draw yet."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.report.model import ModelEntry, Pruning
from benchmarks.targets.sections import EN_DASH, LatencyResult


def accuracy_title(metric: str) -> str:
    """The title of the score / latency plot, naming the task's metric."""
    return f"dev {metric} vs p50 latency (batch 1)"


ACCURACY_TITLE = accuracy_title("accuracy")  # a classifier's


SIZE_TITLE = "size on disk"
SPREAD_TITLE = "latency distribution (batch 1)"
GAP_TITLE = "prediction gap while pruning"
# every quantized format ("onnx-int8", "onnx-fp16", ...) shares the triangle
FORMAT_MARKERS = {"pytorch": "o", "onnx": "s"}


def figure(height: float) -> Figure:
    fig = Figure(figsize=(6.4, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _batch1(results: Sequence[LatencyResult]) -> list[LatencyResult]:
    """The batch-1 results at the most threads and the first length: every point then
    measures the same work."""
    ones = [r for r in results if r.batch == 1]
    if not ones:
        return []
    most = max(r.threads or 0 for r in ones)
    ones = [r for r in ones if (r.threads or 0) == most]
    return [r for r in ones if r.seq_len == ones[0].seq_len]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(latency, accuracy) points no other point beats on both, fastest first: the models
    worth shipping at some latency budget."""
    front: list[tuple[float, float]] = []
    for latency, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((latency, accuracy))
    return front


def accuracy_latency_png(
    models: Mapping[str, ModelEntry], results: Sequence[LatencyResult], metric: str = "accuracy"
) -> bytes | None:
    """The score/latency trade-off with its Pareto front (the score is the task's `metric`).
    Results are matched to models by label or by model key, whichever the caller used."""
    timed = _batch1(results)
    if not timed:
        return None
    p50_by_label = {r.label: r.p50_ms for r in timed}
    points = []
    for key, model in models.items():
        label = model.label or key
        p50 = p50_by_label.get(label, p50_by_label.get(key))
        if p50 is not None and model.dev_accuracy is not None:
            points.append((label, str(model.format), float(p50), model.dev_accuracy * 100))
    if not points:
        return None
    fig = figure(4.2)
    ax = fig.add_subplot()
    for i, (label, fmt, p50, accuracy) in enumerate(points):
        marker = FORMAT_MARKERS.get(fmt, "^" if fmt.startswith("onnx-") else "D")
        ax.scatter([p50], [accuracy], marker=marker, s=60)
        # students often tie on accuracy (ONNX fp32 = PyTorch): alternate labels above/below
        offset = (6, 6) if i % 2 == 0 else (6, -14)
        ax.annotate(label, (p50, accuracy), textcoords="offset points", xytext=offset)
    front = pareto_front([(p50, accuracy) for _l, _f, p50, accuracy in points])
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:gray",
            linestyle="--", label="Pareto front")  # fmt: skip
    ax.legend(loc="lower right")
    ax.set_title(accuracy_title(metric))
    ax.set_xlabel(f"p50 latency, ms (batch 1, seq {timed[0].seq_len})")
    ax.set_ylabel(f"dev {metric}, %")
    ax.grid(True, alpha=0.3)
    ax.margins(0.2)
    return png(fig)


def spread_png(results: Sequence[LatencyResult]) -> bytes | None:
    """Box plots of every engine's samples at batch 1: a median can hide a long tail or a
    bimodal engine."""
    timed = _batch1([r for r in results if r.samples_ms])
    if not timed:
        return None
    fig = figure(0.5 * len(timed) + 1.6)
    ax = fig.add_subplot()
    ax.boxplot([r.samples_ms for r in timed], vert=False, whis=(1, 99), showfliers=False)
    ax.set_yticks(range(1, len(timed) + 1), [str(r.label) for r in timed])
    ax.set_xlabel(
        f"latency, ms (batch 1, seq {timed[0].seq_len}, {timed[0].threads or 0} threads; "
        f"whiskers p1{EN_DASH}p99)"
    )
    ax.set_title(SPREAD_TITLE)
    ax.grid(True, axis="x", alpha=0.3)
    return png(fig)


def size_png(models: Mapping[str, ModelEntry]) -> bytes | None:
    """Size on disk of every model file, so what quantization buys is visible at once."""
    sizes = [(m.label or key, m.size_mb) for key, m in models.items() if m.size_mb]
    if not sizes:
        return None
    fig = figure(0.45 * len(sizes) + 1.4)
    ax = fig.add_subplot()
    ax.barh([label for label, _ in sizes], [mb for _, mb in sizes], color="tab:blue")
    for i, (_label, mb) in enumerate(sizes):
        ax.annotate(f"{mb:.1f} MB", (mb, i), textcoords="offset points", xytext=(4, -4))
    ax.invert_yaxis()
    ax.set_xlabel("MB")
    ax.set_title(SIZE_TITLE)
    ax.margins(x=0.2)
    return png(fig)


def gap_png(pruning: Pruning | None) -> bytes | None:
    """The prediction gap and the model's size over the pruning run."""
    probes = pruning.probes() if pruning else []
    if not probes:
        return None
    steps = [p.step for p in probes]
    fig = figure(3.8)
    ax = fig.add_subplot()
    ax.plot(steps, [p.probe_kl for p in probes], color="tab:red")
    ax.set_xlabel("step")
    ax.set_ylabel("KL(teacher || student), dev probe", color="tab:red")
    size = ax.twinx()
    size.plot(steps, [100 * (p.remaining or 0.0) for p in probes], color="tab:blue")
    size.set_ylabel("non-embedding weights kept, %", color="tab:blue")
    size.set_ylim(0, 105)
    ax.set_title(GAP_TITLE)
    ax.grid(True, alpha=0.3)
    return png(fig)
