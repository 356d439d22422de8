"""Task data: local files or a hub data set -> train / dev splits of (text, pair, label).

Local files are read with `datasets`' csv / json builders (quoting disabled, as our TSVs
contain bare quotes). A folder contributes `train.*` and, when present, `dev.*` /
`validation.*`; otherwise a seeded fraction of train is held out as dev. A .tsv / .csv file
starts with a header line unless `data.columns` names its columns; a headerless file read
without them is recognised by its first row reading like an example, and said so. Tagged
words (CoNLL files, JSON Lines of tokens and tags) are read by `compressor.data.tagged`.
"""

from __future__ import annotations

import csv
import itertools
import re
from functools import cache, partial
from pathlib import Path

from compressor.data.hub import HubLoader, load_hub
from compressor.data.split import DEV_NAMES, Split, TaskData, hold_out
from compressor.data.tagged import is_tagged, tagged_splits
from compressor.errors import UserError
from compressor.recipe import DataConfig

__all__ = ["Split", "TaskData", "default_source", "encode_labels", "load_task_data", "read_rows"]

SUFFIXES = {".tsv": "csv", ".csv": "csv", ".jsonl": "json", ".json": "json"}
HEADER_MAX_WORDS = 4  # a header cell of this many words is more likely a sentence of data
SHARED_SST2 = ("../shared/data/sst2", "shared/data/sst2")


def default_source() -> str:
    """../shared/data/sst2 when it is there (offline machines), else GLUE SST-2 on the hub."""
    for candidate in SHARED_SST2:
        if (Path(candidate) / "train.tsv").is_file():
            return str(Path(candidate).resolve())
    repo_relative = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
    if (repo_relative / "train.tsv").is_file():
        return str(repo_relative)
    return "hf:glue:sst2"


def read_rows(path: Path, columns: list[str] | None = None) -> list[dict]:
    """The file's rows as dicts; `columns` names the columns of a headerless .tsv / .csv."""
    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()

    builder = SUFFIXES.get(path.suffix.lower())
    if builder is None:
        raise UserError(
            f"{path}: unsupported file type {path.suffix!r} — use .tsv, .csv, .jsonl or .json"
        )
    if columns is not None and builder != "csv":
        raise UserError(
            f"{path}: --columns (data.columns) names the columns of headerless .tsv / .csv "
            f"files, and {path.suffix} rows name their own fields — drop --columns"
        )
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty — it needs a header row and at least one example")
    tsv = path.suffix.lower() == ".tsv"
    if builder == "csv":
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = [line for line in itertools.islice(fh, 2) if line.strip()]
        if len(lines) < (1 if columns else 2):
            raise UserError(f"{path} has no examples — add at least one row under the header")
        if columns is not None:
            _check_named_columns(path, columns, _cells(lines[0], tsv))
    kwargs: dict = {}
    if builder == "csv":
        # TSVs here carry bare quotes inside sentences, so quoting is off for them (csv
        # QUOTE_NONE); CSV keeps standard quoting because commas inside text need it.
        kwargs = {"delimiter": "\t" if tsv else ",", "keep_default_na": False}
        if tsv:
            kwargs["quoting"] = csv.QUOTE_NONE
        if columns is not None:
            kwargs["column_names"] = list(columns)
    try:
        ds = load_dataset(builder, data_files={"train": str(path)}, split="train", **kwargs)
    except Exception as exc:  # the builders raise many types for malformed files
        raise UserError(f"could not parse {path}: {exc} — check its format") from exc
    if len(ds) == 0:
        raise UserError(f"{path} has no examples — it needs at least one row under the header")
    return ds.to_list()


def _cells(line: str, tsv: bool) -> list[str]:
    """One line split as the reader splits it: tabs without quoting, CSV with quoting."""
    if tsv:
        return line.rstrip("\r\n").split("\t")
    return next(csv.reader([line]))


def _check_named_columns(path: Path, columns: list[str], first_row: list[str]) -> None:
    """Names for every column, each once, on a file whose first row is not those names."""
    if not all(columns):
        raise UserError(f"--columns {','.join(columns)} has an empty name — name every column")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise UserError(
            f"--columns names {repeated[0]!r} twice — give every column of {path} its own name"
        )
    if len(columns) != len(first_row):
        raise UserError(
            f"{path} has {len(first_row)} columns but --columns names {len(columns)} "
            f"({','.join(columns)}) — name every column, in order"
        )
    if [cell.strip().lower() for cell in first_row] == [name.lower() for name in columns]:
        raise UserError(
            f"{path} already has a header line ({', '.join(first_row)}) — drop --columns"
        )


def _reads_like_data(cell: str) -> bool:
    """A number (a label value) or a sentence: what a header cell almost never is."""
    text = cell.strip()
    return bool(re.fullmatch(r"-?\d+(\.\d+)?", text)) or len(text.split()) >= HEADER_MAX_WORDS


def _suggested_columns(first_row: list[str], cfg: DataConfig) -> list[str]:
    """Names for --columns guessed from the first row: the number is the label, the first
    sentence the text (the second the pair, when the recipe reads pairs)."""
    numbers = [k for k, cell in enumerate(first_row) if re.fullmatch(r"-?\d+", cell.strip())]
    label = numbers[0] if numbers else len(first_row) - 1
    names = [f"column{k + 1}" for k in range(len(first_row))]
    names[label] = cfg.label_column
    texts = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    free = [k for k in range(len(first_row)) if k != label]
    free.sort(key=lambda k: not _reads_like_data(first_row[k]))  # sentences first, stable
    for k, name in zip(sorted(free[: len(texts)]), texts, strict=False):
        names[k] = name
    return names


def _headerless_error(where: str, first_row: list[str], cfg: DataConfig) -> UserError:
    shown = ", ".join(repr(_shortened(cell.strip())) for cell in first_row)
    return UserError(
        f"{where} seems to have no header line (its first row reads like data: {shown}) — add "
        f"a header line or pass --columns {','.join(_suggested_columns(first_row, cfg))}"
    )


def _shortened(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _find(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for suffix in SUFFIXES:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _read_hub(hub: HubLoader) -> tuple[list[dict], list[dict] | None]:
    ds, dev_name = hub()
    return ds["train"].to_list(), ds[dev_name].to_list() if dev_name else None


def _columns(rows: list[dict], cfg: DataConfig, where: str, labelled: bool = True) -> Split:
    """The text (and pair) columns, and the label column when `labelled`; unlabelled text
    (masked-LM distillation) gets placeholder labels 0 that nothing reads."""
    available = list(rows[0].keys())
    wanted = [cfg.text_column, cfg.label_column] if labelled else [cfg.text_column]
    if cfg.text_pair_column:
        wanted.append(cfg.text_pair_column)
    if not set(wanted) & set(available) and any(_reads_like_data(c) for c in available):
        raise _headerless_error(where, available, cfg)
    for column in wanted:
        if column not in available:
            raise UserError(
                f"{where}: no column {column!r} (columns: {', '.join(available)}) — pass "
                "--text-column / --text-pair-column / --label-column"
            )
    for column in [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else []):
        missing = next((k for k, r in enumerate(rows) if r[column] is None), None)
        if missing is not None:
            raise UserError(
                f"{where}: example {missing + 1} has no {column!r} (an empty cell or null) — "
                "fill or drop that row"
            )
    pairs = [str(r[cfg.text_pair_column]) for r in rows] if cfg.text_pair_column else None
    labels = [r[cfg.label_column] for r in rows] if labelled else [0] * len(rows)
    if any(lbl is None or lbl == "" for lbl in labels):
        raise UserError(f"{where}: some examples have an empty label — fill or drop those rows")
    labels = [_class_of(lbl) for lbl in labels]
    return Split([str(r[cfg.text_column]) for r in rows], labels, pairs)


def _class_of(label: object) -> int | str:
    """A label as a class: an integer id, or a name; a whole float (1.0, as some exports
    write ids) and a boolean are integers. Anything else (a list, 0.5) is refused."""
    if isinstance(label, bool) or (isinstance(label, float) and label.is_integer()):
        return int(label)
    if not isinstance(label, int | str):
        raise UserError(
            f"label {_shortened(repr(label))} is not a class — labels are integer ids "
            "(0..K-1) or names; fix the label column or pass --label-column"
        )
    return label


def encode_labels(train: Split, dev: Split) -> list[str]:
    """Integer labels stay as they are (0..K-1); string labels get sorted ids."""
    for split in (train, dev):  # Meta-KD's readers hand their rows' labels as they are
        if any(lbl is None or lbl == "" for lbl in split.labels):
            raise UserError("some examples have an empty label — fill or drop those rows")
        split.labels = [_class_of(lbl) for lbl in split.labels]
    raw = set(train.labels) | set(dev.labels)
    if all(isinstance(lbl, int) or (isinstance(lbl, str) and lbl.isdigit()) for lbl in raw):
        for split in (train, dev):
            split.labels = [int(lbl) for lbl in split.labels]
        top = max(max(train.labels), max(dev.labels))
        if min(min(train.labels), min(dev.labels)) < 0:
            raise UserError("labels must be 0..K-1 or strings — found a negative label")
        return [str(i) for i in range(top + 1)]
    names = sorted(str(lbl) for lbl in raw)
    index = {name: i for i, name in enumerate(names)}
    for split in (train, dev):
        split.labels = [index[str(lbl)] for lbl in split.labels]
    return names


def _subsample(split: Split, n: int | None, seed: int) -> Split:
    if n is None or n >= len(split):
        return split
    import random

    return split.select(sorted(random.Random(seed).sample(range(len(split)), n)))


def load_task_data(cfg: DataConfig, labelled: bool = True) -> TaskData:
    """Read, check and split the data named by the recipe; `labelled=False` reads text only
    (task-agnostic distillation), with no label set. Tagged words (CoNLL files, JSON Lines
    of tokens and tags) are token-classification data, anything else one label per text."""
    source = cfg.source or default_source()
    hub = cache(partial(load_hub, source))  # both readers may ask; the set is loaded once
    if is_tagged(source, cfg, hub):
        if not labelled:
            raise UserError(
                f"{source} holds tagged words; task-agnostic distillation reads plain text — "
                "pass a text file or folder, or use prune.objective: task"
            )
        train, dev, label_names, notes = tagged_splits(source, cfg, hub)
    else:
        train, dev, label_names, notes = _sequence_splits(source, cfg, labelled, hub)
    full = len(train)
    train = _subsample(train, cfg.max_train_examples, cfg.seed)
    if len(train) < full:
        notes.append(f"trained on a seeded subset of {len(train)} of {full} training examples")
    dev_full = len(dev)
    dev = _subsample(dev, cfg.max_dev_examples, cfg.seed)
    if len(dev) < dev_full:
        notes.append(f"evaluated on {len(dev)} of {dev_full} dev examples")
    return TaskData(train=train, dev=dev, label_names=label_names, source=source, notes=notes)


def _sequence_splits(
    source: str, cfg: DataConfig, labelled: bool, hub: HubLoader
) -> tuple[Split, Split, list[str], list[str]]:
    """Train and dev of one label per text, the label names, and notes on what was done."""
    notes: list[str] = []
    if cfg.tag_column is not None:
        raise UserError(
            f"{source}: --tag-column (data.tag_column) picks the tag column of CoNLL files, "
            "and this data has one label per text — drop it"
        )
    if source.startswith("hf:"):
        if cfg.columns is not None:
            raise UserError(
                f"{source}: --columns (data.columns) names the columns of headerless .tsv / "
                ".csv files, and a hub data set names its own — drop --columns"
            )
        train_rows, dev_rows = _read_hub(hub)
        train = _columns(train_rows, cfg, source, labelled)
        dev_where = f"{source} (dev)"
    else:
        path = Path(source)
        if not path.exists():
            raise UserError(
                f"data path {path} does not exist — pass a folder, a file, or hf:<name>[:<config>]"
            )
        if path.is_dir():
            train_file = _find(path, ("train",))
            if train_file is None:
                raise UserError(
                    f"{path} has no train.tsv / .csv / .jsonl / .json — add one or pass a file"
                )
            dev_file = _find(path, DEV_NAMES)
        else:
            train_file, dev_file = path, None
        # the training file is checked first: a headerless folder is named by it
        train = _columns(read_rows(train_file, cfg.columns), cfg, str(train_file), labelled)
        dev_rows = read_rows(dev_file, cfg.columns) if dev_file else None
        dev_where = str(dev_file)
    if dev_rows is not None:
        dev = _columns(dev_rows, cfg, dev_where, labelled)
    else:
        train, dev = hold_out(train, cfg.dev_fraction, cfg.seed)
        notes.append(f"no dev file: held out {len(dev)} training examples (seed {cfg.seed})")
    if labelled and len(set(train.labels)) < 2:
        raise UserError(f"{source}: only one label value found — classification needs two or more")
    label_names = encode_labels(train, dev) if labelled else []
    return train, dev, label_names, notes
