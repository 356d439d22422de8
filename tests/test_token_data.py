"""Tagged-word data: the CoNLL and JSON Lines readers on their edge cases, each bad file's
one-line message with its line, and the real CoNLL-2003 files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.data import load_task_data
from compressor.data.split import Split, TaskData
from compressor.data.tagged import read_tagged
from compressor.errors import UserError
from compressor.recipe import DataConfig
from tests.conftest import CONLL, CONLL_TAGS

FOUR_COLUMNS = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O


Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER



"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_conll_skips_docstart_and_trailing_blank_lines(tmp_path: Path) -> None:
    words, tags = read_tagged(write(tmp_path, "train.txt", FOUR_COLUMNS))
    assert words == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    assert tags == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]]


def test_tag_column_picks_another_column(tmp_path: Path) -> None:
    _words, tags = read_tagged(write(tmp_path, "train.txt", FOUR_COLUMNS), tag_column=3)
    assert tags == [["B-NP", "B-VP", "B-NP", "I-NP"], ["B-NP", "I-NP"]]


def test_tag_column_outside_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has 4 columns, so --tag-column 5 names none"):
        read_tagged(write(tmp_path, "train.txt", FOUR_COLUMNS), tag_column=5)


def test_ragged_line_names_its_line(tmp_path: Path) -> None:
    text = "EU NNP B-ORG\nNew York NNP B-LOC\n"
    with pytest.raises(UserError, match=r"train.txt:2: 4 columns where line 1 has 3"):
        read_tagged(write(tmp_path, "train.txt", text))


def test_empty_and_tagless_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is empty"):
        read_tagged(write(tmp_path, "train.txt", ""))
    with pytest.raises(UserError, match="has no sentences"):
        read_tagged(write(tmp_path, "only.txt", "-DOCSTART- -X- O\n\n\n"))
    with pytest.raises(UserError, match="one column"):
        read_tagged(write(tmp_path, "words.txt", "EU\nrejects\n"))


def test_tags_must_be_iob2(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"x.txt:3: word 2 of the sentence has tag 'NNP'"):
        read_tagged(write(tmp_path, "x.txt", "a O\n\nb O\nc NNP\n"))
    iob1 = "a O\n\nb O\nc I-PER\n"
    with pytest.raises(UserError, match=r"y.txt:3: word 2 .* I-PER after O; .*IOB1 to IOB2"):
        read_tagged(write(tmp_path, "y.txt", iob1))


def test_json_lines_of_tokens_and_tags(tmp_path: Path) -> None:
    rows = [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}, {"tokens": [], "tags": []}]
    path = write(tmp_path, "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_tagged(path) == ([["EU", "rejects"]], [["B-ORG", "O"]])
    bad = write(tmp_path, "bad.jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["O"]}))
    with pytest.raises(UserError, match=r"bad.jsonl:1: 2 words but 1 tags"):
        read_tagged(bad)
    ids = write(tmp_path, "ids.jsonl", json.dumps({"tokens": ["a"], "ner_tags": [3]}))
    with pytest.raises(UserError, match=r"ids.jsonl:1: tags must be IOB2 strings.*found 3"):
        read_tagged(ids)


def test_folder_of_conll_files_is_token_classification(tmp_path: Path) -> None:
    write(tmp_path, "train.txt", FOUR_COLUMNS)
    write(tmp_path, "dev.txt", "Peter NNP B-NP B-PER\nsaid VBD B-VP O\n")
    data = load_task_data(DataConfig(source=str(tmp_path)))
    assert data.task == "token-classification"
    assert data.label_names == ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]
    assert data.train.labels == [[1, 4, 0, 4], [2, 3]]
    assert data.dev.texts == [["Peter", "said"]] and data.dev.labels == [[2, 4]]
    assert data.train.sentences[1] == "Peter Blackburn"


def test_dev_tag_unknown_to_training_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "train.txt", "EU B-ORG\nsaid O\n")
    write(tmp_path, "dev.txt", "Paris B-LOC\n")
    with pytest.raises(UserError, match="dev data has tags B-LOC that the training data never"):
        load_task_data(DataConfig(source=str(tmp_path)))


def test_without_dev_file_sentences_are_held_out(tmp_path: Path) -> None:
    text = "".join(f"w{k} O\nx{k} B-PER\n\n" for k in range(20))
    path = write(tmp_path, "all.conll", text)
    data = load_task_data(DataConfig(source=str(path), dev_fraction=0.25))
    assert (len(data.train), len(data.dev)) == (15, 5)
    assert data.notes == ["no dev file: held out 5 training sentences (seed 42)"]
    seen = {words[0] for words in data.train.texts} | {words[0] for words in data.dev.texts}
    assert len(seen) == 20


def test_labels_follow_a_teachers_order() -> None:
    train = Split([["a", "b"]], [[0, 1]], task="token-classification")
    dev = Split([["c"]], [[1]], task="token-classification")
    data = TaskData(train, dev, ["B-PER", "O"], "mem")
    data.use_label_order(["O", "B-LOC", "B-PER"])
    assert data.train.labels == [[2, 0]] and data.dev.labels == [[0]]
    assert data.label_names == ["O", "B-LOC", "B-PER"]


def test_task_and_tag_column_settings_are_checked(tmp_path: Path, sst2_dir: Path) -> None:
    with pytest.raises(UserError, match=r"--tag-column .* one label per text"):
        load_task_data(DataConfig(source=str(sst2_dir), tag_column=2))
    with pytest.raises(UserError, match="holds tagged words; task-agnostic"):
        load_task_data(DataConfig(source=str(CONLL)), labelled=False)


def test_real_conll2003() -> None:
    data = load_task_data(DataConfig(source=str(CONLL)))
    assert (len(data.train), len(data.dev)) == (14041, 3250)
    assert sum(len(words) for words in data.train.texts) == 203621
    assert data.label_names == CONLL_TAGS


def test_hub_data_set_with_class_label_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub set shaped like `conll2003`: tokens and `ner_tags` ids named by a class-label
    feature (built here, no hub), read as tag names; the set is recognised by its columns."""
    import datasets

    names = ["O", "B-PER", "I-PER", "B-LOC"]
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
    })  # fmt: skip
    train = {"tokens": [["Peter", "Blackburn", "ran"], ["in", "Paris"]],
             "ner_tags": [[1, 2, 0], [0, 3]]}  # fmt: skip
    dev = {"tokens": [["Paris"]], "ner_tags": [[3]]}
    hub = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(train, features=features),
        "validation": datasets.Dataset.from_dict(dev, features=features),
    })  # fmt: skip
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None: hub)
    data = load_task_data(DataConfig(source="hf:conll2003"))
    assert data.task == "token-classification"
    assert data.label_names == ["B-LOC", "B-PER", "I-PER", "O"]
    assert data.train.labels == [[1, 2, 3], [3, 0]] and data.dev.labels == [[0]]
    bad = {"tokens": [["a", "b"]], "ner_tags": [[0, 2]]}  # I-PER after O
    hub["validation"] = datasets.Dataset.from_dict(bad, features=features)
    with pytest.raises(UserError, match=r"hf:conll2003 \(validation\) row 1: word 2 .* I-PER"):
        load_task_data(DataConfig(source="hf:conll2003"))
