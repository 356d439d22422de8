"""Vocabulary pruning: keep only the tokens the task's training text uses, plus the
specials, and shrink the word-embedding table with them.

In small BERTs the embedding table is most of the file (11.7 M of all-MiniLM-L6-v2's
22.7 M parameters) and costs no compute, so this is the size win that layer or width
pruning cannot give. The tokenizer gets a vocabulary of the kept tokens in their old order,
so every training sentence encodes to the same tokens under new ids and the model computes
exactly what it did; a word-piece absent from the training text becomes [UNK].
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor.errors import UserError

# The kept rows are copied, not recomputed: the same tokens give bit-identical logits, so
# anything above float noise means some sentence now encodes to other tokens.
SAME_LOGITS_TOLERANCE = 1e-4


def used_token_ids(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], pairs: list[str] | None
) -> list[int]:
    """Sorted ids of every token the texts encode to, and of the special tokens."""
    used = set(tokenizer.all_special_ids)
    for ids in tokenizer(texts, pairs, truncation=False)["input_ids"]:
        used.update(ids)
    return sorted(used)


def check_supported(tokenizer: PreTrainedTokenizerBase) -> None:
    """Only WordPiece vocabularies can be cut token by token (BPE merges refer to tokens)."""
    kind = tokenizer.backend_tokenizer.model.__class__.__name__ if tokenizer.is_fast else "slow"
    if kind != "WordPiece":
        raise UserError(
            f"vocabulary pruning supports WordPiece tokenizers (BERT family), not this {kind} "
            "tokenizer — set vocab.prune: false"
        )


def _rebuilt_tokenizer(
    tokenizer: PreTrainedTokenizerBase, keep: list[int]
) -> PreTrainedTokenizerBase:
    """The same tokenizer class and settings over the kept tokens, in their old order."""
    tokens = tokenizer.convert_ids_to_tokens(keep)
    settings = {
        k: v
        for k, v in tokenizer.init_kwargs.items()
        if k not in ("vocab_file", "tokenizer_file", "name_or_path")
    }
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        return type(tokenizer)(vocab_file=str(vocab), **settings)


def prune_vocabulary(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    pairs: list[str] | None = None,
) -> tuple[PreTrainedTokenizerBase, dict]:
    """Shrink `model`'s word embeddings in place to the tokens `texts` use; return the
    matching tokenizer and what was kept."""
    check_supported(tokenizer)
    keep = used_token_ids(tokenizer, texts, pairs)
    new_tokenizer = _rebuilt_tokenizer(tokenizer, keep)
    old = model.get_input_embeddings()
    index = torch.tensor(keep)
    pad = new_tokenizer.pad_token_id
    table = nn.Embedding(len(keep), old.embedding_dim, padding_idx=pad).to(old.weight)
    with torch.no_grad():
        table.weight.copy_(old.weight[index])
    model.set_input_embeddings(table)
    model.config.vocab_size = len(keep)
    model.config.pad_token_id = pad
    return new_tokenizer, {"vocab_before": old.num_embeddings, "vocab_after": len(keep)}


def check_same_logits(max_abs_diff: float, sentences: int) -> None:
    """Refuse a cut vocabulary under which the training text no longer gives the model's
    logits: the rebuilt tokenizer split some sentence differently, and shipping it would
    change predictions silently."""
    if max_abs_diff > SAME_LOGITS_TOLERANCE:
        raise UserError(
            f"vocabulary pruning changed the logits of {sentences} training sentences by up to "
            f"{max_abs_diff:.2e} (tolerance {SAME_LOGITS_TOLERANCE:g}): the rebuilt tokenizer "
            "does not encode them as before, so the student was left uncut — set vocab.prune: "
            "false (drop --prune-vocab)"
        )
