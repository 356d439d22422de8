"""Tag-preserving augmentation of tagged sentences (Dai & Adel, COLING 2020, "An Analysis of
Simple Data Augmentation for Named Entity Recognition", sec. 2), so that token
classification gets a transfer set as sentence classification does (TinyBERT, Tang et al.):
new sentences on which the student learns the teacher's per-word outputs.

The three methods that need nothing beyond the training set, each with the paper's per-unit
binomial draw (probability `augment.tag_prob`):

- `token` (LwTR, label-wise token replacement): each word, with probability p, becomes a
  word drawn from the training set's words of the same tag, in proportion to how often each
  carries that tag; the tag sequence is unchanged.
- `mention` (MR, mention replacement): each entity mention, with probability p, becomes a
  mention of the same type drawn from the training set; the tags follow its length (B-X,
  then I-X).
- `shuffle` (SiS, shuffle within segments): the sentence is cut into segments of one label
  (each mention, each run of O words); each segment, with probability p, has its words
  shuffled; the tag sequence is unchanged.

Where this differs from the paper, and why:

- Synonym replacement (their SR) needs WordNet, which is not here; it is left out.
- The paper trains on the new sentences' tags alone. Here the copies also get the teacher's
  per-word outputs (soft targets, from the logits cache): they are what distillation learns
  from, and the tags stay for the hard term, correct by construction.
- Each copy applies one method, cycling through `augment.methods` (the paper's best setting
  applies them all, one per copy, too); a copy equal to its original is dropped.
"""

from __future__ import annotations

import random
from collections import defaultdict

from compressor.augment.perturb import TEXT_METHODS, copy_methods, seeded_rng
from compressor.recipe import AugmentConfig

TAG_METHODS = ("token", "mention", "shuffle")
Tagged = tuple[list[str], list[int]]  # (words, tag ids)


def misfits(methods: list[str], tagged: bool) -> tuple[list[str], tuple[str, ...]]:
    """The methods made for the other kind of example (a text method would move words away
    from their tags, a tag method needs tags), and the ones that fit this kind."""
    fits = TAG_METHODS if tagged else TEXT_METHODS
    return [m for m in methods if m not in fits], fits


def segments(tags: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each mention (a B- or I- tag opening it, I- of the same type going
    on) and of each run of O words, in order, covering the sentence."""
    spans: list[tuple[int, int]] = []
    for j, tag in enumerate(tags):
        goes_on = j > 0 and (
            (tag == "O" and tags[j - 1] == "O")
            or (tag.startswith("I-") and tags[j - 1] != "O" and tags[j - 1][2:] == tag[2:])
        )
        if goes_on:
            spans[-1] = (spans[-1][0], j + 1)
        else:
            spans.append((j, j + 1))
    return spans


class TagPool:
    """What the replacements are drawn from: every (word, tag) occurrence and every mention
    of the training set, so a draw follows their frequencies there."""

    def __init__(self, sentences: list[Tagged], label_names: list[str]) -> None:
        self.names = label_names
        self.words: dict[int, list[str]] = defaultdict(list)
        self.mentions: dict[str, list[list[str]]] = defaultdict(list)
        for words, tags in sentences:
            for word, tag in zip(words, tags, strict=True):
                self.words[tag].append(word)
            names = [label_names[t] for t in tags]
            for start, end in segments(names):
                if names[start] != "O":
                    self.mentions[names[start][2:]].append(words[start:end])

    def token(self, words: list[str], tags: list[int], rng: random.Random, p: float) -> Tagged:
        """LwTR: tags kept, some words swapped for words of the same tag."""
        new = [rng.choice(self.words[t]) if rng.random() < p else w
               for w, t in zip(words, tags, strict=True)]  # fmt: skip
        return new, list(tags)

    def mention(self, words: list[str], tags: list[int], rng: random.Random, p: float) -> Tagged:
        """MR: some mentions swapped for mentions of their type; tags rebuilt for the new
        lengths."""
        names = [self.names[t] for t in tags]
        ids = {name: k for k, name in enumerate(self.names)}
        new_words: list[str] = []
        new_tags: list[int] = []
        for start, end in segments(names):
            kind = names[start][2:]
            if names[start] == "O" or rng.random() >= p:
                new_words += words[start:end]
                new_tags += tags[start:end]
                continue
            picked = rng.choice(self.mentions[kind])
            new_words += picked
            new_tags += [ids[f"B-{kind}"]] + [ids[f"I-{kind}"]] * (len(picked) - 1)
        return new_words, new_tags

    def shuffle(self, words: list[str], tags: list[int], rng: random.Random, p: float) -> Tagged:
        """SiS: tags kept, the words of some one-label segments shuffled in place."""
        new = list(words)
        for start, end in segments([self.names[t] for t in tags]):
            if end - start > 1 and rng.random() < p:
                part = new[start:end]
                rng.shuffle(part)
                new[start:end] = part
        return new, list(tags)


def generate_tagged(
    sentences: list[Tagged], label_names: list[str], cfg: AugmentConfig
) -> list[tuple[int, list[str], list[int]]]:
    """(source example, words, tags) for every copy that differs from its original; each
    copy's draws depend only on its (example, copy) seed."""
    pool = TagPool(sentences, label_names)
    copies = []
    for i, (words, tags) in enumerate(sentences):
        for copy, method in copy_methods(cfg):
            new_words, new_tags = getattr(pool, method)(
                words, tags, seeded_rng(cfg.seed, i, copy), cfg.tag_prob
            )
            if new_words != words:
                copies.append((i, new_words, new_tags))
    return copies
