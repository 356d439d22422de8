"""Augmentation (TinyBERT sec. 3.3; Tang et al. 2019 sec. 3.1) on tiny local models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizerFast,
)
from transformers.modeling_outputs import MaskedLMOutput

from compressor import augment
from compressor.augment import augment_split
from compressor.augment import replace as augment_replace
from compressor.data import Split
from compressor.errors import UserError
from compressor.recipe import AugmentConfig
from tests.conftest import SPECIALS, save_variant, sst2_rows

N = 12
MLM_TARGETS = ("good", "bad", "funny")


def _cfg(**changes: object) -> AugmentConfig:
    return AugmentConfig(enabled=True, **changes)


@pytest.fixture(scope="module")
def single() -> Split:
    rows = sst2_rows("dev", N)
    return Split([text for text, _ in rows], [label for _, label in rows])


@pytest.fixture(scope="module")
def paired(single: Split) -> Split:
    """Pair texts name their example, so each augmented copy can be traced to its source."""
    return Split(single.texts, single.labels, [f"pair {i}" for i in range(N)])


@pytest.fixture(scope="module")
def spread_teacher(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wide initialisation, so the teacher's argmax is not the same class everywhere."""
    return save_variant(
        tiny_teacher_dir, tmp_path_factory.mktemp("spread"), seed=3, initializer_range=0.5
    )


@pytest.fixture(scope="module")
def mlm_dir(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A masked LM whose output bias makes MLM_TARGETS its top-3 guesses everywhere."""
    out = tmp_path_factory.mktemp("mlm")
    tok = BertTokenizerFast.from_pretrained(tiny_teacher_dir)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig.from_pretrained(tiny_teacher_dir))
    with torch.no_grad():
        for rank, word in enumerate(MLM_TARGETS):
            model.cls.predictions.bias[tok.convert_tokens_to_ids(word)] = 1e4 - rank
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _augmented(out: Split) -> list[tuple[int, str, int]]:
    """(source example, text, label) of each augmented copy of a `paired` split."""
    assert out.pairs is not None
    return [
        (int(pair.split()[1]), text, label)
        for text, pair, label in zip(out.texts[N:], out.pairs[N:], out.labels[N:], strict=True)
    ]


def _nearest(embeddings: torch.Tensor, piece: int, k: int, specials: int = 5) -> list[int]:
    """Top-k cosine neighbours of a piece, itself and the special tokens excluded."""
    unit = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    sims = unit @ unit[piece]
    sims[:specials] = -torch.inf
    sims[piece] = -torch.inf
    return sims.topk(k).indices.tolist()


def test_seeded_originals_first_methods_cycle(
    single: Split, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    cfg = _cfg(methods=["replace", "mask", "ngram"], per_example=3, mask_prob=1.0, ngram_prob=1)
    out, info = augment_split(single, tiny_teacher_dir, cfg, tmp_path / "a")
    again, _ = augment_split(single, tiny_teacher_dir, cfg, tmp_path / "b")
    other, _ = augment_split(
        single, tiny_teacher_dir, cfg.model_copy(update={"seed": 7}), tmp_path / "c"
    )
    assert (out.texts, out.labels) == (again.texts, again.labels)
    assert out.texts != other.texts
    assert out.pairs is None
    assert out.texts[:N] == single.texts and out.labels[:N] == single.labels
    assert info["original"] == N and info["augmented"] == len(out) - N <= 3 * N
    assert info["methods"] == ["replace", "mask", "ngram"] and info["cached"] is False
    # copy 1 of every example is the all-[MASK] one: exactly one per example
    all_masked = [len(t.split()) for t in out.texts[N:] if set(t.split()) == {"[MASK]"}]
    assert sorted(all_masked) == sorted(len(t.split()) for t in single.texts)


@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
def test_mask_replaces_words_by_the_mask_token(
    prob: float, paired: Split, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    cfg = _cfg(methods=["mask"], per_example=4, mask_prob=prob)
    out, info = augment_split(paired, tiny_teacher_dir, cfg, tmp_path)
    copies = _augmented(out)
    masked = total = 0
    for source, text, _ in copies:
        words, new = paired.texts[source].split(), text.split()
        assert len(new) == len(words)
        assert all(n in (w, "[MASK]") for w, n in zip(words, new, strict=True))
        masked += sum(n == "[MASK]" != w for w, n in zip(words, new, strict=True))
        total += len(words)
    if prob == 0.0:
        assert info["augmented"] == 0 and out.texts == paired.texts
    elif prob == 1.0:
        assert info["augmented"] == 4 * N and masked == total
        assert [source for source, _, _ in copies] == [i for i in range(N) for _ in range(4)]
    else:
        assert 0.4 < masked / total < 0.6


def test_ngram_samples_contiguous_spans(
    paired: Split, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    cfg = _cfg(methods=["ngram"], per_example=5, ngram_prob=1.0, ngram_max=3)
    out, info = augment_split(paired, tiny_teacher_dir, cfg, tmp_path / "on")
    lengths = set()
    for source, text, _ in _augmented(out):
        words, span = paired.texts[source].split(), text.split()
        lengths.add(len(span))
        assert any(words[s : s + len(span)] == span for s in range(len(words) - len(span) + 1)), (
            text
        )
    assert lengths == {1, 2, 3}
    assert info["augmented"] >= 4 * N  # only spans equal to a (<= 3-word) sentence drop
    off, info = augment_split(
        paired, tiny_teacher_dir, cfg.model_copy(update={"ngram_prob": 0.0}), tmp_path / "off"
    )
    assert info["augmented"] == 0 and off.texts == paired.texts


def test_augmented_labels_are_the_teachers_argmax_and_pairs_are_kept(
    paired: Split, spread_teacher: Path, tmp_path: Path
) -> None:
    cfg = _cfg(methods=["replace", "mask", "ngram"], per_example=4, ngram_prob=1.0)
    out, _ = augment_split(paired, spread_teacher, cfg, tmp_path, max_length=32, batch_size=5)
    assert out.labels[:N] == paired.labels and out.pairs[:N] == paired.pairs
    model = BertForSequenceClassification.from_pretrained(spread_teacher).eval()
    tok = BertTokenizerFast.from_pretrained(spread_teacher)
    copies = _augmented(out)
    assert len(copies) > 2 * N
    with torch.no_grad():
        for source, text, label in copies:
            enc = tok(text, f"pair {source}", truncation=True, max_length=32, return_tensors="pt")
            assert label == model(**enc).logits.argmax(-1).item(), text
    assert {label for _, _, label in copies} == {0, 1}


def test_second_call_loads_from_cache_without_models(
    single: Split, tiny_teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    cfg = _cfg(methods=["replace", "mask"], per_example=2)
    out, info = augment_split(single, teacher, cfg, tmp_path / "cache")
    lines = Path(info["path"]).read_text("utf-8").splitlines()
    assert len(lines) == info["augmented"] > 0
    assert Path(info["path"]).with_suffix(".json").is_file()

    def no_models(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(augment, "load_classifier", no_models)
    monkeypatch.setattr(augment_replace, "load_mlm", no_models)
    cached, cached_info = augment_split(single, teacher, cfg, tmp_path / "cache")
    assert (cached.texts, cached.labels, cached.pairs) == (out.texts, out.labels, out.pairs)
    assert cached_info == info | {"cached": True}
    with pytest.raises(AssertionError, match="a model was loaded"):  # the recipe is in the key
        augment_split(single, teacher, cfg.model_copy(update={"seed": 1}), tmp_path / "cache")
    with pytest.raises(AssertionError, match="a model was loaded"):  # so is max_length
        augment_split(single, teacher, cfg, tmp_path / "cache", max_length=64)
    os.utime(teacher / "model.safetensors", ns=(1, 1))  # a re-saved teacher invalidates it
    with pytest.raises(AssertionError, match="a model was loaded"):
        augment_split(single, teacher, cfg, tmp_path / "cache")


def test_classifier_without_mlm_head_uses_embedding_neighbours(
    paired: Split, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    cfg = _cfg(methods=["replace"], per_example=1, replace_prob=1.0, candidates=1)
    out, info = augment_split(paired, tiny_teacher_dir, cfg, tmp_path)
    assert info["candidate_source"] == "embedding-neighbours"
    model = BertForSequenceClassification.from_pretrained(tiny_teacher_dir)
    tok = BertTokenizerFast.from_pretrained(tiny_teacher_dir)
    embeddings = model.get_input_embeddings().weight.detach()
    copies = {source: text for source, text, _ in _augmented(out)}
    for i, text in enumerate(paired.texts):
        expected = []
        for word in text.split():
            first = tok.tokenize(word)[0]  # every word, also several pieces, by its first
            if first == tok.unk_token:
                expected.append(word)
            else:
                (best,) = _nearest(embeddings, tok.convert_tokens_to_ids(first), 1)
                expected.append(tok.convert_ids_to_tokens(best))
        assert copies[i] == " ".join(expected)


@pytest.mark.parametrize("teacher_has_head", [False, True])
def test_masked_lm_proposes_its_top_k(
    teacher_has_head: bool,
    paired: Split,
    tiny_teacher_dir: Path,
    mlm_dir: Path,
    tmp_path: Path,
) -> None:
    """Single-piece words take one of the MLM's top-3 (uniformly); multi-piece words one of
    their first piece's 3 nearest neighbours in the MLM's embeddings; unknown words stay.
    The short window (max_length 16) also exercises masking words past the first 14 pieces."""
    cfg = _cfg(
        methods=["replace"],
        per_example=4,
        replace_prob=1.0,
        candidates=3,
        mlm_model=None if teacher_has_head else str(mlm_dir),
    )
    teacher = mlm_dir if teacher_has_head else tiny_teacher_dir
    out, info = augment_split(paired, teacher, cfg, tmp_path, max_length=16)
    assert info["candidate_source"] == "mlm"
    tok = BertTokenizerFast.from_pretrained(mlm_dir)
    embeddings = BertForMaskedLM.from_pretrained(mlm_dir).get_input_embeddings().weight.detach()
    copies = _augmented(out)
    assert len(copies) == 4 * N
    picked, multi = set(), 0
    for source, text, _ in copies:
        for word, new in zip(paired.texts[source].split(), text.split(), strict=True):
            pieces = tok.tokenize(word)
            if pieces == [tok.unk_token]:
                assert new == word
            elif len(pieces) == 1:
                assert new in MLM_TARGETS
                picked.add(new)
            elif pieces[0] != tok.unk_token:
                multi += 1
                near = _nearest(embeddings, tok.convert_tokens_to_ids(pieces[0]), 3)
                assert new in tok.convert_ids_to_tokens(near), word
    assert picked == set(MLM_TARGETS) and multi > 0


def test_masked_lm_reads_the_sentence_with_the_word_masked(
    paired: Split,
    tiny_teacher_dir: Path,
    mlm_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in MLM that predicts, at every position, the piece before it: the proposal
    for a masked word must then be the previous word's last piece, also for words past a
    16-piece window, which proves the mask sits at the word inside the right window."""
    tok = BertTokenizerFast.from_pretrained(mlm_dir)
    vocab = len(tok)

    def previous_piece(self: BertForMaskedLM, input_ids: torch.Tensor, **_: object) -> object:
        assert input_ids.shape[1] <= 16
        assert ((input_ids == tok.mask_token_id).sum(1) == 1).all()
        logits = torch.nn.functional.one_hot(input_ids.roll(1, dims=1), vocab).float()
        return MaskedLMOutput(logits=logits)

    monkeypatch.setattr(BertForMaskedLM, "forward", previous_piece)
    cfg = _cfg(
        methods=["replace"], per_example=1, replace_prob=1.0, candidates=1, mlm_model=str(mlm_dir)
    )
    out, _ = augment_split(paired, tiny_teacher_dir, cfg, tmp_path, max_length=16)
    copies = {source: text.split() for source, text, _ in _augmented(out)}
    first_word_piece = tok.convert_ids_to_tokens(5)  # ids 0-4 are the special tokens
    checked = 0
    for i, text in enumerate(paired.texts):
        before = tok.cls_token
        for word, new in zip(text.split(), copies[i], strict=True):
            pieces = tok.tokenize(word)
            if len(pieces) == 1 and pieces != [tok.unk_token]:
                assert new == (first_word_piece if before in SPECIALS else before), (i, word)
                checked += 1
            before = pieces[-1]
    assert checked > 100


def test_mlm_model_without_a_head_is_refused(
    single: Split, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    cfg = _cfg(methods=["replace"], mlm_model=str(tiny_teacher_dir))
    with pytest.raises(UserError, match="has no masked-LM head"):
        augment_split(single, tiny_teacher_dir, cfg, tmp_path)


def test_max_examples_caps_with_a_seeded_subset(
    paired: Split, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    cfg = _cfg(methods=["mask"], per_example=4, mask_prob=0.5)
    full, full_info = augment_split(paired, tiny_teacher_dir, cfg, tmp_path)
    capped_cfg = cfg.model_copy(update={"max_examples": 5})
    capped, info = augment_split(paired, tiny_teacher_dir, capped_cfg, tmp_path)
    assert full_info["augmented"] > 5 and info["augmented"] == 5 and len(capped) == N + 5
    rows = list(zip(full.texts, full.pairs, full.labels, strict=True))[N:]
    kept = list(zip(capped.texts, capped.pairs, capped.labels, strict=True))[N:]
    assert kept == [row for row in rows if row in kept]  # a subset, in order
    again, _ = augment_split(paired, tiny_teacher_dir, capped_cfg, tmp_path / "again")
    assert again.texts == capped.texts


def test_labelling_logs_its_progress_without_a_terminal(
    single: Split,
    tiny_teacher_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("COMPRESSOR_LOG_EVERY_S", "0")
    out, _ = augment_split(single, tiny_teacher_dir, _cfg(methods=["mask"], per_example=2),
                           tmp_path, batch_size=8)  # fmt: skip
    copies = len(out) - N
    lines = [line for line in capsys.readouterr().out.splitlines() if "teacher logits" in line]
    done = [int(line.split(": ")[1].split("/")[0]) for line in lines]
    assert copies > 8 and done == [*range(8, copies, 8), copies]  # a line per batch of 8
    assert all(f"/{copies}, " in line and " examples/s, ETA " in line for line in lines)
