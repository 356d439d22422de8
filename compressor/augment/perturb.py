"""The cheap perturbations (Tang et al. 2019, sec. 3.1: [MASK] substitution, n-gram
sampling) and the seeded draws every method shares, so a copy depends only on its
(example, copy) seed."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TypeVar

from compressor.recipe import AugmentConfig

T = TypeVar("T")
TEXT_METHODS = ("replace", "mask", "ngram")  # the methods for texts; tagged words: `tagged`
Position = tuple[int, int]  # (example index, word index)


def seeded_rng(seed: int, example: int, copy: int) -> random.Random:
    """One generator per copy (string seeds hash stably across processes), so a copy's
    draws do not depend on which other copies or examples exist."""
    return random.Random(f"{seed}:{example}:{copy}")


def chosen_words(n_words: int, rng: random.Random, prob: float) -> list[int]:
    """TinyBERT's per-word coin with probability p_t: the words to replace."""
    return [j for j in range(n_words) if rng.random() < prob]


def copy_methods(cfg: AugmentConfig) -> Iterator[tuple[int, str]]:
    """(copy index, method): copies cycle through the methods."""
    for copy in range(cfg.per_example):
        yield copy, cfg.methods[copy % len(cfg.methods)]


def replace_positions(texts: list[str], cfg: AugmentConfig) -> set[Position]:
    """Every word some 'replace' copy will swap: its candidates are computed once (as in
    TinyBERT's script) and shared by all copies of the example."""
    return {
        (i, j)
        for i, text in enumerate(texts)
        for copy, method in copy_methods(cfg)
        if method == "replace"
        for j in chosen_words(len(text.split()), seeded_rng(cfg.seed, i, copy), cfg.replace_prob)
    }


def ngram_sample(words: list[str], rng: random.Random, prob: float, n_max: int) -> list[str]:
    """Tang et al.'s n-gram sampling: with probability p_ng, a random n-gram of the
    sentence, n uniform in 1..n_max (capped at its length)."""
    if not words or rng.random() >= prob:
        return words
    n = rng.randint(1, min(n_max, len(words)))
    start = rng.randint(0, len(words) - n)
    return words[start : start + n]


def generate(
    texts: list[str],
    cfg: AugmentConfig,
    candidates: dict[Position, list[str]],
    mask_token: str | None,
) -> list[tuple[int, str]]:
    """(source example, augmented text) for every copy that differs from its original."""
    copies = []
    for i, text in enumerate(texts):
        words = text.split()
        for copy, method in copy_methods(cfg):
            rng = seeded_rng(cfg.seed, i, copy)
            if method == "replace":  # same draws as replace_positions, then the picks
                new = list(words)
                for j in chosen_words(len(words), rng, cfg.replace_prob):
                    if candidates.get((i, j)):
                        new[j] = rng.choice(candidates[(i, j)])
            elif method == "mask":
                new = [mask_token if rng.random() < cfg.mask_prob else w for w in words]
            else:
                new = ngram_sample(words, rng, cfg.ngram_prob, cfg.ngram_max)
            if new != words:
                copies.append((i, " ".join(new)))
    return copies


def capped(copies: list[T], cfg: AugmentConfig) -> list[T]:
    """A seeded subset of `max_examples` copies, in their original order."""
    if cfg.max_examples is None or len(copies) <= cfg.max_examples:
        return copies
    keep = sorted(random.Random(cfg.seed).sample(range(len(copies)), cfg.max_examples))
    return [copies[k] for k in keep]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
