"""No input crashes compressor: generated data files, data rows and recipe settings either
load or stop with a one-line UserError (what is wrong and how to fix it), never another
exception. 2,300 generated cases in all; hypothesis shrinks any failure to a small one."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressor.data import Split, _columns, encode_labels, load_task_data
from compressor.errors import UserError
from compressor.recipe import DataConfig, Recipe, load_recipe

T = TypeVar("T")
FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON-like cell values: what a JSONL file or a hub data set can put in a column
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 6), st.floats(allow_nan=True, width=32),
    st.text(max_size=8), st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(0, 2), max_size=1),
)  # fmt: skip
COLUMNS = st.sampled_from(["sentence", "label", "text", "sentence2", " label", ""]) | st.text(
    max_size=5
)


def loads_or_says_why(call: Callable[[], T]) -> T | None:
    """The call's result, or None after checking its UserError is one line with a fix."""
    try:
        return call()
    except UserError as error:
        message = str(error)
        assert message and "\n" not in message, message
        return None


@st.composite
def table(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows sharing one set of columns, as the readers return them."""
    names = draw(st.lists(COLUMNS, min_size=1, max_size=4, unique=True))
    width = len(names)
    cells = draw(st.lists(st.lists(VALUES, min_size=width, max_size=width), min_size=1,
                          max_size=6))  # fmt: skip
    return [dict(zip(names, row, strict=True)) for row in cells]


@FAST
@given(train=table(), dev=table(), pair=st.booleans())
def test_any_rows_give_a_split_or_a_one_line_error(
    train: list[dict], dev: list[dict], pair: bool
) -> None:
    cfg = DataConfig(text_pair_column="sentence2" if pair else None)

    def read() -> tuple[Split, Split, list[str]]:
        a, b = _columns(train, cfg, "train"), _columns(dev, cfg, "dev")
        return a, b, encode_labels(a, b)

    result = loads_or_says_why(read)
    if result is None:
        return
    a, b, names = result
    for split in (a, b):
        assert all(isinstance(text, str) for text in split.texts)
        assert all(isinstance(y, int) and 0 <= y < len(names) for y in split.labels)
        assert split.pairs is None or len(split.pairs) == len(split.texts)


LINE_TEXT = st.text(alphabet=st.sampled_from(list("ab ,\"\t\\'é1-0\r")), max_size=14)


@st.composite
def data_file(draw: st.DrawFn) -> tuple[str, str]:
    """A .tsv / .csv / .jsonl file: mostly plausible (a header, rows of two cells), with
    stray separators, quotes, carriage returns, empty or missing cells and bad JSON."""
    suffix = draw(st.sampled_from([".tsv", ".csv", ".jsonl"]))
    rows = draw(st.lists(st.tuples(LINE_TEXT, st.sampled_from(["0", "1", "pos", "", "2"])),
                         max_size=5))  # fmt: skip
    if suffix == ".jsonl":
        lines = [json.dumps({"sentence": t, "label": int(y) if y.isdigit() else y})
                 for t, y in rows]  # fmt: skip
        lines += draw(st.lists(st.sampled_from(["{", "[1, 2]", "", '{"sentence": null}']),
                               max_size=1))  # fmt: skip
    else:
        sep = "\t" if suffix == ".tsv" else ","
        header = draw(st.sampled_from([f"sentence{sep}label", f"label{sep}sentence", "", "x"]))
        lines = [header, *(f"{t}{sep}{y}" for t, y in rows)]
    return suffix, "\n".join(lines)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(spec=data_file())
def test_any_data_file_loads_or_says_why(spec: tuple[str, str], tmp_path: Path) -> None:
    suffix, content = spec
    path = tmp_path / f"train{suffix}"
    path.write_text(content, encoding="utf-8")
    data = loads_or_says_why(lambda: load_task_data(DataConfig(source=str(path))))
    if data is not None:
        assert len(data.train) >= 1 and len(data.dev) >= 1
        assert len(data.label_names) >= 2
        labels = data.train.labels + data.dev.labels
        assert all(0 <= y < len(data.label_names) for y in labels)


KEYS = st.sampled_from([
    "train.lr", "train.batch_size", "train.epochs", "student.kind", "student.layers",
    "student.cells", "distill.alpha", "distill.temperature", "distill.intermediate",
    "quantize.mode", "benchmark.seq_lens", "adabert.enabled", "adabert.beta", "data.columns",
    "prune.enabled", "prune.budget", "augment.methods", "train", "student.nope", "nope",
    "train.lr.x", "stages",
]) | st.text(alphabet="ab.", max_size=6)  # fmt: skip
SETTINGS = st.one_of(
    VALUES, st.floats(-1, 2), st.sampled_from(["cnn", "bilstm", "transformer", "static-int8"]),
    st.lists(st.sampled_from(["mask", "ngram", "zap"]), max_size=2),
    st.lists(st.lists(st.tuples(st.sampled_from(["conv3", "zero", "x"]), st.integers(-1, 3),
                                st.integers(0, 4)), max_size=2), max_size=2),
)  # fmt: skip


@FAST
@given(overrides=st.dictionaries(KEYS, SETTINGS, max_size=3))
def test_any_recipe_settings_validate_or_say_which_key(overrides: dict[str, Any]) -> None:
    recipe = loads_or_says_why(lambda: load_recipe(None, overrides))
    if recipe is not None:
        assert isinstance(recipe, Recipe) and len(recipe.hash()) == 16
        assert math.isfinite(recipe.train.lr) and recipe.train.lr > 0
