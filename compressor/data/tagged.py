"""Token-classification data: words with one tag each, from CoNLL column files, JSON Lines
or a hub data set whose tags are class labels (`hf:conll2003`), checked line by line so a
bad file gets one message with its line and the fix.

CoNLL column files hold one word a line (the word first, other columns after it), an empty
line between sentences, and `-DOCSTART-` lines between documents (skipped). The tag is the
last column unless `data.tag_column` names another (1 = the word). Tags are IOB2 strings:
`O`, or `B-`/`I-` and a type, every entity starting with `B-` (seqeval's strict mode, which
the metric uses, would otherwise drop entities silently).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from compressor.data.hub import HubLoader
from compressor.data.split import DEV_NAMES, Split, hold_out
from compressor.errors import UserError
from compressor.recipe import DataConfig
from compressor.tasks.token import TokenClassification

TOKEN_TASK = TokenClassification.name

COLUMN_SUFFIXES = (".txt", ".conll", ".bio", ".iob")
JSON_SUFFIXES = (".jsonl", ".json")
WORDS_FIELD = "tokens"
TAG_FIELDS = ("tags", "ner_tags")
IOB2_TAG = re.compile(r"O|[BI]-\S+")

Sentences = tuple[list[list[str]], list[list[str]]]
"""Words and tags, one list per sentence."""


def read_tagged(path: Path, tag_column: int | None = None) -> Sentences:
    """The sentences of a column file or a JSON Lines file, tags checked as IOB2."""
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty — it needs sentences of tagged words")
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        if tag_column is not None:
            raise UserError(
                f"{path}: --tag-column (data.tag_column) picks a column of CoNLL files, and "
                f"JSON rows name their fields ({WORDS_FIELD}, tags) — drop it"
            )
        words, tags, lines = _read_json(path)
    elif suffix in COLUMN_SUFFIXES:
        words, tags, lines = _read_columns(path, tag_column)
    else:
        raise UserError(
            f"{path}: unsupported file type {path.suffix!r} for tagged words — use a CoNLL "
            f"file ({', '.join(COLUMN_SUFFIXES)}) or JSON Lines with {WORDS_FIELD} and tags"
        )
    if not words:
        raise UserError(f"{path} has no sentences — it needs tagged words")
    for sentence, line in zip(tags, lines, strict=True):
        _check_iob2(sentence, f"{path}:{line}")
    return words, tags


def _read_columns(path: Path, tag_column: int | None) -> tuple[list, list, list[int]]:
    """Sentences and the line each starts on; a line with another number of columns than
    the file's first word line is refused, as it is almost always a word with a space."""
    words: list[list[str]] = []
    tags: list[list[str]] = []
    starts: list[int] = []
    width: tuple[int, int] | None = None  # (columns, line of the first word)
    sentence_words: list[str] = []
    sentence_tags: list[str] = []

    def close() -> None:
        if sentence_words:
            words.append(sentence_words.copy())
            tags.append(sentence_tags.copy())
        sentence_words.clear()
        sentence_tags.clear()

    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            cells = line.split()
            if not cells:
                close()
                continue
            if cells[0] == "-DOCSTART-":
                close()
                continue
            if width is None:
                width = (len(cells), number)
                _check_tag_column(path, tag_column, len(cells))
            if len(cells) != width[0]:
                raise UserError(
                    f"{path}:{number}: {len(cells)} columns where line {width[1]} has "
                    f"{width[0]} — every word line needs the same columns (a word with a "
                    "space in it splits into two)"
                )
            if not sentence_words:
                starts.append(number)
            sentence_words.append(cells[0])
            sentence_tags.append(cells[(tag_column or len(cells)) - 1])
    close()
    return words, tags, starts


def _check_tag_column(path: Path, tag_column: int | None, columns: int) -> None:
    if columns < 2:
        raise UserError(
            f"{path}: its lines have one column — a CoNLL file needs the word and its tag "
            "on each line, separated by a space or a tab"
        )
    if tag_column is not None and not 2 <= tag_column <= columns:
        raise UserError(
            f"{path} has {columns} columns, so --tag-column {tag_column} names none of its "
            f"tags — pass 2..{columns} (1 is the word)"
        )


def _read_json(path: Path) -> tuple[list, list, list[int]]:
    """Rows with a list of words and a list of tags of the same length."""
    words, tags, lines = [], [], []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path}:{number}: not a JSON object ({exc.msg}) — write one row a line"
                ) from exc
            field = next((name for name in TAG_FIELDS if name in row), None)
            if WORDS_FIELD not in row or field is None:
                raise UserError(
                    f"{path}:{number}: a row needs {WORDS_FIELD!r} and 'tags' lists (found "
                    f"{', '.join(map(repr, row)) or 'no fields'})"
                )
            row_words, row_tags = row[WORDS_FIELD], row[field]
            if len(row_words) != len(row_tags):
                raise UserError(
                    f"{path}:{number}: {len(row_words)} words but {len(row_tags)} tags — "
                    "give each word one tag"
                )
            if any(not isinstance(tag, str) for tag in row_tags):
                raise UserError(
                    f"{path}:{number}: tags must be IOB2 strings (B-PER, I-PER, O), found "
                    f"{next(t for t in row_tags if not isinstance(t, str))!r} — write the "
                    "tag names, not their ids"
                )
            if row_words:
                words.append([str(word) for word in row_words])
                tags.append(list(row_tags))
                lines.append(number)
    return words, tags, lines


def _check_iob2(tags: list[str], where: str) -> None:
    """Each tag IOB2-shaped, and no `I-X` that does not continue an `X` entity."""
    previous = "O"
    for k, tag in enumerate(tags):
        if not IOB2_TAG.fullmatch(tag):
            raise UserError(
                f"{where}: word {k + 1} of the sentence has tag {tag!r}, which is not IOB2 — "
                "tags are O, B-<type> or I-<type>"
            )
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            raise UserError(
                f"{where}: word {k + 1} of the sentence has {tag} after {previous}; in IOB2 "
                "every entity starts with B- — convert the file from IOB1 to IOB2"
            )
        previous = tag


def tag_names(train_tags: list[list[str]], dev_tags: list[list[str]], source: str) -> list[str]:
    """The training data's tags, sorted; a dev tag that training never shows is refused:
    no model trained on it can predict that tag."""
    names = sorted({tag for tags in train_tags for tag in tags})
    unknown = sorted({tag for tags in dev_tags for tag in tags} - set(names))
    if unknown:
        raise UserError(
            f"{source}: the dev data has tags {', '.join(unknown)} that the training data "
            "never uses — fix the dev file or add training sentences with them"
        )
    return names


def _tagged_file(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for suffix in (*COLUMN_SUFFIXES, *JSON_SUFFIXES):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def _json_rows_are_tagged(path: Path) -> bool:
    """Whether a JSON Lines file's first row has words and tags (not a text and a label)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = next((line for line in fh if line.strip()), "")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and WORDS_FIELD in row and any(f in row for f in TAG_FIELDS)


def is_tagged(source: str, cfg: DataConfig, hub: HubLoader) -> bool:
    """Whether the recipe's data is tagged words: `data.task` says so, else its files do (a
    CoNLL file, or JSON Lines rows with tokens and tags)."""
    if cfg.task is not None:
        return cfg.task == TOKEN_TASK
    if source.startswith("hf:"):
        ds, _dev = hub()
        columns = ds["train"].column_names
        return WORDS_FIELD in columns and any(f in columns for f in TAG_FIELDS)
    path = Path(source)
    if path.is_dir():
        path = _tagged_file(path, ("train",)) or path
    if not path.is_file():
        return False
    suffix = path.suffix.lower()
    return suffix in COLUMN_SUFFIXES or (suffix in JSON_SUFFIXES and _json_rows_are_tagged(path))


def tagged_splits(
    source: str, cfg: DataConfig, hub: HubLoader
) -> tuple[Split, Split, list[str], list[str]]:
    """Train and dev of tagged words (tag ids in sorted tag order), the tag names, and notes
    on what was done."""
    notes: list[str] = []
    if source.startswith("hf:"):
        train, dev = _hub_splits(source, hub)
        if dev is None:
            train, dev = hold_out(train, cfg.dev_fraction, cfg.seed)
            notes.append(f"no dev split: held out {len(dev)} training sentences (seed {cfg.seed})")
        return _numbered(train, dev, source, notes)
    path = Path(source)
    if not path.exists():
        raise UserError(f"data path {path} does not exist — pass a folder or a file")
    if path.is_dir():
        train_file = _tagged_file(path, ("train",))
        if train_file is None:
            raise UserError(
                f"{path} has no train file of tagged words (train.txt / .conll / .jsonl) — "
                "add one or pass a file"
            )
        dev_file = _tagged_file(path, DEV_NAMES)
    else:
        train_file, dev_file = path, None
    train = Split(*read_tagged(train_file, cfg.tag_column), task=TOKEN_TASK)
    if dev_file is not None:
        dev = Split(*read_tagged(dev_file, cfg.tag_column), task=TOKEN_TASK)
    else:
        train, dev = hold_out(train, cfg.dev_fraction, cfg.seed)
        notes.append(f"no dev file: held out {len(dev)} training sentences (seed {cfg.seed})")
    return _numbered(train, dev, source, notes)


def _numbered(
    train: Split, dev: Split, source: str, notes: list[str]
) -> tuple[Split, Split, list[str], list[str]]:
    """Tag names turned into ids, in sorted tag order."""
    names = tag_names(train.labels, dev.labels, source)
    index = {name: i for i, name in enumerate(names)}
    for split in (train, dev):
        split.labels = [[index[tag] for tag in tags] for tags in split.labels]
    return train, dev, names, notes


def _hub_splits(source: str, hub: HubLoader) -> tuple[Split, Split | None]:
    """A hub data set's tokens and tags (names from its class-label feature, as
    `conll2003`'s `ner_tags` has them), checked as IOB2 like a file."""
    ds, dev_name = hub()
    columns = ds["train"].column_names
    field = next((f for f in TAG_FIELDS if f in columns), None)
    if WORDS_FIELD not in columns or field is None:
        raise UserError(
            f"{source} has no {WORDS_FIELD!r} and tags columns (columns: {', '.join(columns)}) "
            "— token classification reads a list of words and a list of tags per row"
        )
    names = getattr(ds["train"].features[field].feature, "names", None)

    def split_of(part: str) -> Split:
        words, tags = [], []
        for k, row in enumerate(ds[part]):
            row_tags = [names[t] if names and isinstance(t, int) else t for t in row[field]]
            if any(not isinstance(t, str) for t in row_tags):
                raise UserError(
                    f"{source} ({part}) row {k + 1}: tags are ids without names — the tag "
                    "column needs a class-label feature or tag names"
                )
            _check_iob2(row_tags, f"{source} ({part}) row {k + 1}")
            if row[WORDS_FIELD]:
                words.append([str(w) for w in row[WORDS_FIELD]])
                tags.append(row_tags)
        return Split(words, tags, task=TOKEN_TASK)

    return split_of("train"), split_of(dev_name) if dev_name else None
