"""A run's report dict rendered as report.json, report.md and a self-contained report.html.

Both text formats are rendered from one list of sections (title, bullet lines, table), so the
Markdown and the HTML can never disagree on a number. Every section and field is optional
(a report is written after each stage, before later stages have produced anything): a missing
value shows as "—" instead of failing the whole report.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from compressor.atomic import write_json, write_text

DASH = "—"
# Spelled as escapes: ruff flags the literal characters as look-alikes of "-" and "x".
EN_DASH = "\u2013"
TIMES = "\u00d7"
PLOT_TITLE = "dev accuracy vs p50 latency (batch 1)"
LATENCY_TITLE = "Latency (CPU, measured)"
CUDA_TITLE = "Latency (CUDA, measured)"
ARM_TITLE = "ARM (estimated)"
SIZE_TITLE = "size on disk"
SPREAD_TITLE = "latency distribution (batch 1)"
GAP_TITLE = "prediction gap while pruning"
PRUNING_TITLE = "Pruning (HomoDistil)"
PROBE_NOTE = "64 fixed dev sentences, both models in eval mode"
# Enough rows to see the learning curve's shape without burying the rest of the report.
MAX_HISTORY_ROWS = 20
FORMAT_MARKERS = {"pytorch": "o", "onnx": "s", "onnx-int8": "^"}


@dataclass
class Section:
    """Format-neutral content: the Markdown and HTML renderers only decide the syntax."""

    title: str
    lines: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def _fmt(value: Any, spec: str) -> str:
    return DASH if value is None else format(value, spec)


def _pct(fraction: float | None) -> str:
    return DASH if fraction is None else f"{fraction * 100:.2f}%"


def _params_m(count: int | None) -> str:
    return DASH if count is None else f"{count / 1e6:.2f}"


def _parity_cells(parity: Mapping[str, Any] | None) -> list[str]:
    if not parity:
        return [DASH, DASH, DASH]
    diff = _fmt(parity.get("max_abs_diff"), ".1e")
    if parity.get("tolerance") is not None:
        diff += f" (tol {parity['tolerance']:.0e})"
    passed = parity.get("passed")
    verdict = DASH if passed is None else ("✓" if passed else "✗")
    if parity.get("n") is not None:
        verdict += f" (n={parity['n']})"
    return [diff, _pct(parity.get("argmax_agreement")), verdict]


def _run_sections(report: Mapping[str, Any]) -> list[Section]:
    run = report.get("run") or {}
    names = {
        "teacher": "Teacher",
        "data": "Data",
        "created": "Created",
        "recipe_hash": "Recipe hash",
        "device": "Device",
    }
    info = [f"{name}: {run[key]}" for key, name in names.items() if run.get(key)]
    return [Section("Run", lines=info), Section("Notes", lines=list(run.get("notes") or []))]


def _models_section(report: Mapping[str, Any]) -> Section:
    rows = []
    for key, model in (report.get("models") or {}).items():
        model = model or {}
        rows.append(
            [
                str(model.get("label") or key),
                str(model.get("format") or DASH),
                _params_m(model.get("parameters")),
                _params_m(model.get("non_embedding_parameters")),
                _fmt(model.get("size_mb"), ".2f"),
                _pct(model.get("dev_accuracy")),
                *_parity_cells(model.get("parity")),
            ]
        )
    headers = [
        "Model",
        "Format",
        "Params (M)",
        "Non-embedding (M)",
        "Size (MB)",
        "Dev accuracy",
        "Parity max |Δ|",
        "Argmax agreement",
        "Parity",
    ]
    return Section("Models", headers=headers, rows=rows)


def _tradeoff_section(report: Mapping[str, Any]) -> Section:
    """What each deployable file costs in accuracy against the fp32 ONNX student and what it
    buys in speed, side by side (speed-ups from the same interleaved run)."""
    models = report.get("models") or {}
    fp32 = models.get("student_onnx") or {}
    speedups = (report.get("latency") or {}).get("speedups") or []
    most = max((s.get("threads") or 0 for s in speedups), default=0)
    rows = []
    for key, model in models.items():
        if key == "student_onnx" or not str(model.get("format") or "").startswith("onnx"):
            continue
        label = model.get("label") or key
        acc, base = model.get("dev_accuracy"), fp32.get("dev_accuracy")
        cells = {
            (s["batch"], s["seq_len"]): _speedup_cell(s)
            for s in speedups
            if s.get("baseline") == fp32.get("label")
            and s.get("candidate") == label
            and (s.get("threads") or 0) == most
        }
        rows.append(
            [
                str(label),
                _pct(acc),
                DASH if acc is None or base is None else f"{100 * (acc - base):+.2f}",
                _fmt(model.get("size_mb"), ".2f"),
                "; ".join(f"b{b} s{q}: {c}" for (b, q), c in cells.items()) or DASH,
            ]
        )
    headers = [
        "File",
        "Dev accuracy",
        "Δ vs fp32 ONNX (pts)",
        "Size (MB)",
        f"Speed-up vs fp32 ONNX ({most} threads)",
    ]
    return Section("Export and quantization trade-off", headers=headers, rows=rows)


def _latency_lines(latency: Mapping[str, Any]) -> list[str]:
    lines = []
    if latency.get("device_name"):
        lines.append(
            f"Device: {latency['device_name']}"
            + (f", driver {latency['driver']}" if latency.get("driver") else "")
        )
    if latency.get("threads") is not None:
        lines.append(
            f"Threads: {latency['threads']}; each model timed in its own process, "
            "percentiles over all samples of all rounds."
        )
    if any(r.get("seq_len") == "dev" for r in latency.get("results") or []):
        lines.append(
            "Seq 'dev': the dev sentences' own token counts, consecutive sentences batched and "
            "padded to the longest of their batch (real traffic)."
        )
    return lines


def _latency_section(latency: Mapping[str, Any], title: str = LATENCY_TITLE) -> Section:
    lines = _latency_lines(latency)
    if latency.get("mode") == "skipped":
        lines.append(f"Skipped: {latency.get('reason', DASH)}")
    rows = [
        [
            str(r.get("label", DASH)),
            str(r.get("engine", DASH)),
            _fmt(r.get("threads"), ""),
            _fmt(r.get("batch"), ""),
            _fmt(r.get("seq_len"), ""),
            _fmt(r.get("p50_ms"), ".2f"),
            _fmt(r.get("p90_ms"), ".2f"),
            _fmt(r.get("p99_ms"), ".2f"),
            _fmt(r.get("throughput_per_s"), ".1f"),
            _fmt(r.get("peak_rss_mb"), ".0f"),
        ]
        for r in latency.get("results") or []
    ]
    headers = [
        "Model",
        "Engine",
        "Threads",
        "Batch",
        "Seq",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "Throughput /s",
        "Peak RSS MB",
    ]
    return Section(title, lines=lines, headers=headers, rows=rows)


def _speedup_cell(s: Mapping[str, Any]) -> str:
    if s.get("ratio") is None:
        return DASH
    spread = ""
    if s.get("ratio_min") is not None and s.get("ratio_max") is not None:
        spread = f"  ({s['ratio_min']:.2f}{EN_DASH}{s['ratio_max']:.2f})"
    return f"{s['ratio']:.2f}{TIMES}{spread}"


def _speedups_section(latency: Mapping[str, Any], title: str = "Speed-ups") -> Section:
    rows = [
        [
            str(s.get("baseline", DASH)),
            str(s.get("candidate", DASH)),
            _fmt(s.get("threads"), ""),
            _fmt(s.get("batch"), ""),
            _fmt(s.get("seq_len"), ""),
            _speedup_cell(s),
        ]
        for s in latency.get("speedups") or []
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
    return Section(title, lines=lines, headers=headers, rows=rows)


def _emulated_section(arm: Mapping[str, Any]) -> Section:
    """The aarch64 build's answers against x86's: a functional check, so the verdict leads
    and the emulated times are labelled as such."""
    root = arm.get("root") or {}
    lines = [
        f"Functional check under qemu-user: {'PASSED' if arm.get('passed') else 'FAILED'}. "
        f"{arm.get('note', '')}",
        f"qemu {root.get('qemu', DASH)}, onnxruntime {root.get('onnxruntime', DASH)} (aarch64), "
        f"inputs {arm.get('inputs', {})}",
    ]
    rows = [
        [
            str(r.get("label", DASH)),
            str(r.get("format", DASH)),
            str(r.get("cpu", DASH)),
            _fmt(r.get("max_abs_diff"), ".1e"),
            _pct(r.get("argmax_agree")),
            "✓" if r.get("passed") else f"✗ {r.get('error') or ''}".strip(),
            _fmt(r.get("p50_ms_emulated"), ".1f"),
            DASH
            if r.get("emulation_slowdown") is None
            else f"{r['emulation_slowdown']:.0f}{TIMES}",
        ]
        for r in arm.get("results") or []
    ]
    headers = [
        "Model",
        "File",
        "Emulated CPU",
        "Max |Δ| vs x86",
        "Argmax agreement",
        "Passed",
        "p50 ms (EMULATED)",
        "Slower than host",
    ]
    return Section("ARM (emulated, functional check)", lines=lines, headers=headers, rows=rows)


def _arm_sections(arm: Mapping[str, Any]) -> list[Section]:
    """Estimates with their method, sources, assumptions and the error seen on this host."""
    if arm.get("mode") == "emulated":
        return [_emulated_section(arm)]
    if arm.get("mode") != "estimated":
        latency = {**arm, "results": arm.get("results") or []}
        section = _latency_section(latency, f"ARM ({arm.get('mode', DASH)})")
        device = arm.get("device") or {}
        if arm.get("remote"):
            section.lines.insert(
                0,
                f"Measured on the device {arm['remote']} over SSH ({device.get('machine')}, "
                f"{device.get('cores')} cores) by its own ONNX Runtime "
                f"{device.get('onnxruntime')}, Python {device.get('python')}.",
            )
        if arm.get("note"):
            section.lines.insert(0, f"WARNING: {arm['note']}.")
        return [section, _speedups_section(latency, f"ARM speed-ups ({arm.get('mode', DASH)})")]
    lines = [f"Every figure here is an ESTIMATE, not a measurement. Method: {arm.get('method')}."]
    for row in arm.get("calibration") or []:
        lines.append(
            f"Method check on this host ({row['host_sgemm_gflops']:.0f} GFLOP/s SGEMM, "
            f"{row['host_copy_gbs']:.0f} GB/s copy, measured): {row['label']} at batch "
            f"{row['batch']}, seq {row['seq_len']}, 1 thread: "
            f"estimate {row['estimate_ms']:.2f} ms, "
            f"measured p50 {row['measured_p50_ms']:.2f} ms "
            f"({row['measured_over_estimate']:.2f}{TIMES} the estimate)"
        )
    for key, profile in (arm.get("profiles") or {}).items():
        lines.append(
            f"{key}: {profile['name']}; sources: {'; '.join(profile['sources'])}; "
            f"assumed: {'; '.join(profile['assumed'])}"
        )
    teacher = {
        (e["profile"], e["batch"], e["seq_len"], e["threads"]): e["estimate_ms"]
        for e in arm.get("estimates") or []
        if e["label"].startswith("teacher")
    }
    rows = []
    for e in arm.get("estimates") or []:
        base = teacher.get((e["profile"], e["batch"], e["seq_len"], e["threads"]))
        bound = "compute" if e["compute_bound_ms"] >= e["memory_bound_ms"] else "memory"
        rows.append(
            [
                e["profile"],
                e["label"],
                _fmt(e["threads"], ""),
                _fmt(e["batch"], ""),
                _fmt(e["seq_len"], ""),
                f"{e['estimate_ms']:.2f}",
                bound,
                DASH if base is None else f"{base / e['estimate_ms']:.2f}{TIMES}",
            ]
        )
    headers = [
        "Profile",
        "Model",
        "Threads",
        "Batch",
        "Seq",
        "Estimated ms",
        "Mostly",
        "vs teacher",
    ]
    return [Section(ARM_TITLE, lines=lines, headers=headers, rows=rows)]


def _thin(indices: list[int], keep: int | None) -> list[int]:
    """Evenly spaced entries of a long history, always keeping the first, last and best."""
    if len(indices) <= MAX_HISTORY_ROWS:
        return indices
    step = (len(indices) - 1) / (MAX_HISTORY_ROWS - 1)
    chosen = {indices[round(i * step)] for i in range(MAX_HISTORY_ROWS)}
    if keep is not None:
        chosen.add(keep)
    return sorted(chosen)


def _training_section(training: Mapping[str, Any]) -> Section:
    lines = []
    for key, name in (
        ("steps", "Steps"),
        ("train_examples", "Train examples"),
        ("best_step", "Best step"),
        ("samples_per_s", "Training throughput (samples/s, optimizer steps only)"),
    ):
        if training.get(key) is not None:
            lines.append(f"{name}: {training[key]}")
    if training.get("best_dev_accuracy") is not None:
        lines.append(
            f"Best dev accuracy: {_pct(training['best_dev_accuracy'])} (the kept checkpoint is "
            "chosen on this dev set, so it is slightly optimistic)"
        )
    stages: Sequence[Mapping[str, Any]] = training.get("stages") or []
    if len(stages) > 1:
        lines.append(
            "Stages: "
            + " → ".join(
                f"{st['name']} ({st['steps']} steps, {' + '.join(st['losses'])}, kept {st['kept']})"
                for st in stages
            )
        )
    aug = training.get("augmentation")
    if aug:
        lines.append(
            f"Augmentation: {aug['original']} examples + {aug['augmented']} augmented "
            f"({', '.join(aug['methods'])}; candidates from {aug['candidate_source']}; "
            f"labelled by the teacher{'; from cache' if aug.get('cached') else ''})"
        )
    history: Sequence[Mapping[str, Any]] = training.get("history") or []
    losses = [h["loss"] for h in history if h.get("loss") is not None]
    if losses:
        lines.append(f"Loss: {losses[0]:.4f} → {losses[-1]:.4f} over {len(losses)} logged steps")
    best_step = training.get("best_step")
    evaluated = [i for i, h in enumerate(history) if h.get("dev_accuracy") is not None]
    best_idx = next((i for i in evaluated if history[i].get("step") == best_step), None)
    rows = [
        [
            _fmt(history[i].get("step"), "") + (" (best)" if i == best_idx else ""),
            _fmt(history[i].get("loss"), ".4f"),
            _pct(history[i].get("dev_accuracy")),
        ]
        for i in _thin(evaluated, best_idx)
    ]
    return Section("Training", lines=lines, headers=["Step", "Loss", "Dev accuracy"], rows=rows)


def _pruning_section(pruning: Mapping[str, Any]) -> Section:
    if not pruning:
        return Section(PRUNING_TITLE)
    lines = []
    arch = pruning.get("architecture") or {}
    schedule = pruning.get("schedule") or {}
    lines.append(
        f"Started from {pruning.get('source', DASH)}; criterion {pruning.get('criterion', DASH)}; "
        f"cubic schedule from step {schedule.get('begin', DASH)} to {schedule.get('end', DASH)}, "
        f"every {schedule.get('every', DASH)} steps"
    )
    lines.append(f"Targets: {pruning.get('targets')}")
    lines.append(
        f"Result: hidden {arch.get('hidden_size', DASH)}, "
        f"FFN {arch.get('intermediate_size', DASH)}, "
        f"heads per layer {arch.get('heads_per_layer', DASH)}"
    )
    if pruning.get("shrink_max_abs_diff") is not None:
        lines.append(
            "Cut model vs masked model: max |logit diff| "
            f"{pruning['shrink_max_abs_diff']:.1e} (the removal is exact)"
        )
    probes = _probes(pruning)
    if probes:
        gaps = [kl for _step, kl, _kept in probes]
        lines.append(
            f"Prediction gap KL(teacher || student) at T = 1 on {PROBE_NOTE}: start "
            f"{gaps[0]:.4f}, max {max(gaps):.4f}, final {gaps[-1]:.4f}"
        )
    rows = [
        [_fmt(probes[i][0], ""), _pct(probes[i][2]), _fmt(probes[i][1], ".4f")]
        for i in _thin(list(range(len(probes))), None)
    ]
    return Section(
        PRUNING_TITLE,
        lines=lines,
        headers=["Step", "Non-embedding weights kept", "Prediction KL"],
        rows=rows,
    )


def _probes(pruning: Mapping[str, Any]) -> list[tuple[int, float, float]]:
    """(step, probe KL, fraction kept) of every probed step of the pruning trace."""
    return [
        (t["step"], t["probe_kl"], t.get("remaining") or 0.0)
        for t in pruning.get("trace") or []
        if t.get("probe_kl") is not None
    ]


def render_gap_png(report: Mapping[str, Any]) -> bytes | None:
    """The prediction gap and the model's size over the pruning run, as PNG bytes."""
    points = _probes(report.get("pruning") or {})
    if not points:
        return None
    fig = Figure(figsize=(6.4, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([p[0] for p in points], [p[1] for p in points], color="tab:red")
    ax.set_xlabel("step")
    ax.set_ylabel("KL(teacher || student), dev probe", color="tab:red")
    size = ax.twinx()
    size.plot([p[0] for p in points], [100 * p[2] for p in points], color="tab:blue")
    size.set_ylabel("non-embedding weights kept, %", color="tab:blue")
    size.set_ylim(0, 105)
    ax.set_title(GAP_TITLE)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _sections(report: Mapping[str, Any]) -> list[Section]:
    latency = report.get("latency") or {}
    sections = [
        *_run_sections(report),
        _models_section(report),
        _tradeoff_section(report),
        _latency_section(latency),
        _speedups_section(latency),
    ]
    cuda = report.get("latency_cuda")
    if cuda:
        sections += [
            _latency_section(cuda, CUDA_TITLE),
            _speedups_section(cuda, "CUDA speed-ups (measured)"),
        ]
    for arm in report.get("arm") or []:
        sections += _arm_sections(arm)
    if report.get("pruning"):
        sections.append(_pruning_section(report["pruning"]))
    return [*sections, _training_section(report.get("training") or {})]


def _title(report: Mapping[str, Any]) -> str:
    name = (report.get("run") or {}).get("name")
    return f"Compression report: {name}" if name else "Compression report"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown; empty sections show "—"."""
    out = [f"# {_title(report)}", ""]
    for section in _sections(report):
        out += [f"## {section.title}", ""]
        if not section.lines and not section.rows:
            out += [DASH, ""]
            continue
        if section.lines:
            out += [f"- {line}" for line in section.lines] + [""]
        if section.rows:
            out.append("| " + " | ".join(_md_cell(h) for h in section.headers) + " |")
            out.append("|" + "|".join("---" for _ in section.headers) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.rows]
            out.append("")
    return "\n".join(out)


def _batch1_points(
    report: Mapping[str, Any],
) -> tuple[list[tuple[str, str, float, float]], int | None]:
    """(label, format, p50 ms, accuracy %) of every model with both numbers, and the seq_len.

    One seq_len only (the first timed at batch 1), so every point measures the same work.
    Results are matched to models by label or by model key, whichever the caller used.
    """
    results = [r for r in (report.get("latency") or {}).get("results") or [] if r.get("batch") == 1]
    if not results:
        return [], None
    most = max(r.get("threads") or 0 for r in results)
    results = [r for r in results if (r.get("threads") or 0) == most]
    seq_len = results[0].get("seq_len")
    p50_by_label = {r.get("label"): r.get("p50_ms") for r in results if r.get("seq_len") == seq_len}
    points = []
    for key, model in (report.get("models") or {}).items():
        model = model or {}
        label = model.get("label") or key
        p50 = p50_by_label.get(label, p50_by_label.get(key))
        accuracy = model.get("dev_accuracy")
        if p50 is not None and accuracy is not None:
            points.append((label, str(model.get("format")), float(p50), accuracy * 100))
    return points, seq_len


def render_plot_png(report: Mapping[str, Any]) -> bytes | None:
    """The accuracy/latency trade-off as PNG bytes, or None when no model has both numbers.

    Drawn on an explicit Agg canvas instead of pyplot, so no global backend or figure state
    leaks into (or from) the process that writes the report.
    """
    points, seq_len = _batch1_points(report)
    if not points:
        return None
    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, fmt, p50, accuracy) in enumerate(points):
        ax.scatter([p50], [accuracy], marker=FORMAT_MARKERS.get(fmt, "D"), s=60)
        # students often tie on accuracy (ONNX fp32 = PyTorch): alternate labels above/below
        offset = (6, 6) if i % 2 == 0 else (6, -14)
        ax.annotate(label, (p50, accuracy), textcoords="offset points", xytext=offset)
    front = pareto_front([(p50, accuracy) for _l, _f, p50, accuracy in points])
    ax.step(
        [p[0] for p in front],
        [p[1] for p in front],
        where="post",
        color="tab:gray",
        linestyle="--",
        label="Pareto front",
    )
    ax.legend(loc="lower right")
    ax.set_title(PLOT_TITLE)
    ax.set_xlabel(f"p50 latency, ms (batch 1, seq {seq_len})")
    ax.set_ylabel("dev accuracy, %")
    ax.grid(True, alpha=0.3)
    ax.margins(0.2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(latency, accuracy) points no other point beats on both, fastest first: the models
    worth shipping at some latency budget."""
    front: list[tuple[float, float]] = []
    for latency, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((latency, accuracy))
    return front


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_spread_png(report: Mapping[str, Any]) -> bytes | None:
    """Box plots of every engine's samples at batch 1 (the most threads, the first length):
    a median can hide a long tail or a bimodal engine."""
    results = [
        r
        for r in (report.get("latency") or {}).get("results") or []
        if r.get("batch") == 1 and r.get("samples_ms")
    ]
    if not results:
        return None
    most = max(r.get("threads") or 0 for r in results)
    results = [r for r in results if (r.get("threads") or 0) == most]
    seq_len = results[0].get("seq_len")
    results = [r for r in results if r.get("seq_len") == seq_len]
    fig = Figure(figsize=(6.4, 0.5 * len(results) + 1.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.boxplot([r["samples_ms"] for r in results], vert=False, whis=(1, 99), showfliers=False)
    ax.set_yticks(range(1, len(results) + 1), [r["label"] for r in results])
    ax.set_xlabel(f"latency, ms (batch 1, seq {seq_len}, {most} threads; whiskers p1{EN_DASH}p99)")
    ax.set_title(SPREAD_TITLE)
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def render_size_png(report: Mapping[str, Any]) -> bytes | None:
    """Size on disk of every model file, so what quantization buys is visible at once."""
    sizes = [
        (m.get("label") or key, m["size_mb"])
        for key, m in (report.get("models") or {}).items()
        if m and m.get("size_mb")
    ]
    if not sizes:
        return None
    fig = Figure(figsize=(6.4, 0.45 * len(sizes) + 1.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh([label for label, _ in sizes], [mb for _, mb in sizes], color="tab:blue")
    for i, (_label, mb) in enumerate(sizes):
        ax.annotate(f"{mb:.1f} MB", (mb, i), textcoords="offset points", xytext=(4, -4))
    ax.invert_yaxis()
    ax.set_xlabel("MB")
    ax.set_title(SIZE_TITLE)
    ax.margins(x=0.2)
    return _png(fig)


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.empty { color: #888; }
img { max-width: 100%; }
"""


def render_html(report: Mapping[str, Any]) -> str:
    """One file with inline CSS and the plot as a data URI, so it can be mailed or archived."""
    esc = html.escape
    title = esc(_title(report))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    plots = {
        "Models": [(SIZE_TITLE, render_size_png(report))],
        LATENCY_TITLE: [
            (PLOT_TITLE, render_plot_png(report)),
            (SPREAD_TITLE, render_spread_png(report)),
        ],
        PRUNING_TITLE: [(GAP_TITLE, render_gap_png(report))],
    }
    for section in _sections(report):
        out.append(f"<h2>{esc(section.title)}</h2>")
        for alt, png in plots.get(section.title, []):
            if png is not None:
                data = base64.b64encode(png).decode("ascii")
                out.append(f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">')
        if not section.lines and not section.rows:
            out.append(f'<p class="empty">{DASH}</p>')
            continue
        if section.lines:
            items = "".join(f"<li>{esc(line)}</li>" for line in section.lines)
            out.append(f"<ul>{items}</ul>")
        if section.rows:
            head = "".join(f"<th>{esc(h)}</th>" for h in section.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                for row in section.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(run_dir: Path, report: Mapping[str, Any]) -> dict[str, Path]:
    """Write report.json, report.md and report.html into `run_dir`, each atomically."""
    run_dir = Path(run_dir)
    paths = {
        "json": run_dir / "report.json",
        "md": run_dir / "report.md",
        "html": run_dir / "report.html",
    }
    write_json(paths["json"], report)
    write_text(paths["md"], render_markdown(report))
    write_text(paths["html"], render_html(report))
    return paths
