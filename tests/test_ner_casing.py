"""The uncased-teacher estimate: strict mentions, which words casing would have told apart,
the recall arithmetic on a hand-worked case, and the published table on real CoNLL-2003
sentences with a tiny tagger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.experiments import ner_casing
from benchmarks.experiments.ner_casing import capitalised, estimate, mentions, mostly_outside
from tests.conftest import save_tagger
from tests.test_results import assert_published


def test_mentions_are_strict_iob2() -> None:
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "B-ORG", "I-ORG", "I-PER"]
    assert mentions(tags) == {(0, 2, "PER"), (4, 5, "LOC"), (5, 7, "ORG")}
    assert mentions([]) == set() and mentions(["B-MISC"]) == {(0, 1, "MISC")}


def test_words_casing_would_tell_apart() -> None:
    sentences = [["the", "cup", "final"], ["World", "Cup"], ["cup", "of", "tea"]]
    tags = [["O", "O", "O"], ["B-MISC", "I-MISC"], ["O", "O", "O"]]
    # "cup": O three times, inside once; "world": inside only
    assert mostly_outside(sentences, tags) == {"the", "cup", "final", "of", "tea"}
    assert capitalised("Cup") and capitalised("(Bush") and not capitalised("cup")
    assert not capitalised("1998") and not capitalised("(")


def test_estimate_lifts_recall_of_ambiguous_mentions_to_the_others() -> None:
    """10 gold mentions, 2 case-ambiguous (1 found), 8 others (6 found), 8 predicted: P 7/8,
    R 7/10; the ambiguous ones at the others' 3/4 would add 0.5 of a mention: R 7.5/10."""
    gold = [{(k, k + 1, "PER") for k in range(10)}]
    predicted = [{(0, 1, "PER"), *((k, k + 1, "PER") for k in range(2, 8)), (20, 21, "PER")}]
    ambiguous = [{(0, 1, "PER"), (1, 2, "PER")}]
    result = estimate(gold, predicted, ambiguous)
    assert (result["precision"], result["recall"]) == (pytest.approx(7 / 8), pytest.approx(0.7))
    assert result["recall_ambiguous"] == 0.5 and result["recall_other"] == 0.75
    p, r = 7 / 8, 0.75
    assert result["f1_if_recalled_like_the_rest"] == pytest.approx(2 * p * r / (p + r))
    f1 = 2 * p * 0.7 / (p + 0.7)
    assert result["estimated_cost_points"] == pytest.approx(100 * (2 * p * r / (p + r) - f1))


def test_the_table_on_real_sentences(
    conll_subset: Path, tagger_backbone: Path, tmp_path: Path
) -> None:
    save_tagger(tagger_backbone, tmp_path / "bench" / "teacher" / "model", seed=0)
    results = tmp_path / "results"
    results.mkdir()
    ner_casing.main([str(tmp_path / "bench"), "--conll", str(conll_subset)], results=results)
    payload = json.loads((tmp_path / "bench" / "casing.json").read_text())
    assert payload["mentions"] > 40 and 0 < payload["case_ambiguous"] < payload["mentions"]
    assert all(isinstance(e, str) and e for e in payload["examples"])
    published = assert_published(results / "bench-ner-casing.md", tmp_path / "bench" / "casing.md")
    assert "| estimated cost of lowercasing" in published
