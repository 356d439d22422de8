"""Tag-preserving augmentation (Dai & Adel 2020) on real CoNLL-2003 sentences: segments cut
by hand-worked cases, each method keeps the tags right (LwTR swaps words within a tag, MR
swaps mentions within a type and rebuilds B-/I-, SiS shuffles within a segment), copies are
seeded, and `augment_split` appends them with the teacher's per-word logits cached."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from compressor.augment import augment_split
from compressor.augment.perturb import seeded_rng
from compressor.augment.tagged import TagPool, generate_tagged, segments
from compressor.data import Split, TaskData, load_task_data
from compressor.errors import UserError
from compressor.models import load_classifier
from compressor.recipe import AugmentConfig, DataConfig
from compressor.teacher_outputs import cache_dir, teacher_logits
from tests.conftest import CONLL_TAGS, save_tagger


@pytest.fixture(scope="module")
def conll(conll_subset: Path) -> TaskData:
    return load_task_data(DataConfig(source=str(conll_subset)))


def names(data: TaskData, tags: list[int]) -> list[str]:
    return [data.label_names[t] for t in tags]


def mentions(tags: list[str]) -> list[tuple[int, int, str]]:
    return [(s, e, tags[s][2:]) for s, e in segments(tags) if tags[s] != "O"]


def test_segments_are_mentions_and_runs_of_o() -> None:
    tags = ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "I-MISC", "B-PER", "I-PER", "I-ORG"]
    assert segments(tags) == [(0, 1), (1, 2), (2, 3), (3, 6), (6, 8), (8, 10), (10, 11)]
    assert segments(["O"]) == [(0, 1)] and segments([]) == []


def test_token_replacement_keeps_tags_and_draws_words_of_the_same_tag(conll: TaskData) -> None:
    sentences = list(zip(conll.train.texts, conll.train.labels, strict=True))
    pool = TagPool(sentences, conll.label_names)
    seen = {t: set(ws) for t, ws in pool.words.items()}
    changed = 0
    for i, (words, tags) in enumerate(sentences[:60]):
        new, new_tags = pool.token(words, tags, seeded_rng(1, i, 0), 1.0)
        assert new_tags == tags and len(new) == len(words)
        assert all(w in seen[t] for w, t in zip(new, tags, strict=True))
        changed += sum(a != b for a, b in zip(new, words, strict=True))
    assert changed > 300  # at p = 1 nearly every word is redrawn
    words, tags = sentences[0]
    assert pool.token(words, tags, seeded_rng(1, 0, 0), 0.0) == (words, tags)


def test_mention_replacement_swaps_within_a_type_and_rebuilds_tags(conll: TaskData) -> None:
    sentences = list(zip(conll.train.texts, conll.train.labels, strict=True))
    pool = TagPool(sentences, conll.label_names)
    known = {kind: {tuple(m) for m in ms} for kind, ms in pool.mentions.items()}
    assert set(known) == {"PER", "LOC", "ORG", "MISC"}
    grew = 0
    for i, (words, tags) in enumerate(sentences):
        new, new_tags = pool.mention(words, tags, seeded_rng(2, i, 0), 1.0)
        old_tags, fresh = names(conll, tags), names(conll, new_tags)
        assert len(new) == len(new_tags)
        # the same sequence of types and O segments, each mention one of its type, IOB2
        assert [k for *_, k in mentions(old_tags)] == [k for *_, k in mentions(fresh)]
        for start, end, kind in mentions(fresh):
            assert tuple(new[start:end]) in known[kind]
            assert fresh[start:end] == [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        o_words = [w for w, t in zip(words, old_tags, strict=True) if t == "O"]
        assert o_words == [w for w, t in zip(new, fresh, strict=True) if t == "O"]
        grew += len(new) != len(words)
    assert grew > 20  # mentions of other lengths came in


def test_shuffle_keeps_each_segments_words_and_the_tags(conll: TaskData) -> None:
    sentences = list(zip(conll.train.texts, conll.train.labels, strict=True))
    pool = TagPool(sentences, conll.label_names)
    moved = 0
    for i, (words, tags) in enumerate(sentences):
        new, new_tags = pool.shuffle(words, tags, seeded_rng(3, i, 0), 1.0)
        assert new_tags == tags
        for start, end in segments(names(conll, tags)):
            assert Counter(new[start:end]) == Counter(words[start:end])
        moved += new != words
    assert moved > 100


def test_copies_cycle_methods_are_seeded_and_drop_unchanged(conll: TaskData) -> None:
    sentences = list(zip(conll.train.texts, conll.train.labels, strict=True))[:40]
    cfg = AugmentConfig(enabled=True, methods=["token", "mention", "shuffle"], per_example=3)
    copies = generate_tagged(sentences, conll.label_names, cfg)
    assert copies == generate_tagged(sentences, conll.label_names, cfg)
    assert 40 < len(copies) <= 120
    assert all(words != sentences[i][0] for i, words, _ in copies)
    other = generate_tagged(sentences, conll.label_names, cfg.model_copy(update={"seed": 7}))
    assert other != copies
    # one example's copies do not depend on the others (beyond the pool they draw from)
    alone = [c for c in copies if c[0] == 5]
    assert alone and all(c in copies for c in alone)


def test_augment_split_appends_copies_and_caches_teacher_logits(
    conll: TaskData, tagger_backbone: Path, tmp_path: Path
) -> None:
    assert conll.label_names == CONLL_TAGS
    teacher_dir = save_tagger(tagger_backbone, tmp_path / "teacher", seed=0)
    train = conll.train.take(30)
    cfg = AugmentConfig(enabled=True, methods=["mention", "token"], per_example=2)
    grown, info = augment_split(train, teacher_dir, cfg, tmp_path / "aug", max_length=64,
                                logits_root=tmp_path / "logits",
                                label_names=conll.label_names)  # fmt: skip
    assert not info["cached"] and info["original"] == 30 and info["augmented"] == len(grown) - 30
    assert grown.task == "token-classification" and grown.texts[:30] == train.texts
    assert all(len(w) == len(t) for w, t in zip(grown.texts, grown.labels, strict=True))
    # the teacher's per-word logits of every copy are in the cache the distiller reads
    teacher, tokenizer = load_classifier(teacher_dir)
    folder = cache_dir(tmp_path / "logits", teacher_dir, 64)
    stamp = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    rows = teacher_logits(teacher, tokenizer, grown.select(range(30, len(grown))), folder,
                          max_length=64)  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == stamp  # nothing computed
    assert [len(r) for r in rows] == [len(w) for w in grown.texts[30:]]
    again, info = augment_split(train, teacher_dir, cfg, tmp_path / "aug", max_length=64,
                                label_names=conll.label_names)  # fmt: skip
    assert info["cached"] and again.texts == grown.texts and again.labels == grown.labels
    texts = Split(["a fine film", "a dull one"], [1, 0])
    with pytest.raises(UserError, match=r"methods mention cannot augment sequence-classification "
                       r"data — use replace, mask, ngram instead"):  # fmt: skip
        augment_split(texts, teacher_dir, AugmentConfig(enabled=True, methods=["mention"]),
                      tmp_path / "aug")  # fmt: skip
    with pytest.raises(UserError, match=r"augment\.methods replace cannot augment token-"):
        augment_split(train, teacher_dir, AugmentConfig(enabled=True), tmp_path / "aug",
                      label_names=conll.label_names)  # fmt: skip
