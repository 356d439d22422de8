"""The model card (README.md) of a run's shipped folders, in the Hugging Face hub's format:
YAML metadata (task, data set, measured accuracy) over a Markdown body.

Every figure is read from the report model, never typed or measured again, so a card cannot
disagree with report.md; speed-ups are the harness's own paired ratios, not quotients of
p50s. The PyTorch folder and the ONNX package get the same card except for how to load
them, and a card names only the files that are on disk when it is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from benchmarks.report.model import ModelEntry, Report
from benchmarks.report.render import templates
from benchmarks.targets import TEACHER_INT8, get_target
from benchmarks.targets.sections import DASH, LatencySection, fmt, pct
from compressor.atomic import write_text
from compressor.layout import graphs_dir
from compressor.markdown import table
from compressor.tasks import DEFAULT_TASK, Task, task_of_config

Folder = Literal["model", "onnx"]
CARD = "README.md"
TAGS = ["distillation", "quantization", "onnx", "compressor"]
#: transformers.js `dtype` -> the graph it loads from a package's `onnx/` folder
JS_DTYPES = {
    "fp32": "model.onnx",
    "fp16": "model_fp16.onnx",
    "q8": "model_quantized.onnx",
    "int8": "model_int8.onnx",
    "uint8": "model_uint8.onnx",
    "q4": "model_q4.onnx",
    "q4f16": "model_q4f16.onnx",
    "bnb4": "model_bnb4.onnx",
}
GRAPH_SUFFIXES = (".onnx", ".ort")
DATA_SUFFIXES = (".tsv", ".csv", ".json", ".jsonl")
BASELINE = "baseline"
# Not a figure: the input the usage snippets classify.
EXAMPLE = "a gripping, beautifully acted film"
TAGGER_EXAMPLE = "Peter Blackburn met EU officials in Brussels."


@dataclass(frozen=True)
class Dataset:
    """The data set as the hub's metadata names it: `type` is a hub id only when the run read
    the data from the hub; a local folder or file is named by itself."""

    type: str
    name: str
    config: str | None
    on_hub: bool


@dataclass(frozen=True)
class Graph:
    """One graph file of the package: its path from the package root, the report's entry
    for it (None for a file the report does not know) and its transformers.js dtype."""

    path: str
    entry: ModelEntry | None
    js_dtype: str | None


def dataset_of(source: str | None) -> Dataset | None:
    """`hf:<name>[:<config>]` is a hub data set; anything else is a local folder or file,
    which no hub id can be claimed for."""
    if not source:
        return None
    if source.startswith("hf:"):
        name, _, config = source.removeprefix("hf:").partition(":")
        return Dataset(name, f"{name}/{config}" if config else name, config or None, True)
    path = Path(source)
    local = path.stem if path.suffix in DATA_SUFFIXES else path.name
    return Dataset(local, local, None, False)


def hub_model(teacher: str | None) -> str | None:
    """The teacher as `base_model` only when it is a hub id (the hub rejects a card whose
    base_model is no model id); a local folder is named in the body instead."""
    if not teacher or teacher.startswith((".", "/")) or teacher.count("/") > 1:
        return None
    return None if Path(teacher).exists() else teacher


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def stock_architecture(config: dict[str, Any]) -> bool:
    """Whether transformers itself knows the model type: optimum and transformers.js build
    only those, and the ONNX package of a custom kind keeps its model_type but not the code
    its auto_map names. (Imported here: transformers is slow to import for a report.)"""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return config.get("model_type") in CONFIG_MAPPING_NAMES


def _student_onnx(report: Report) -> dict[str, ModelEntry]:
    """The report's entries for the student's ONNX files, by file name: the teacher's own
    int8 file has the same name in another folder, so it is left out."""
    return {
        Path(entry.path).name: entry
        for key, entry in report.models.items()
        if key.startswith("student_") and entry.path and str(entry.format).startswith("onnx")
    }


def package_graphs(report: Report, package: Path) -> list[Graph]:
    """The graphs on disk in the package (under `onnx/` in the hub layout, beside the config
    in a flat export), with the report's entry for each."""
    hub = graphs_dir(package)
    folder = hub if hub.is_dir() else package
    entries = _student_onnx(report)
    return [
        Graph(
            path.relative_to(package).as_posix(),
            entries.get(path.name),
            next((d for d, name in JS_DTYPES.items() if name == path.name), None)
            if folder == hub
            else None,
        )
        for path in sorted(folder.iterdir())
        if path.suffix in GRAPH_SUFFIXES and path.is_file()
    ]


def _metrics(report: Report, folder: Folder, graphs: list[Graph]) -> list[dict[str, Any]]:
    if folder == "model":
        named = [("student PyTorch", report.models.get("student"))]
    else:
        named = [(g.path, g.entry) for g in graphs]
    kind = "accuracy" if report.metric == "accuracy" else "f1"  # the hub's metric ids
    return [
        {"type": kind, "value": entry.dev_accuracy, "name": f"Dev {report.metric} ({name})"}
        for name, entry in named
        if entry is not None and entry.dev_accuracy is not None
    ]


def front_matter(
    report: Report, folder: Folder, library: str, graphs: list[Graph], task: Task
) -> str:
    """The YAML block, dumped rather than formatted so any label or path stays valid YAML."""
    run = report.run
    meta: dict[str, Any] = {"library_name": library, "pipeline_tag": task.pipeline_tag}
    meta["tags"] = TAGS
    data = dataset_of(run.data if run else None)
    if data and data.on_hub:
        meta["datasets"] = [data.type]
    base = hub_model(run.teacher if run else None)
    if base:
        meta["base_model"] = base
    metrics = _metrics(report, folder, graphs)
    if data and metrics:
        dataset = {"name": data.name, "type": data.type, "split": "validation"}
        if data.config:
            dataset["config"] = data.config
        title = task.pipeline_tag.replace("-", " ").title()
        result = {"task": {"type": task.pipeline_tag, "name": title}}
        result |= {"dataset": dataset, "metrics": metrics}
        name = (run.name if run else None) or "student"
        meta["model-index"] = [{"name": name, "results": [result]}]
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)


def _setting(section: LatencySection) -> tuple[int | None, int | str | None, int] | None:
    """The one (batch, seq, threads) the card reads: batch 1, first length, most threads,
    the setting `compressor compare` reads too."""
    results = section.measured_results()
    ones = [r for r in results if r.batch == 1] or results
    if not ones:
        return None
    return ones[0].batch, ones[0].seq_len, max(r.threads or 0 for r in ones)


def _speedup(section: LatencySection, setting: tuple[Any, ...], baseline: str, label: str) -> str:
    if label == baseline:
        return BASELINE
    for s in section.speedups or []:
        if (s.baseline, s.candidate, s.batch, s.seq_len, s.threads or 0) == (
            baseline,
            label,
            *setting,
        ):
            return s.cell()
    return DASH


def _timed(report: Report) -> list[tuple[LatencySection, tuple[Any, ...]]]:
    """Sections measured by the harness, each with the setting it is read at; estimates and
    emulations are no latency a user will see."""
    found = [(s, _setting(s)) for s in report.timed() if s.mode == "measured"]
    return [(s, setting) for s, setting in found if setting is not None]


def figures_table(report: Report) -> str:
    """Accuracy, size and latency of every model of the run, the teacher's own int8 file
    included: what a user gets without compressing is the number to beat."""
    timed = _timed(report)
    teacher = report.models.get("teacher")
    t_acc = teacher.dev_accuracy if teacher else None
    headers = ["Model", "Format", "Size (MB)", f"Dev {report.metric}", "\u0394 vs teacher (pts)"]
    for section, _ in timed:
        where = f" ({section.target})" if len(timed) > 1 else ""
        headers += [f"p50 ms{where}", f"Speed-up vs teacher{where}",
                    f"Speed-up vs {TEACHER_INT8}{where}"]  # fmt: skip
    rows = []
    for key, entry in report.models.items():
        label = str(entry.label or key)
        acc = entry.dev_accuracy
        row = [label, entry.format, fmt(entry.size_mb, ".2f"), pct(acc)]
        delta = DASH if acc is None or t_acc is None else f"{100 * (acc - t_acc):+.2f}"
        row.append(BASELINE if key == "teacher" else delta)
        onnx = str(entry.format or "").startswith("onnx")
        for section, setting in timed:
            p50 = next(
                (r.p50_ms for r in section.measured_results()
                 if (r.label, r.batch, r.seq_len, r.threads or 0) == (label, *setting)),
                None,
            )  # fmt: skip
            same_engine = "teacher ONNX" if onnx else "teacher PyTorch"
            row += [fmt(p50, ".2f"), _speedup(section, setting, same_engine, label)]
            row.append(_speedup(section, setting, TEACHER_INT8, label) if onnx else DASH)
        rows.append(row)
    return table(headers, rows)


def timing_notes(report: Report) -> list[str]:
    """Where and how each latency column was measured, so a ratio is never read without it."""
    lines = []
    for section, (batch, seq_len, threads) in _timed(report):
        lengths = "the dev sentences' own lengths" if seq_len == "dev" else f"length {seq_len}"
        device = get_target(section.target).device(section) or section.target
        lines.append(f"{device}: batch {batch}, {lengths}, {threads} threads")
    return lines


def made_lines(report: Report) -> list[str]:
    """How the student was made, in the report's own figures."""
    lines = []
    run, training, pruning = report.run, report.training, report.pruning
    if training and training.steps is not None:
        line = f"Distilled for {training.steps} steps"
        if training.train_examples is not None:
            line += f" on {training.train_examples} training examples"
        stages = training.stages or []
        if stages:
            line += "; " + "; then ".join(
                f"{st.name}: {' + '.join(st.losses) or DASH} for {st.steps} steps, kept "
                f"{st.kept or DASH}"
                for st in stages
            )
        if training.best_step is not None:
            line += f"; kept checkpoint: step {training.best_step}"
        lines.append(line + f" (dev {report.metric} {pct(training.best_dev_accuracy)}).")
        aug = training.augmentation
        if aug:
            lines.append(
                f"Transfer set augmented: {aug.original} examples + {aug.augmented} generated "
                f"({', '.join(aug.methods)}), labelled by the teacher."
            )
    if pruning:
        arch = pruning.architecture
        lines.append(
            f"Pruned (HomoDistil) from {pruning.source or DASH} by {pruning.criterion or DASH} "
            f"importance to hidden {fmt(arch and arch.hidden_size, '')}, FFN "
            f"{fmt(arch and arch.intermediate_size, '')}, heads per layer "
            f"{fmt(arch and arch.heads_per_layer, '')}."
        )
    for entry in _student_onnx(report).values():
        parity = entry.parity
        line = f"Exported: {entry.label} ({entry.format}, {Path(str(entry.path)).name})"
        if parity and parity.argmax_agreement is not None:
            line += (
                f"; agrees with its source on {pct(parity.argmax_agreement)} of {parity.n} dev "
                f"sentences, max |logit difference| {fmt(parity.max_abs_diff, '.1e')}"
            )
        lines.append(line + ".")
    return lines + (run.notes if run else [])


def _loading(report: Report, folder: Path, kind: Folder, custom: bool) -> dict[str, Any]:
    """What the usage section needs: the file to load and, for a package, every graph."""
    graphs = package_graphs(report, folder) if kind == "onnx" else []
    onnx_graphs = [g for g in graphs if g.path.endswith(".onnx")]
    quantized = [g for g in onnx_graphs if g.entry and str(g.entry.format).startswith("onnx-")]
    # end-to-end files (`exporters.e2e`) take strings: only their own snippet loads them
    chosen = (quantized or onnx_graphs or [None])[0]
    js = [g for g in graphs if g.js_dtype] if not custom else []
    js_chosen = next((g for g in js if g is chosen), js[0] if js else None)
    e2e = [g for g in onnx_graphs if g.path.endswith("_e2e.onnx")]
    return {
        "e2e": e2e[-1] if e2e else None,
        "hub_layout": graphs_dir(folder).is_dir(),
        "graphs": graphs,
        "chosen": chosen,
        "subfolder": str(Path(chosen.path).parent) if chosen else ".",
        "js": js,
        "js_chosen": js_chosen,
        "js_root": folder.parent.as_posix(),
        "js_name": folder.name,
    }


def model_card(report: Report, folder: Path, kind: Folder, recipe_yaml: str) -> str:
    """The card of `folder`: the PyTorch student (`kind` "model") or the ONNX package."""
    folder = Path(folder)
    config = _config(folder)
    custom = not stock_architecture(config)
    loading = _loading(report, folder, kind, custom)
    task = task_of_config(config)
    tagger = task.name != DEFAULT_TASK
    # the hub files a package under the library that loads it as it is
    library = "transformers" if kind == "model" else "transformers.js" if loading["js"] else "onnx"
    run = report.run
    data = dataset_of(run.data if run else None)
    student = report.models.get("student")
    return (
        templates(autoescape=False)
        .get_template("model_card.md.j2")
        .render(
            meta=front_matter(report, kind, library, loading["graphs"], task),
            task=task,
            metric=report.metric,
            tagger=tagger,
            name=(run.name if run else None) or "student",
            kind=kind,
            path=folder.as_posix(),
            teacher=(run.teacher if run else None) or DASH,
            data=data.name if data else DASH,
            model_type=config.get("model_type") or DASH,
            custom=custom,
            remote_code=bool(config.get("auto_map")),
            parameters=fmt(student and student.parameters, ","),
            made=made_lines(report),
            figures=figures_table(report),
            teacher_int8=TEACHER_INT8,
            timing=timing_notes(report),
            recipe=recipe_yaml.rstrip("\n"),
            example=TAGGER_EXAMPLE if tagger else EXAMPLE,
            **loading,
        )
    )


def write_model_cards(
    report: Report, recipe_yaml: str, *, model_dir: Path | None, package: Path | None
) -> dict[str, Path]:
    """README.md into the PyTorch folder and the ONNX package, each atomically; a folder the
    run did not make (no export) gets none."""
    folders: tuple[tuple[Folder, Path | None], ...] = (("model", model_dir), ("onnx", package))
    written = {}
    for kind, folder in folders:
        if folder is not None and Path(folder).is_dir():
            path = Path(folder) / CARD
            write_text(path, model_card(report, Path(folder), kind, recipe_yaml))
            written[f"card_{kind}"] = path
    return written
