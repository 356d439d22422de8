"""Shared fixtures: tiny BERT classifiers built from configs (no hub) and the real data files."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertTokenizerFast,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2 = SHARED_DATA / "sst2"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ORT's KL threshold search loops in Python over every (bins - quantized bins) / 2
# candidate: 2048 bins cost ~25 s per calibration of a 4-layer model here. Tests about the
# QDQ graph, not about where entropy clips, calibrate on 512 bins (5x fewer candidates).
FEW_BINS = {"num_bins": 512, "num_quantized_bins": 128}


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Augmented sets and teacher logits go to a cache of the session's own: a test must not
    find what an earlier session (or the user's runs) left in ~/.cache/compressor."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COMPRESSOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


def sst2_rows(split: str = "dev", limit: int | None = None) -> list[tuple[str, int]]:
    """Rows of the real SST-2 file (quoting disabled, as the data README requires)."""
    rows: list[tuple[str, int]] = []
    with open(SST2 / f"{split}.tsv", encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows.append((rec["sentence"], int(rec["label"])))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def build_tokenizer(out_dir: Path, vocab_words: int = 400) -> BertTokenizerFast:
    """A WordPiece tokenizer whose vocab is the most frequent SST-2 dev words."""
    counts: Counter[str] = Counter()
    for text, _ in sst2_rows("dev"):
        counts.update(re.findall(r"\w+|[^\w\s]", text.lower()))
    vocab = SPECIALS + [w for w, _ in counts.most_common(vocab_words)]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(out_dir / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(out_dir)
    return tok


def build_tiny_bert(
    out_dir: Path, layers: int = 4, hidden: int = 32, heads: int = 4, seed: int = 0
) -> Path:
    """Save a tiny random BERT classifier plus tokenizer as a standard HF folder."""
    tok = build_tokenizer(out_dir)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(out_dir)
    return out_dir


def build_distilbert(folder: Path, vocab_words: int) -> Path:
    """A separately 'pre-trained' DistilBERT with its own WordPiece tokenizer."""
    build_tokenizer(folder, vocab_words)
    tok = DistilBertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(tok), dim=16, n_layers=2, n_heads=4, hidden_dim=32,
                              max_position_embeddings=128)  # fmt: skip
    DistilBertForSequenceClassification(config).save_pretrained(folder)
    return folder


def save_variant(teacher_dir: Path, out_dir: Path, seed: int, **config_changes: object) -> Path:
    """A teacher-shaped model with its own weights, saved with the teacher's tokenizer.

    Default-init (std 0.02) tiny models give near-constant logits, which let order or
    quantization bugs hide; tests pass e.g. `initializer_range=0.3` to spread them.
    """
    config = BertConfig.from_pretrained(teacher_dir)
    for key, value in config_changes.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(out_dir)
    BertTokenizerFast.from_pretrained(teacher_dir).save_pretrained(out_dir)
    return out_dir


def write_sst2_subset(folder: Path, n_train: int, n_dev: int) -> Path:
    """train.tsv / dev.tsv with the first real SST-2 dev rows: small, real, disjoint."""
    lines = (SST2 / "dev.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    (folder / "train.tsv").write_text("\n".join([header, *rows[:n_train]]) + "\n", "utf-8")
    dev = rows[n_train : n_train + n_dev]
    (folder / "dev.tsv").write_text("\n".join([header, *dev]) + "\n", "utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer, hidden-32 BERT classifier folder; read-only for tests (copy to modify)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_teacher"))


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    """The real SST-2 folder from ../shared/data."""
    if not SST2.exists():
        pytest.fail(f"shared data missing at {SST2}: the tests need ../shared/data/sst2")
    return SST2


CONLL = SHARED_DATA / "conll2003"


def conll_sentences(name: str, n: int) -> list[str]:
    """The first `n` sentences of a CoNLL file, as blocks of lines."""
    blocks = (CONLL / name).read_text(encoding="utf-8").strip().split("\n\n")
    return blocks[:n]


CONLL_TAGS = ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]
"""CoNLL-2003's tags in sorted order: the ids a tagger trained on it numbers them by."""


def save_tagger(backbone: Path, folder: Path, seed: int, **config_changes: object) -> Path:
    """An untrained BERT tagger with CoNLL's tags on `backbone`'s config and tokenizer (the
    `tagger_backbone` fixture); `initializer_range=0.3` spreads its logits, as
    `save_variant` does for classifiers."""
    config = BertConfig.from_pretrained(backbone, id2label=dict(enumerate(CONLL_TAGS)),
                                        **config_changes)  # fmt: skip
    torch.manual_seed(seed)
    BertForTokenClassification(config).save_pretrained(folder)
    BertTokenizerFast.from_pretrained(backbone).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def conll_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 160 training and 40 dev sentences of the real CoNLL-2003 files, the dev
    file ending in blank lines as exports often do."""
    folder = tmp_path_factory.mktemp("conll")
    (folder / "train.txt").write_text("\n\n".join(conll_sentences("train.txt", 160)) + "\n")
    (folder / "dev.txt").write_text("\n\n".join(conll_sentences("dev.txt", 40)) + "\n\n\n")
    return folder


@pytest.fixture(scope="session")
def tagger_backbone(tmp_path_factory: pytest.TempPathFactory, conll_subset: Path) -> Path:
    """A tiny random BERT whose vocabulary is the subset's frequent lower-cased words, dev
    words included (so vocabulary pruning to the training text has words to drop)."""
    folder = tmp_path_factory.mktemp("backbone")
    counts: Counter[str] = Counter()
    for name in ("train.txt", "dev.txt"):
        for line in (conll_subset / name).read_text().splitlines():
            if line.strip():
                counts.update(re.findall(r"\w+|[^\w\s]", line.split()[0].lower()))
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + [w for w, _ in counts.most_common(400)]))
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return folder
