import json
from pathlib import Path

import pytest

from compressor.data import load_task_data
from compressor.errors import UserError
from compressor.recipe import DataConfig
from tests.conftest import SHARED_DATA, sst2_rows


def test_sst2_folder_uses_its_dev_file(sst2_dir: Path) -> None:
    data = load_task_data(DataConfig(source=str(sst2_dir)))
    assert len(data.train) == 67349
    assert len(data.dev) == 872
    assert data.label_names == ["0", "1"]
    first_text, first_label = sst2_rows("dev", limit=1)[0]
    assert data.dev.texts[0] == first_text and data.dev.labels[0] == first_label
    assert data.train.pairs is None


def test_single_file_gets_a_seeded_held_out_dev() -> None:
    cfg = DataConfig(source=str(SHARED_DATA / "sentiment3" / "yelp.tsv"), dev_fraction=0.2)
    a, b = load_task_data(cfg), load_task_data(cfg)
    assert (len(a.train), len(a.dev)) == (800, 200)
    assert a.dev.texts == b.dev.texts
    other = load_task_data(cfg.model_copy(update={"seed": 7}))
    assert other.dev.texts != a.dev.texts
    assert any("held out 200" in n for n in a.notes)


def test_subsample_is_seeded_and_noted(sst2_dir: Path) -> None:
    cfg = DataConfig(source=str(sst2_dir), max_train_examples=100)
    a, b = load_task_data(cfg), load_task_data(cfg)
    assert len(a.train) == 100 and a.train.texts == b.train.texts
    assert any("subset of 100 of 67349" in n for n in a.notes)


def test_sentence_pairs_and_string_labels_from_csv(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(
        'premise,hypothesis,gold\n"a cat sleeps",a cat rests,entail\nthe dog,"no, a cat",contra\n'
        "sun,moon,neutral\n"
    )
    (tmp_path / "dev.csv").write_text("premise,hypothesis,gold\nx,y,contra\n")
    cfg = DataConfig(
        source=str(tmp_path),
        text_column="premise",
        text_pair_column="hypothesis",
        label_column="gold",
    )
    data = load_task_data(cfg)
    assert data.label_names == ["contra", "entail", "neutral"]
    assert data.train.labels == [1, 0, 2] and data.dev.labels == [0]
    assert data.train.pairs == ["a cat rests", "no, a cat", "moon"]


def test_jsonl_file(tmp_path: Path) -> None:
    lines = [f'{{"sentence": "s{i}", "label": {i % 2}}}' for i in range(20)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    data = load_task_data(DataConfig(source=str(tmp_path)))
    assert len(data.train) + len(data.dev) == 20


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.tsv", None, "does not exist"),
        ("empty.tsv", "", "is empty"),
        ("header.tsv", "sentence\tlabel\n", "no examples"),
        ("cols.tsv", "text\tlabel\na\t1\n", "no column 'sentence'.*text, label"),
        ("one.tsv", "sentence\tlabel\na\t1\nb\t1\nc\t1\n", "only one label"),
        ("x.parquet", "x", "unsupported"),
        (".", None, "no train.tsv"),
    ],
)
def test_bad_data_gives_one_clear_error(
    tmp_path: Path, name: str, content: str | None, match: str
) -> None:
    source = tmp_path / name
    if content is not None:
        source.write_text(content)
    with pytest.raises(UserError, match=match):
        load_task_data(DataConfig(source=str(source)))


def test_headerless_csv_pairs_read_with_named_columns(tmp_path: Path) -> None:
    """AG-news-like export: label first, then two texts, CSV quoting, no header line."""
    rows = [
        '3,"Wall St. Bears Claw Back Into the Black","Short-sellers, Wall St.\'s dwindling band"',
        '4,"Stocks end up, but near year lows",Stocks ended slightly higher on Friday',
        '3,"Oil and Economy Cloud Stocks\' Outlook","Soaring crude prices plus worries"',
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.csv").write_text('4,"Iraq Halts Oil Exports",Authorities have halted oil\n')
    cfg = DataConfig(source=str(tmp_path), text_pair_column="body")
    with pytest.raises(UserError, match=r"no header line .* pass --columns label,sentence,body$"):
        load_task_data(cfg)
    data = load_task_data(cfg.model_copy(update={"columns": ["label", "sentence", "body"]}))
    assert (len(data.train), len(data.dev)) == (3, 1)  # the first rows are examples
    assert data.label_names == ["0", "1", "2", "3", "4"]
    assert data.train.labels == [3, 4, 3] and data.dev.labels == [4]
    assert data.train.texts[1] == "Stocks end up, but near year lows"
    assert data.train.pairs[1] == "Stocks ended slightly higher on Friday"


@pytest.mark.parametrize(
    ("name", "content", "columns", "match"),
    [
        ("wide.tsv", "good\t1\nbad\t0\n", ["sentence", "label", "x"], "has 2 columns but"),
        ("twice.tsv", "good\t1\nbad\t0\n", ["sentence", "sentence"], "'sentence' twice"),
        ("header.tsv", "Sentence\tlabel\ngood\t1\n", ["sentence", "label"], "already has a hea"),
        ("rows.jsonl", '{"sentence": "a", "label": 1}\n', ["sentence", "label"], "drop --col"),
    ],
)
def test_named_columns_are_checked_against_the_file(
    tmp_path: Path, name: str, content: str, columns: list[str], match: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=match):
        load_task_data(DataConfig(source=str(tmp_path / name), columns=columns))


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([{"sentence": "a", "label": [1]}, {"sentence": "b", "label": 0}],
         r"^label \[1\] is not a class — labels are integer ids"),
        ([{"sentence": "a", "label": 0.5}, {"sentence": "b", "label": 1}], r"^label 0\.5 is not"),
        ([{"sentence": "a", "label": 1}, {"sentence": None, "label": 0}],
         r"example 2 has no 'sentence' \(an empty cell or null\) — fill or drop that row"),
        ([{"sentence\nx": "a", "label": 1}], r"columns: sentence\\nx, label"),
    ],
)  # fmt: skip
def test_json_values_that_are_no_class_or_text_are_one_line_errors(
    tmp_path: Path, rows: list[dict], match: str
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows * 2))
    with pytest.raises(UserError, match=match) as info:
        load_task_data(DataConfig(source=str(path), dev_fraction=0.4))
    assert "\n" not in str(info.value)


def test_whole_float_and_boolean_labels_are_class_ids(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    rows = [{"sentence": f"s{k}", "label": [1.0, 0.0, True, False][k % 4]} for k in range(8)]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    data = load_task_data(DataConfig(source=str(path), dev_fraction=0.4))
    assert data.label_names == ["0", "1"]
    assert sorted(data.train.labels + data.dev.labels) == [0, 0, 0, 0, 1, 1, 1, 1]
