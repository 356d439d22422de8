"""The report as format-neutral blocks (title, bullet lines, table of strings): Markdown and
HTML only choose the syntax, so they can never disagree on a number. Benchmark sections are
rendered by their own target, whatever it is."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.report import plots
from benchmarks.report.model import ModelEntry, Parity, Pruning, Report, RunInfo, Training
from benchmarks.targets import get_target
from benchmarks.targets.sections import DASH, Block, LatencySection, fmt, pct

MODELS_TITLE = "Models"
PRUNING_TITLE = "Pruning (HomoDistil)"
PROBE_NOTE = "64 fixed dev sentences, both models in eval mode"
# Enough rows to see the learning curve's shape without burying the rest of the report.
MAX_HISTORY_ROWS = 20
PASS = "\u2713"
FAIL = "\u2717"
ARROW = "\u2192"


@dataclass
class Image:
    """A figure for the HTML beside a block: its alt text (the plot's title) and PNG bytes."""

    alt: str
    png: bytes


@dataclass
class Part:
    """A block and the figures drawn for it (HTML only)."""

    block: Block
    images: list[Image] = field(default_factory=list)


def _images(*figures: tuple[str, bytes | None]) -> list[Image]:
    return [Image(alt, png) for alt, png in figures if png is not None]


def _params_m(count: int | None) -> str:
    return DASH if count is None else f"{count / 1e6:.2f}"


def _parity_cells(parity: Parity | None) -> list[str]:
    if parity is None:
        return [DASH, DASH, DASH]
    diff = fmt(parity.max_abs_diff, ".1e")
    if parity.tolerance is not None:
        diff += f" (tol {parity.tolerance:.0e})"
    verdict = DASH if parity.passed is None else (PASS if parity.passed else FAIL)
    if parity.n is not None:
        verdict += f" (n={parity.n})"
    return [diff, pct(parity.argmax_agreement), verdict]


def _run_blocks(run: RunInfo | None) -> list[Block]:
    run = run or RunInfo()
    facts = [
        ("Teacher", run.teacher),
        ("Data", run.data),
        ("Created", run.created),
        ("Recipe hash", run.recipe_hash),
        ("Device", run.device),
    ]
    return [
        Block("Run", lines=[f"{name}: {value}" for name, value in facts if value]),
        Block("Notes", lines=list(run.notes)),
    ]


def _models_block(models: dict[str, ModelEntry], metric: str) -> Block:
    rows = [
        [
            str(model.label or key),
            str(model.format or DASH),
            _params_m(model.parameters),
            _params_m(model.non_embedding_parameters),
            fmt(model.size_mb, ".2f"),
            pct(model.dev_accuracy),
            *_parity_cells(model.parity),
        ]
        for key, model in models.items()
    ]
    headers = ["Model", "Format", "Params (M)", "Non-embedding (M)", "Size (MB)",
               f"Dev {metric}", "Parity max |\u0394|", "Argmax agreement", "Parity"]  # fmt: skip
    return Block(MODELS_TITLE, headers=headers, rows=rows)


def _figures_block(models: dict[str, ModelEntry]) -> list[Block]:
    """The task's other figures per model (entity F1's precision, recall and F1 per type),
    when the task has any."""
    scored = {key: m.dev_figures for key, m in models.items() if m.dev_figures}
    if not scored:
        return []
    types = sorted({kind for f in scored.values() for kind in f.get("f1_per_type", {})})
    rows = [
        [
            str(models[key].label or key),
            pct(figures.get("precision")),
            pct(figures.get("recall")),
            pct(figures.get("token_accuracy")),
            *(pct(figures.get("f1_per_type", {}).get(kind)) for kind in types),
        ]
        for key, figures in scored.items()
    ]
    headers = ["Model", "Precision", "Recall", "Token accuracy", *(f"F1 {kind}" for kind in types)]
    return [Block("Dev figures", headers=headers, rows=rows)]


def _speedup_column(section: LatencySection, fp32: str) -> tuple[str, dict[str, str]] | None:
    """One timed section's speed-ups over the fp32 ONNX file, at its most threads: the
    column's header and candidate label -> cell. None when it never compared with fp32."""
    compared = [s for s in section.speedups or [] if s.baseline == fp32 and s.candidate]
    if not compared:
        return None
    most = max(s.threads or 0 for s in compared)
    cells: dict[str, list[str]] = {}
    for s in compared:
        if (s.threads or 0) == most:
            cells.setdefault(str(s.candidate), []).append(f"b{s.batch} s{s.seq_len}: {s.cell()}")
    header = f"Speed-up vs fp32 ONNX ({section.target}, {most} threads)"
    return header, {label: "; ".join(texts) for label, texts in cells.items()}


def _tradeoff_block(report: Report) -> Block:
    """What each deployable file costs in accuracy against the fp32 ONNX student and what it
    buys in speed, side by side: one speed-up column per target that timed the file against
    fp32 ONNX in the same interleaved run."""
    fp32 = report.models.get("student_onnx") or ModelEntry()
    found = [_speedup_column(s, fp32.label) for s in report.timed() if fp32.label]
    columns = [column for column in found if column is not None]
    rows = []
    for key, model in report.models.items():
        # the student's own files only: the teacher's int8 file is another model
        if not key.startswith("student_") or key == "student_onnx":
            continue
        if not str(model.format or "").startswith("onnx"):
            continue
        label = model.label or key
        acc, base = model.dev_accuracy, fp32.dev_accuracy
        rows.append(
            [
                str(label),
                pct(acc),
                DASH if acc is None or base is None else f"{100 * (acc - base):+.2f}",
                fmt(model.size_mb, ".2f"),
                *(cells.get(str(label), DASH) for _header, cells in columns or [("", {})]),
            ]
        )
    speed = [header for header, _cells in columns] or ["Speed-up vs fp32 ONNX"]
    headers = ["File", f"Dev {report.metric}", "\u0394 vs fp32 ONNX (pts)", "Size (MB)", *speed]
    return Block("Export and quantization trade-off", headers=headers, rows=rows)


def _thin(indices: list[int], keep: int | None) -> list[int]:
    """Evenly spaced entries of a long history, always keeping the first, last and best."""
    if len(indices) <= MAX_HISTORY_ROWS:
        return indices
    step = (len(indices) - 1) / (MAX_HISTORY_ROWS - 1)
    chosen = {indices[round(i * step)] for i in range(MAX_HISTORY_ROWS)}
    if keep is not None:
        chosen.add(keep)
    return sorted(chosen)


def _training_block(training: Training | None, metric: str) -> Block:
    training = training or Training()
    lines = [
        f"{name}: {value}"
        for name, value in (
            ("Steps", training.steps),
            ("Train examples", training.train_examples),
            ("Best step", training.best_step),
            ("Training throughput (samples/s, optimizer steps only)", training.samples_per_s),
            (
                "Training minutes (optimizer steps only)",
                None if training.train_seconds is None else f"{training.train_seconds / 60:.1f}",
            ),
            ("Word embeddings", training.word_embeddings),
        )
        if value is not None
    ]
    passes = [(st.name, st.teacher_pass) for st in training.stages or [] if st.teacher_pass]
    if passes:
        lines.append(
            "Teacher's pass: "
            + "; ".join(f"{name}: {how}" if len(passes) > 1 else how for name, how in passes)
        )
    if training.best_dev_accuracy is not None:
        lines.append(
            f"Best dev {metric}: {pct(training.best_dev_accuracy)} (the kept checkpoint is "
            "chosen on this dev set, so it is slightly optimistic)"
        )
    stages = training.stages or []
    if len(stages) > 1:
        lines.append(
            "Stages: "
            + f" {ARROW} ".join(
                f"{st.name} ({st.steps} steps, {' + '.join(st.losses)}, kept {st.kept})"
                for st in stages
            )
        )
    aug = training.augmentation
    if aug:
        lines.append(
            f"Augmentation: {aug.original} examples + {aug.augmented} augmented "
            f"({', '.join(aug.methods)}; candidates from {aug.candidate_source}; "
            f"labelled by the teacher{'; from cache' if aug.cached else ''})"
        )
    history = training.history or []
    losses = [h.loss for h in history if h.loss is not None]
    if losses:
        lines.append(
            f"Loss: {losses[0]:.4f} {ARROW} {losses[-1]:.4f} over {len(losses)} logged steps"
        )
    evaluated = [i for i, h in enumerate(history) if h.dev_accuracy is not None]
    best = next((i for i in evaluated if history[i].step == training.best_step), None)
    rows = [
        [
            fmt(history[i].step, "") + (" (best)" if i == best else ""),
            fmt(history[i].loss, ".4f"),
            pct(history[i].dev_accuracy),
        ]
        for i in _thin(evaluated, best)
    ]
    headers = ["Step", "Loss", f"Dev {metric}"]
    return Block("Training", lines=lines, headers=headers, rows=rows)


def _pruning_block(pruning: Pruning) -> Block:
    arch = pruning.architecture
    schedule = pruning.schedule
    lines = [
        f"Started from {pruning.source or DASH}; criterion {pruning.criterion or DASH}; "
        f"cubic schedule from step {fmt(schedule and schedule.begin, '')} to "
        f"{fmt(schedule and schedule.end, '')}, every {fmt(schedule and schedule.every, '')} steps",
        f"Targets: {pruning.targets}",
        f"Result: hidden {fmt(arch and arch.hidden_size, '')}, "
        f"FFN {fmt(arch and arch.intermediate_size, '')}, "
        f"heads per layer {fmt(arch and arch.heads_per_layer, '')}",
    ]
    if pruning.shrink_max_abs_diff is not None:
        lines.append(
            "Cut model vs masked model: max |logit diff| "
            f"{pruning.shrink_max_abs_diff:.1e} (the removal is exact)"
        )
    probes = pruning.probes()
    if probes:
        gaps = [p.probe_kl or 0.0 for p in probes]
        lines.append(
            f"Prediction gap KL(teacher || student) at T = 1 on {PROBE_NOTE}: start "
            f"{gaps[0]:.4f}, max {max(gaps):.4f}, final {gaps[-1]:.4f}"
        )
    rows = [
        [fmt(probes[i].step, ""), pct(probes[i].remaining or 0.0), fmt(probes[i].probe_kl, ".4f")]
        for i in _thin(list(range(len(probes))), None)
    ]
    headers = ["Step", "Non-embedding weights kept", "Prediction KL"]
    return Block(PRUNING_TITLE, lines=lines, headers=headers, rows=rows)


def _figures(report: Report, block: Block) -> list[Image]:
    """The plots that belong beside a block: sizes by the models, the accuracy/latency
    trade-off and the distribution by every block with timings, the gap by the pruning."""
    if block.title == MODELS_TITLE:
        return _images((plots.SIZE_TITLE, plots.size_png(report.models)))
    if block.title == PRUNING_TITLE:
        return _images((plots.GAP_TITLE, plots.gap_png(report.pruning)))
    if block.timings:
        return _images(
            (
                plots.accuracy_title(report.metric),
                plots.accuracy_latency_png(report.models, block.timings, report.metric),
            ),
            (plots.SPREAD_TITLE, plots.spread_png(block.timings)),
        )
    return []


def report_blocks(report: Report) -> list[Block]:
    """The report in reading order: the run, its models, then every recorded target's
    blocks (each rendered by its target), pruning and training."""
    blocks = [
        *_run_blocks(report.run),
        _models_block(report.models, report.metric),
        *_figures_block(report.models),
        _tradeoff_block(report),
    ]
    for section in report.benchmarks.values():
        blocks += get_target(section.target).blocks(section)
    if report.pruning:
        blocks.append(_pruning_block(report.pruning))
    return [*blocks, _training_block(report.training, report.metric)]


def report_parts(report: Report) -> list[Part]:
    """The blocks with their figures, for the HTML (Markdown skips the cost of drawing)."""
    return [Part(block, _figures(report, block)) for block in report_blocks(report)]


def title(report: Report) -> str:
    name = report.run.name if report.run else None
    return f"Compression report: {name}" if name else "Compression report"
