"""What the uncased teacher may cost NER (`make bench-ner-casing`, after `make bench-ner`): an
estimate from the teacher's own errors, not a measurement against a cased teacher (no cased
pre-trained model is available offline here).

Why lowercasing costs: in English news, capitals are the strongest single cue that a word
names something; all-MiniLM-L6-v2 lowercases its input, so "may" the month and "May" the
person, "bush" and "Bush" reach it as one token, and only the context tells them apart.

The estimate: a dev mention is *case-ambiguous* when one of its capitalised words, lowercased,
is tagged O in the training set more often than it is tagged inside an entity ("Cup" in
"World Cup", "Bush"): the mentions that a cased model could tell by their capitals and an
uncased one only by context. The teacher's
recall (strict: type and span exact) on those mentions is compared with its recall on the
others; had it recalled the case-ambiguous ones as well as the rest, with its precision
unchanged, its F1 would rise by the figure reported. That is an upper bound on what casing
would bring through those mentions only: it assumes all of the gap is casing (context may be
harder for them too), and it leaves out false entities on capitalised common words, which
casing can also cause. Writes `casing.md` / `.json` in the bench's output folder and
`benchmarks/results/bench-ner-casing.md` / `.json`.
"""

from __future__ import annotations

import argparse
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

from benchmarks.experiments.ner_compare import RECIPE
from benchmarks.experiments.results import RESULTS, write_results
from compressor import atomic, markdown
from compressor.data import load_task_data
from compressor.inference import predict_logits, predictions
from compressor.recipe import load_recipe
from compressor.tasks import NO_PREDICTION
from compressor.tasks.token import OUTSIDE

RESULTS_NAME = "bench-ner-casing"
Mention = tuple[int, int, str]  # (first word, end, type)


def mentions(tags: list[str]) -> set[Mention]:
    """Strict IOB2 mentions: a B-X and the I-X words after it (an I- without its B- opens
    none, as seqeval's strict mode reads it)."""
    found: set[Mention] = set()
    start, kind = -1, ""
    for j, tag in enumerate([*tags, OUTSIDE]):
        if start >= 0 and tag != f"I-{kind}":
            found.add((start, j, kind))
            start = -1
        if tag.startswith("B-"):
            start, kind = j, tag[2:]
    return found


def capitalised(word: str) -> bool:
    """Whether the word's first letter is a capital: the cue lowercasing erases."""
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and letters[0].isupper()


def mostly_outside(sentences: list[list[str]], tags: list[list[str]]) -> set[str]:
    """Lowercased words tagged O more often than inside an entity in these sentences."""
    outside: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    for words, row in zip(sentences, tags, strict=True):
        for word, tag in zip(words, row, strict=True):
            (outside if tag == OUTSIDE else inside)[word.lower()] += 1
    return {word for word, n in outside.items() if n > inside[word]}


def estimate(gold: list[set[Mention]], predicted: list[set[Mention]],
             ambiguous: list[set[Mention]]) -> dict[str, Any]:  # fmt: skip
    """Recall on case-ambiguous mentions and on the rest, and the F1 with the former
    recalled as the latter, precision unchanged."""
    n_gold = sum(len(g) for g in gold)
    n_pred = sum(len(p) for p in predicted)
    hits = [g & p for g, p in zip(gold, predicted, strict=True)]
    n_amb = sum(len(a) for a in ambiguous)
    amb_hits = sum(len(h & a) for h, a in zip(hits, ambiguous, strict=True))
    other_hits = sum(len(h) for h in hits) - amb_hits
    precision = sum(len(h) for h in hits) / n_pred if n_pred else 0.0
    recall = sum(len(h) for h in hits) / n_gold
    amb_recall = amb_hits / n_amb if n_amb else 0.0
    other_recall = other_hits / (n_gold - n_amb) if n_gold > n_amb else 0.0
    lifted = recall + n_amb * max(other_recall - amb_recall, 0.0) / n_gold

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    return {
        "mentions": n_gold, "case_ambiguous": n_amb, "share_ambiguous": n_amb / n_gold,
        "precision": precision, "recall": recall, "f1": f1(precision, recall),
        "recall_ambiguous": amb_recall, "recall_other": other_recall,
        "f1_if_recalled_like_the_rest": f1(precision, lifted),
        "estimated_cost_points": 100 * (f1(precision, lifted) - f1(precision, recall)),
    }  # fmt: skip


def render(result: dict[str, Any], teacher: Path) -> str:
    pct = "{:.2f}".format
    rows = [
        ["dev mentions", str(result["mentions"])],
        ["case-ambiguous mentions (a word mostly O in training)",
         f"{result['case_ambiguous']} ({pct(100 * result['share_ambiguous'])} %)"],
        ["teacher entity F1 (mentions exact)", pct(100 * result["f1"])],
        ["teacher recall on case-ambiguous mentions", pct(100 * result["recall_ambiguous"])],
        ["teacher recall on the other mentions", pct(100 * result["recall_other"])],
        ["F1 with the former recalled like the latter", pct(
            100 * result["f1_if_recalled_like_the_rest"])],
        ["estimated cost of lowercasing (F1 points, upper bound through these mentions)",
         pct(result["estimated_cost_points"])],
    ]  # fmt: skip
    return (
        f"CoNLL-2003 dev, the uncased teacher `{teacher}`: what casing may cost it, estimated "
        "from its recall on mentions whose words are mostly O in training once lowercased "
        "(no cased teacher is available offline to measure it).\n\n"
        + markdown.table(["figure", "value"], rows)
    )


def main(argv: list[str] | None = None, results: Path = RESULTS) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the NER bench's output folder (its teacher)")
    parser.add_argument("--conll", type=Path, help="CoNLL folder (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=1, help="inference threads")
    args = parser.parse_args(argv)
    overrides = {} if args.conll is None else {"data.source": str(args.conll)}
    cfg = load_recipe(RECIPE, overrides).data
    data = load_task_data(cfg)
    teacher = args.out / "teacher" / "model"
    names = data.label_names

    def tags_of(labels: list[list[int]]) -> list[list[str]]:
        return [[names[t] for t in row] for row in labels]

    flat = predictions(predict_logits(teacher, data.dev.texts, max_length=cfg.max_length,
                                      threads=args.threads))  # fmt: skip
    flat_tags = [OUTSIDE if p == NO_PREDICTION else names[p] for p in flat]
    offsets = [0]
    for words in data.dev.texts:
        offsets.append(offsets[-1] + len(words))
    predicted = [mentions(flat_tags[a:b]) for a, b in pairwise(offsets)]
    gold = [mentions(row) for row in tags_of(data.dev.labels)]
    common = mostly_outside(data.train.texts, tags_of(data.train.labels))
    ambiguous = [
        {m for m in row if any(capitalised(w) and w.lower() in common for w in words[m[0] : m[1]])}
        for row, words in zip(gold, data.dev.texts, strict=True)
    ]
    result = estimate(gold, predicted, ambiguous)
    examples = sorted({" ".join(words[m[0] : m[1]]) for row, words in
                       zip(ambiguous, data.dev.texts, strict=True) for m in row})[:20]  # fmt: skip
    payload = {**result, "teacher": str(teacher), "examples": examples}
    atomic.write_json(args.out / "casing.json", payload)
    text = render(result, teacher)
    atomic.write_text(args.out / "casing.md", text)
    write_results(RESULTS_NAME, text, payload, folder=results)
    print(text)


if __name__ == "__main__":
    main()
