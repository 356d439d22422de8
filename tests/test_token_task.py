"""The token-classification task: word pieces aligned with tags by hand-worked examples, the
metric against hand-computed figures, and word-level logits of a saved model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

from compressor.inference import dev_scores, predict_logits, predict_piece_logits, predictions
from compressor.registry import TASKS
from compressor.tasks import IGNORED, NO_PREDICTION, task_named, task_of_config
from compressor.tasks.token import aligned_labels, entities

TAGS = ["B-LOC", "B-PER", "I-PER", "O"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "new", "york", "##er", "is", "big", "."]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> BertTokenizerFast:
    folder = tmp_path_factory.mktemp("vocab")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: BertTokenizerFast) -> Path:
    folder = tmp_path_factory.mktemp("tagger")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=len(TAGS),
                        id2label=dict(enumerate(TAGS)), initializer_range=0.5)  # fmt: skip
    BertForTokenClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_first_piece_carries_the_tag() -> None:
    assert aligned_labels([None, 0, 1, 1, 2, None], [3, 0, 1]) == [IGNORED, 3, 0, IGNORED, 1,
                                                                   IGNORED]  # fmt: skip


def test_features_align_tags_with_real_word_pieces(tokenizer: BertTokenizerFast) -> None:
    task = task_named("token-classification")
    words = [["New", "Yorker", "is", "big", "."]]
    (feature,) = task.features(words, None, [[0, 0, 3, 3, 3]], tokenizer, max_length=32)
    pieces = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    assert pieces == ["[CLS]", "new", "york", "##er", "is", "big", ".", "[SEP]"]
    assert feature["labels"] == [IGNORED, 0, 0, IGNORED, 3, 3, 3, IGNORED]
    (cut,) = task.features(words, None, [[0, 0, 3, 3, 3]], tokenizer, max_length=5)
    assert cut["labels"] == [IGNORED, 0, 0, IGNORED, IGNORED]  # "york ##er" split by the cut


def test_entity_f1_against_a_hand_computed_case() -> None:
    """Gold: PER over words 0-1 and LOC at 3. The prediction ends PER one word early (a
    boundary error, so no credit) and gets LOC right: precision 1/2, recall 1/2. The second
    sentence's I-PER without B-PER is no entity in strict IOB2, and the word the model never
    saw (NO_PREDICTION) counts as O."""
    names = TAGS
    gold = [[1, 2, 3, 0], [1, 2]]
    pred = np.array([1, 3, 3, 0, 2, NO_PREDICTION])
    scores = task_named("token-classification").score(pred, gold, names)
    assert scores["precision"] == pytest.approx(1 / 2)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["score"] == scores["entity_f1"] == pytest.approx(2 * (1 / 2 * 1 / 3) / (5 / 6))
    assert scores["token_accuracy"] == pytest.approx(3 / 6)
    assert scores["f1_per_type"] == {"LOC": 1.0, "PER": 0.0}


def test_one_models_predictions_score_as_anothers_gold() -> None:
    """What max_drop measures for a tagger: entity F1 against the fp32 file's predictions.
    The fp32 file found PER over words 0-1 and LOC at 3, and never saw the last word; the
    quantized file cuts PER short and keeps LOC: 1 of 2 entities agree both ways."""
    task = task_named("token-classification")
    shape = [[0, 0, 0, 0], [0, 0]]
    fp32 = task.as_labels(np.array([1, 2, 3, 0, 3, NO_PREDICTION]), shape)
    assert fp32 == [[1, 2, 3, 0], [3, NO_PREDICTION]]
    quantized = np.array([1, 3, 3, 0, 3, NO_PREDICTION])
    assert task.score(quantized, fp32, TAGS)["score"] == pytest.approx(1 / 2)
    assert task.score(np.concatenate(fp32), fp32, TAGS)["score"] == 1.0
    sequence = task_named("sequence-classification")
    labels = sequence.as_labels(np.array([1, 0, 1, 1]), [0, 0, 0, 0])
    assert sequence.score(np.array([1, 1, 1, 1]), labels, [])["score"] == 3 / 4


def test_task_is_read_from_architectures() -> None:
    assert task_of_config({"architectures": ["BertForTokenClassification"]}).name == (
        "token-classification"
    )
    assert task_of_config({"architectures": ["BertModel"]}).name == "sequence-classification"
    assert task_of_config({}).name == "sequence-classification"
    assert TASKS.names() == ["sequence-classification", "token-classification"]


def test_word_logits_of_a_saved_tagger(tagger_dir: Path) -> None:
    words = [["New", "Yorker", "is", "big"], ["big", "."]]
    logits = predict_logits(tagger_dir, words, max_length=32)
    assert logits.shape == (6, len(TAGS))
    model = BertForTokenClassification.from_pretrained(tagger_dir).eval()
    tok = BertTokenizerFast.from_pretrained(tagger_dir)
    with torch.no_grad():
        direct = model(**tok("new yorker is big", return_tensors="pt")).logits[0]
    np.testing.assert_allclose(logits[:4], direct[[1, 2, 4, 5]].numpy(), atol=1e-5)
    cut = predict_logits(tagger_dir, words, max_length=4)  # [CLS] new york [SEP]
    assert np.isnan(cut[2:4]).all() and not np.isnan(cut[[0, 1, 4, 5]]).any()
    assert predictions(cut)[2] == NO_PREDICTION


def test_dev_scores_name_their_metric(tagger_dir: Path) -> None:
    from compressor.data import Split

    split = Split([["New", "Yorker"], ["big"]], [[0, 3], [3]], task="token-classification")
    scores = dev_scores(tagger_dir, split, max_length=32)
    assert scores["metric"] == "entity F1"
    assert set(scores) >= {"score", "precision", "recall", "token_accuracy", "f1_per_type"}
    words = predictions(predict_logits(tagger_dir, split.texts, max_length=32))
    assert scores["token_accuracy"] == pytest.approx(np.mean(words == np.array([0, 3, 3])))


def test_entities_merge_words_and_slice_the_text() -> None:
    """Pieces of "Peter Blackburn-Smith went to New York": the second piece of a word takes no
    part in its tag, B- starts and I- of the same type continues an entity, an I- of another
    type starts a new one, and the spans cut the entity out of the text."""
    text = "Peter Blackburn-Smith went to New York"
    names = ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    pieces = [  # (offsets, word, tag, probability); None word = [CLS] / [SEP]
        ((0, 0), None, "O", 1.0),
        ((0, 5), 0, "B-PER", 0.9),
        ((6, 15), 1, "I-PER", 0.7),
        ((15, 16), 2, "I-PER", 0.8),
        ((16, 21), 3, "I-PER", 0.6),
        ((21, 21), 3, "B-LOC", 0.99),  # a second piece: ignored
        ((22, 26), 4, "O", 0.9),
        ((27, 29), 5, "O", 0.9),
        ((30, 33), 6, "I-LOC", 0.5),
        ((34, 38), 7, "I-LOC", 0.7),
        ((0, 0), None, "O", 1.0),
    ]
    probabilities = np.full((len(pieces), len(names)), 0.0)
    for k, (_span, _word, tag, p) in enumerate(pieces):
        probabilities[k, names.index(tag)] = p
        probabilities[k, names.index("O") if tag != "O" else 0] += 1 - p
    found = entities(text, probabilities, [p[0] for p in pieces], [p[1] for p in pieces], names)
    assert [(e.type, e.word, e.start, e.end) for e in found] == [
        ("PER", "Peter Blackburn-Smith", 0, 21),
        ("LOC", "New York", 30, 38),
    ]
    assert found[0].score == pytest.approx((0.9 + 0.7 + 0.8 + 0.6) / 4)
    assert all(text[e.start : e.end] == e.word for e in found)


def test_piece_logits_carry_offsets_into_raw_text(tagger_dir: Path) -> None:
    texts = ["New Yorker is big.", "big"]
    (first, second) = predict_piece_logits(tagger_dir, texts, max_length=32)
    assert [texts[0][a:b] for a, b in first.offsets[1:-1]] == ["New", "York", "er", "is", "big",
                                                               "."]  # fmt: skip
    assert first.word_ids == [None, 0, 1, 1, 2, 3, 4, None]
    assert first.logits.shape == (8, len(TAGS)) and second.logits.shape == (3, len(TAGS))
    direct = predict_logits(tagger_dir, [["New", "Yorker", "is", "big", "."]], max_length=32)
    np.testing.assert_allclose(first.logits[[1, 2, 4, 5, 6]], direct, atol=1e-5)


def test_cached_word_logits_stand_in_for_the_teacher(tagger_dir: Path, tmp_path: Path) -> None:
    """The cache keeps each word's first-piece logits; batched by the task's collator they
    give the distillation loss the teacher's own pass gives, and a second call reads them."""
    from compressor.data import Split
    from compressor.distill.objective import CACHED_LOGITS, DistillObjective
    from compressor.recipe import DistillConfig
    from compressor.teacher_outputs import teacher_logits

    teacher = BertForTokenClassification.from_pretrained(tagger_dir).eval()
    tok = BertTokenizerFast.from_pretrained(tagger_dir)
    split = Split([["New", "Yorker", "is", "big"], ["big", "."]], [[0, 0, 3, 3], [3, 3]],
                  task="token-classification")  # fmt: skip
    rows = teacher_logits(teacher, tok, split, tmp_path, max_length=32)
    assert [r.shape for r in rows] == [(4, len(TAGS)), (2, len(TAGS))]
    words = predict_logits(tagger_dir, split.texts, max_length=32)
    np.testing.assert_allclose(np.concatenate(rows), words, atol=1e-5)
    task = task_named("token-classification")
    features = task.features(split.texts, None, split.labels, tok, max_length=32)
    batch = task.collator(tok)(features)
    cached = task.collator(tok)(
        [{**f, CACHED_LOGITS: r.tolist()} for f, r in zip(features, rows, strict=True)]
    )
    assert cached[CACHED_LOGITS].shape == (6, len(TAGS))
    torch.manual_seed(1)
    student = BertForTokenClassification(teacher.config).eval()
    objective = DistillObjective(teacher, student, DistillConfig(intermediate=[]))
    live, _ = objective(student, dict(batch))
    stored, _ = objective(student, dict(cached))
    assert stored.item() == pytest.approx(live.item(), rel=1e-5)

    def no_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("the teacher ran for cached examples")

    teacher.forward = no_pass  # type: ignore[method-assign]
    again = teacher_logits(teacher, tok, split, tmp_path, max_length=32)
    np.testing.assert_array_equal(np.concatenate(again), np.concatenate(rows))


def test_stored_states_and_token_logits_stand_in_for_the_teacher(
    tagger_dir: Path, tmp_path: Path
) -> None:
    """The default recipe's hidden-state term and per-word KD read the store instead of the
    teacher: one row of logits per stored token, placed back at the batch's real tokens."""
    from compressor.data import Split
    from compressor.distill.objective import DistillObjective
    from compressor.distill.teacher_states import STATE_INDEX, teacher_states
    from compressor.recipe import DistillConfig

    teacher = BertForTokenClassification.from_pretrained(tagger_dir).eval()
    tok = BertTokenizerFast.from_pretrained(tagger_dir)
    split = Split([["New", "Yorker", "is", "big"], ["big", "."], ["York"]],
                  [[0, 0, 3, 3], [3, 3], [0]], task="token-classification")  # fmt: skip
    torch.manual_seed(1)
    student = BertForTokenClassification(teacher.config).eval()
    objective = DistillObjective(teacher, student, DistillConfig())  # KD + hidden MSE
    states, _size = teacher_states(teacher, tagger_dir, tok, split, tmp_path,
                                   layers=objective.teacher_layers, max_length=32,
                                   limit_bytes=2**20)  # fmt: skip
    assert states is not None and states.per_token
    assert states.logits.shape == (7 + 4 + 3, len(TAGS))  # every real token of the three
    objective.use_states(states)
    task = task_named("token-classification")
    rows = [0, 2]
    features = task.features([split.texts[k] for k in rows], None,
                             [split.labels[k] for k in rows], tok, max_length=32)  # fmt: skip
    batch = task.collator(tok)(features)
    live, live_parts = objective(student, dict(batch))

    def no_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("the teacher ran for stored examples")

    teacher.forward = no_pass  # type: ignore[method-assign]
    stored, parts = objective(student, {**batch, STATE_INDEX: torch.tensor(rows)})
    assert live_parts["hidden_mse"] > 0.01
    assert parts["hidden_mse"] == pytest.approx(live_parts["hidden_mse"], rel=2e-3)
    assert parts["soft_kd"] == pytest.approx(live_parts["soft_kd"], rel=1e-4)
    assert stored.item() == pytest.approx(live.item(), rel=2e-3)
