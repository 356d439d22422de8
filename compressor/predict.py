"""Labels and probabilities from a shipped file (entities, for a token classifier): the
Python API behind `compressor predict`.

Logits come from `compressor.inference.predict_logits`, the path evaluation scores files
with, in the same batches (sentences sorted by length, `batch_size` a batch): a dynamic-int8
file picks its activation scales per batch, so only the same batches give the labels whose
accuracy the report states.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor import atomic
from compressor.errors import UserError
from compressor.layout import graphs_dir, package_root
from compressor.runfolder import STATE, RunFolder
from compressor.tasks import DEFAULT_TASK, task_of_config
from compressor.tasks.token import Entity, entities

#: what `--artifact` picks in a run or package
ARTIFACTS = ("int8", "fp32", "e2e")
FP32_NAMES = ("model.onnx",)
#: a package's quantized files, in order of preference (dynamic int8 is `compress`'s default)
INT8_NAMES = ("model_int8.onnx", "model_static_int8.onnx")
#: the tokenizer's truncation when no run recipe says otherwise (the recipe's default)
DEFAULT_MAX_LENGTH = 128
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Prediction:
    """One sentence's label (by name), its probability, and every label's probability."""

    label: str
    score: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Choice:
    """The file a run, package or path resolves to, and why that one (for the user)."""

    path: Path
    artifact: str
    max_length: int
    why: str


def e2e_file(graph: Path) -> Path | None:
    """The end-to-end file (tokenizer inside the graph) made from `graph`, when shipped."""
    from exporters.e2e import e2e_path

    candidate = e2e_path(graph)
    return candidate if candidate.is_file() else None


def _first(package: Path, names: Sequence[str]) -> Path | None:
    """The first of `names` in the package's graphs folder, or beside its config (a flat
    export from before the hub layout)."""
    for name in names:
        for folder in (graphs_dir(package), package):
            if (folder / name).is_file():
                return folder / name
    return None


def _recorded(path: str | None, package: Path) -> Path | None:
    """A file `state.json` names, found by its name in the run's package when the run folder
    was moved or recorded with a relative path."""
    if not path:
        return None
    return Path(path) if Path(path).is_file() else _first(package, [Path(path).name])


def _run_files(folder: Path) -> tuple[dict[str, Path | None], int]:
    run = RunFolder.open(folder)
    if not run.done("export"):
        raise UserError(
            f"{folder} has no ONNX files: its export stage has not run — compress it without "
            f"--skip-export, or make a package with `compressor export {folder} --out DIR`"
        )
    package = folder / "onnx"
    files = {
        "fp32": _recorded(run.result("export").get("path"), package),
        "int8": _recorded(run.result("quantize").get("path"), package),
    }
    return files, run.recipe().data.max_length


def _max_length_near(package: Path) -> int:
    """The run's truncation when the package is a run's `onnx/` folder, else the default."""
    run = package.parent
    if package.name == "onnx" and (run / STATE).is_file():
        return RunFolder.open(run).recipe().data.max_length
    return DEFAULT_MAX_LENGTH


def _single_file(path: Path, artifact: str | None) -> Choice:
    if path.suffix not in (".onnx", ".ort"):
        raise UserError(
            f"{path} is not an .onnx or .ort file — pass a compress run folder, an ONNX "
            "package folder or a model file"
        )
    if artifact is not None:
        raise UserError(
            f"--artifact picks one of a run's files, and {path} is one file — drop --artifact "
            "or pass the run folder"
        )
    kind = "e2e" if path.stem.endswith("_e2e") else "file"
    return Choice(path, kind, _max_length_near(package_root(path)), "the file given")


def _pick(
    source: Path, files: dict[str, Path | None], artifact: str | None, max_length: int
) -> Choice:
    if not any(files.values()):
        raise UserError(
            f"{source} has no ONNX files (no onnx/model.onnx) — export it first with "
            "`compressor export`"
        )
    if artifact is None:
        if files["int8"] is not None:
            return Choice(files["int8"], "int8", max_length, "the default: its quantized file")
        return Choice(files["fp32"], "fp32", max_length, "the default: it has no int8 file")
    if artifact == "e2e":
        made = [e2e_file(graph) for graph in (files["int8"], files["fp32"]) if graph]
        found = next((path for path in made if path), None)
        if found is None:
            raise UserError(
                f"{source} has no end-to-end file (model_e2e.onnx / model_int8_e2e.onnx) — "
                "pass --artifact int8 or fp32, or compress with export.e2e on"
            )
        return Choice(found, "e2e", max_length, "asked for")
    path = files[artifact]
    if path is None:
        raise UserError(
            f"{source} has no {artifact} file (not made, failed its gate, or removed) — pass "
            f"--artifact {'fp32' if artifact == 'int8' else 'int8'}"
        )
    return Choice(path, artifact, max_length, "asked for")


def choose_file(source: Path, artifact: str | None = None) -> Choice:
    """The file to predict with: `source` is a compress run folder, an ONNX package folder
    (config.json and onnx/) or one .onnx file; `artifact` is one of ARTIFACTS, None for the
    int8 file when there is one (what `compress` ships to serve), else fp32."""
    source = Path(source)
    if artifact is not None and artifact not in ARTIFACTS:
        raise UserError(f"unknown artifact {artifact!r} — pass one of {', '.join(ARTIFACTS)}")
    if source.is_file():
        return _single_file(source, artifact)
    if (source / STATE).is_file():
        files, max_length = _run_files(source)
    elif (source / "config.json").is_file():
        files = {"fp32": _first(source, FP32_NAMES), "int8": _first(source, INT8_NAMES)}
        max_length = _max_length_near(source)
    elif not source.exists():
        raise UserError(
            f"{source} does not exist — pass a compress run folder (its --out), an ONNX "
            "package folder or an .onnx file"
        )
    else:
        raise UserError(
            f"{source} is neither a compress run folder (state.json), an ONNX package "
            "(config.json and onnx/) nor an .onnx file — pass one of those"
        )
    return _pick(source, files, artifact, max_length)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class Predictor:
    """Labels of one shipped file, e.g. `Predictor("runs/sst2").predict(["a fine film"])`.

    `run_or_path`: a compress run folder, an ONNX package folder or an .onnx file;
    `artifact`: int8, fp32 or e2e (None: int8 when there is one, else fp32); `batch_size`
    (None: evaluation's) decides a dynamic-int8 file's labels, see the module's docstring.
    """

    def __init__(
        self,
        run_or_path: str | Path,
        artifact: str | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> None:
        from compressor.inference import DEFAULT_BATCH, label_names

        if batch_size is not None and batch_size < 1:
            raise UserError(f"batch size {batch_size} — pass 1 or more")
        self.choice = choose_file(Path(run_or_path), artifact)
        self.path = self.choice.path
        self.batch_size = batch_size or DEFAULT_BATCH
        self.threads = threads
        self.labels = label_names(self.path)
        if not self.labels:
            raise UserError(
                f"the config beside {self.path} has no id2label — export the model from a "
                "classifier folder"
            )
        self.task = task_of_config(atomic.read_json(package_root(self.path) / "config.json"))

    @property
    def tags_words(self) -> bool:
        """A token classifier: `entities` answers, `predict` does not."""
        return self.task.name != DEFAULT_TASK

    def describe(self) -> dict[str, Any]:
        """What decides the outputs, recorded beside them."""
        return {
            "model": str(self.path),
            "artifact": self.choice.artifact,
            "batch_size": self.batch_size,
            "max_length": self.choice.max_length,
            "labels": self.labels,
        }

    def predict(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        on_progress: Progress | None = None,
    ) -> list[Prediction]:
        """One prediction per text, in input order; `on_progress(n)` hears of n more done."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string")
        if pairs is not None and len(pairs) != len(texts):
            raise UserError(f"{len(texts)} texts but {len(pairs)} pairs — pass one pair per text")
        if not texts:
            return []
        if self.tags_words:
            raise UserError(f"{self.path} tags words — ask it for entities, not one label a text")
        probabilities = _softmax(self.logits(list(texts), pairs, on_progress))
        predictions = []
        for row in probabilities:
            best = int(row.argmax())
            named = {name: float(p) for name, p in zip(self.labels, row, strict=True)}
            predictions.append(Prediction(self.labels[best], float(row[best]), named))
        return predictions

    def entities(
        self, texts: Sequence[str], on_progress: Progress | None = None
    ) -> list[list[Entity]]:
        """The entities of each raw text, in input order, with character offsets into it
        (`compressor.tasks.token.entities`), from the same batches as evaluation."""
        from compressor.inference import predict_piece_logits

        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string")
        if not self.tags_words:
            raise UserError(f"{self.path} gives one label a text — ask it to predict labels")
        if not texts:
            return []
        pieces = predict_piece_logits(self.path, list(texts), max_length=self.choice.max_length,
                                      batch_size=self.batch_size,
                                      tokenizer_dir=package_root(self.path), threads=self.threads,
                                      on_batch=on_progress)  # fmt: skip
        return [
            entities(text, _softmax(p.logits), p.offsets, p.word_ids, self.labels)
            for text, p in zip(texts, pieces, strict=True)
        ]

    def logits(
        self, texts: list[str], pairs: Sequence[str] | None, on_progress: Progress | None = None
    ) -> np.ndarray:
        """(n, labels) in input order, in evaluation's batches (so a dynamic-int8 file gives
        the labels its report states at this batch size)."""
        from compressor.inference import predict_logits

        return predict_logits(self.path, texts, None if pairs is None else list(pairs),
                              max_length=self.choice.max_length, batch_size=self.batch_size,
                              tokenizer_dir=package_root(self.path), threads=self.threads,
                              on_batch=on_progress)  # fmt: skip


def read_texts(
    path: Path, text_column: str = "sentence", pair_column: str | None = None
) -> tuple[list[str], list[str] | None]:
    """The text (and pair) column of a .tsv (with a header line), .csv or .jsonl file, read
    as training and evaluation read their data, so the same file gives the same sentences."""
    from compressor.data import read_rows

    if not Path(path).is_file():
        raise UserError(f"no file {path} — pass an existing .tsv file (with a header) to --file")
    rows = read_rows(Path(path))
    available = list(rows[0])
    columns = [text_column, *([pair_column] if pair_column else [])]
    for column in columns:
        if column not in available:
            raise UserError(
                f"{path} has no column {column!r} (its columns: {', '.join(available)}) — name "
                "the text with --text-column (and --text-pair-column)"
            )
        empty = next((k for k, row in enumerate(rows) if row[column] is None), None)
        if empty is not None:
            raise UserError(f"{path}: row {empty + 1} has no {column!r} — fill or drop that row")
    texts = [str(row[text_column]) for row in rows]
    return texts, [str(row[pair_column]) for row in rows] if pair_column else None


def prediction_rows(
    texts: Sequence[str], pairs: Sequence[str] | None, predictions: Sequence[Prediction]
) -> list[dict[str, Any]]:
    """One JSON object a sentence: what `--out` writes a line of."""
    rows = []
    for k, (text, prediction) in enumerate(zip(texts, predictions, strict=True)):
        row: dict[str, Any] = {"text": text}
        if pairs is not None:
            row["text_pair"] = pairs[k]
        rows.append(row | {"label": prediction.label, "probabilities": prediction.probabilities})
    return rows


def entity_rows(texts: Sequence[str], found: Sequence[list[Entity]]) -> list[dict[str, Any]]:
    """One JSON object a text with its entities: what `--out` writes a line of for a tagger."""
    return [
        {"text": text, "entities": [asdict(entity) for entity in spans]}
        for text, spans in zip(texts, found, strict=True)
    ]


def metadata_path(out: Path) -> Path:
    """`preds.jsonl` -> `preds.meta.json`: which file, batch size and truncation made them."""
    return out.with_name(f"{out.stem}.meta.json")


def write_predictions(out: Path, rows: list[dict[str, Any]], metadata: dict[str, Any]) -> None:
    """The JSON lines and their metadata, each written whole or not at all."""
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic.write_text(out, lines)
    atomic.write_json(metadata_path(out), metadata)
