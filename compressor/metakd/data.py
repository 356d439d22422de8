"""Examples with a domain: one file per domain, or one file with a domain column.

Every domain is split into train / dev by its own seeded shuffle (the seed and the domain's
name make the order), so adding a domain or changing the target never moves another
domain's examples between train and dev. A few-shot target keeps the first `fraction` of
its shuffled training part, so 10 % is a subset of 20 %.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from compressor.data import SUFFIXES, Split, encode_labels, read_rows
from compressor.errors import UserError
from compressor.recipe import DataConfig


@dataclass
class DomainSplit:
    """One domain's train and dev parts."""

    name: str
    train: Split
    dev: Split


@dataclass
class DomainData:
    """All domains of one task, with labels encoded the same way across them."""

    domains: list[DomainSplit]
    label_names: list[str]
    source: str
    notes: list[str]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.domains]

    def index(self, name: str) -> int:
        """The domain's id, or a UserError naming the domains there are."""
        if name not in self.names:
            raise UserError(
                f"domain {name!r} is not in {self.source} (domains: {', '.join(self.names)}) — "
                "pass one of them with --target-domain"
            )
        return self.names.index(name)

    def joined(self, part: str, only: int | None = None) -> tuple[Split, list[int]]:
        """The `part` ("train" / "dev") of every domain (or of domain `only`) as one split,
        with each example's domain id."""
        texts, labels, pairs, ids = [], [], [], []
        for k, domain in enumerate(self.domains):
            if only is not None and k != only:
                continue
            split: Split = getattr(domain, part)
            texts += split.texts
            labels += split.labels
            pairs += split.pairs or []
            ids += [k] * len(split)
        has_pairs = self.domains[0].train.pairs is not None
        return Split(texts, labels, pairs if has_pairs else None), ids


def seeded_split(split: Split, dev_fraction: float, seed: int, domain: str) -> tuple[Split, Split]:
    """Train / dev of one domain: a shuffle seeded by (seed, domain name), dev first."""
    order = list(range(len(split)))
    random.Random(f"{seed}:{domain}").shuffle(order)
    n_dev = max(1, round(len(order) * dev_fraction))
    if len(order) - n_dev < 2:
        raise UserError(
            f"domain {domain!r} has {len(order)} examples: too few to split off a dev part — "
            "add data or drop the domain"
        )
    return _pick(split, order[n_dev:]), _pick(split, order[:n_dev])


def few_shot(split: Split, fraction: float) -> Split:
    """The first `fraction` of an already shuffled training part (at least one example)."""
    if not 0 < fraction <= 1:
        raise UserError(f"fraction {fraction} is out of range — pass a value in (0, 1]")
    return split.take(max(1, math.ceil(len(split) * fraction)))


def _pick(split: Split, idx: list[int]) -> Split:
    return Split(
        [split.texts[i] for i in idx],
        [split.labels[i] for i in idx],
        None if split.pairs is None else [split.pairs[i] for i in idx],
    )


def _rows_to_split(rows: list[dict], cfg: DataConfig, where: str) -> Split:
    for column in [cfg.text_column, cfg.label_column, cfg.text_pair_column]:
        if column and column not in rows[0]:
            raise UserError(
                f"{where}: no column {column!r} (columns: {', '.join(rows[0])}) — pass "
                "--text-column / --label-column"
            )
    pairs = [str(r[cfg.text_pair_column]) for r in rows] if cfg.text_pair_column else None
    return Split(
        [str(r[cfg.text_column]) for r in rows], [r[cfg.label_column] for r in rows], pairs
    )


def _read_domains(source: Path, cfg: DataConfig, domain_column: str | None) -> dict[str, Split]:
    """Domain name -> its examples, from a folder of files or one file with a column."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in SUFFIXES)
        if not files:
            raise UserError(f"{source} has no .tsv / .csv / .jsonl / .json files — one per domain")
        return {p.stem: _rows_to_split(read_rows(p, cfg.columns), cfg, str(p)) for p in files}
    if domain_column is None:
        raise UserError(
            f"{source} is one file — pass --domain-column naming its domain column, or a "
            "folder with one file per domain"
        )
    rows = read_rows(source, cfg.columns)
    if domain_column not in rows[0]:
        raise UserError(
            f"{source}: no column {domain_column!r} (columns: {', '.join(rows[0])}) — fix "
            "--domain-column"
        )
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(str(row[domain_column]), []).append(row)
    return {name: _rows_to_split(r, cfg, str(source)) for name, r in sorted(grouped.items())}


def load_domains(
    cfg: DataConfig,
    *,
    domain_column: str | None,
    dev_fraction: float,
    target: str | None = None,
    fraction: float = 1.0,
) -> DomainData:
    """Read, split and check the domains; the `target` domain keeps `fraction` of its
    training part. `cfg.max_train_examples` caps every domain's training part."""
    if cfg.source is None:
        raise UserError("no data given — pass --data <folder with one file per domain>")
    source = Path(cfg.source)
    if not source.exists():
        raise UserError(f"data path {source} does not exist — pass a folder or a file")
    by_name = _read_domains(source, cfg, domain_column)
    if len(by_name) < 2:
        raise UserError(f"{source} holds {len(by_name)} domain(s) — Meta-KD needs at least two")
    if target is not None and target not in by_name:
        raise UserError(
            f"domain {target!r} is not in {source} (domains: {', '.join(by_name)}) — pass "
            "one of them with --target-domain"
        )
    notes = [
        f"each domain split {1 - dev_fraction:.0%} train / {dev_fraction:.0%} dev by a "
        f"shuffle seeded with ({cfg.seed}, domain name)"
    ]
    domains = []
    for name, split in by_name.items():
        train, dev = seeded_split(split, dev_fraction, cfg.seed, name)
        if cfg.max_train_examples is not None and len(train) > cfg.max_train_examples:
            notes.append(f"{name}: training part capped at {cfg.max_train_examples}")
            train = train.take(cfg.max_train_examples)
        if name == target and fraction < 1:
            full = len(train)
            train = few_shot(train, fraction)
            notes.append(f"{name}: few-shot, {len(train)} of {full} training examples")
        domains.append(DomainSplit(name, train, dev))
    all_train = Split([], [])
    all_dev = Split([], [])
    for d in domains:
        all_train.labels += d.train.labels
        all_dev.labels += d.dev.labels
    label_names = encode_labels(all_train, all_dev)
    offset_t = offset_d = 0
    for d in domains:
        d.train.labels = all_train.labels[offset_t : offset_t + len(d.train)]
        d.dev.labels = all_dev.labels[offset_d : offset_d + len(d.dev)]
        offset_t += len(d.train)
        offset_d += len(d.dev)
    if len(label_names) < 2:
        raise UserError(f"{source}: only one label value found — classification needs two")
    return DomainData(domains, label_names, str(source), notes)
