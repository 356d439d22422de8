"""Training-set augmentation for distillation, labelled by the teacher.

Why: task-specific distillation on a small labelled set leaves the student well short of
the teacher, because the student only sees the teacher's function on the inputs the set
holds. TinyBERT (Jiao et al. 2020, sec. 3.3 and table 6) distils on an augmented set built
by swapping words for a masked LM's guesses and gains several GLUE points from it; Tang et
al. (2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks",
sec. 3.1) get the same effect from cheaper perturbations: [MASK] substitution and n-gram
sampling. In both, the teacher labels the new examples and the originals keep their gold
labels. The augmented set is expensive (one teacher pass per copy, one masked-LM pass per
replaced word), so it is cached by content and reused by later runs.

Deviations from the papers, all deliberate:

- Words are whitespace tokens, as the GLUE files are already tokenized.
- TinyBERT takes GloVe neighbours for words that are several word pieces; we have no GloVe,
  so such words get the K nearest neighbours (cosine) of their first piece in the candidate
  model's input word-embedding matrix.
- The masked LM defaults to the teacher's own folder. A fine-tuned classifier folder has
  no MLM head (its `cls.predictions.*` weights are missing), and a randomly initialised
  head proposes noise, so then every word gets word-embedding neighbours from the teacher
  instead (`candidate_source` "embedding-neighbours"). An explicit `mlm_model` without a
  head is a user error.
- Tang et al. apply masking, POS-guided swapping and n-gram sampling in one pass per
  example. We have no POS tagger, so swapping is left out, and each copy applies one
  method ('mask' or 'ngram', cycling through `methods`) so the recipe sets the mix.
- Copies whose words equal the original's are dropped (an n-gram copy that was not
  sampled, a replacement that drew the word itself): they would only re-weight the
  original example.
- The teacher's label is its argmax. Distillation reads the teacher's soft targets during
  training anyway; the hard label only feeds the (1 - alpha) cross-entropy term.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import AutoModelForMaskedLM, PreTrainedModel, PreTrainedTokenizerBase

from compressor import atomic
from compressor.data import Split
from compressor.errors import UserError
from compressor.models import load_classifier, load_tokenizer, resolve_model_dir
from compressor.recipe import AugmentConfig

CACHE_FORMAT = 1  # bump when generation changes, so old cached sets are not reused
WORD_START_MARKS = "Ġ▁"  # word-start marks of byte-level BPE / SentencePiece vocabularies
NEIGHBOUR_CHUNK = 256  # query rows per similarity matmul: bounds memory at chunk x vocab

T = TypeVar("T")
Position = tuple[int, int]  # (example index, word index)


def augment_split(
    split: Split,
    teacher_dir: str | Path,
    cfg: AugmentConfig,
    cache_root: Path,
    *,
    max_length: int = 128,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[Split, dict]:
    """The split's examples followed by teacher-labelled augmented copies, plus what was done.

    Each example gets `cfg.per_example` copies, copy c applying `cfg.methods[c % len]`; for
    pair tasks only the first text changes. Every random draw is seeded by `cfg.seed` per
    (example, copy), so a copy does not depend on batching or on the other examples. The
    augmented rows (text, pair, label; one JSON object a line) are cached under `cache_root`
    by the split's content, the teacher's (and masked LM's) files, `cfg` and `max_length`;
    a hit loads no model.

    Info: cached, path (the .jsonl of augmented examples), original / augmented counts,
    candidate_source ("mlm", "embedding-neighbours", or None when 'replace' is not among the
    methods), methods.
    """
    key = _cache_key(split, teacher_dir, cfg, max_length)
    data_path = Path(cache_root) / f"augment-{key[:16]}.jsonl"
    info_path = data_path.with_suffix(".json")
    if data_path.is_file() and info_path.is_file():  # the sidecar is written last
        rows = [json.loads(line) for line in data_path.read_text("utf-8").split("\n") if line]
        info = atomic.read_json(info_path) | {"path": str(data_path), "cached": True}
        return _extend(split, rows), info

    device = torch.device(device)
    teacher, tokenizer = load_classifier(teacher_dir)
    teacher.to(device).eval()
    if "mask" in cfg.methods and tokenizer.mask_token is None:
        raise UserError(
            f"the tokenizer of {teacher_dir} has no mask token — drop 'mask' from augment.methods"
        )
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not Console().is_terminal,
    )
    with progress:
        source, candidates = None, {}
        if "replace" in cfg.methods:
            source, replacer = _replacer(teacher_dir, teacher, tokenizer, cfg, device)
            candidates = replacer.candidates(
                split.texts,
                _replace_positions(split.texts, cfg),
                progress,
                max_length=max_length,
                batch_size=batch_size,
            )
        copies = _cap(_generate(split.texts, cfg, candidates, tokenizer.mask_token), cfg)
        texts = [text for _, text in copies]
        pairs = None if split.pairs is None else [split.pairs[i] for i, _ in copies]
        labels = _teacher_labels(
            teacher,
            tokenizer,
            texts,
            pairs,
            progress,
            max_length=max_length,
            batch_size=batch_size,
        )
    rows = [
        {"text": text, "pair": None if pairs is None else pairs[k], "label": labels[k]}
        for k, text in enumerate(texts)
    ]
    atomic.write_text(
        data_path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    )
    info = {
        "path": str(data_path),
        "original": len(split),
        "augmented": len(rows),
        "candidate_source": source,
        "methods": list(cfg.methods),
    }
    atomic.write_json(info_path, info)
    return _extend(split, rows), info | {"cached": False}


def _cache_key(split: Split, teacher_dir: str | Path, cfg: AugmentConfig, max_length: int) -> str:
    """Everything the augmented set depends on; model folders by their files' names, sizes
    and mtimes, which changes whenever a model is re-saved without hashing gigabytes."""
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "texts": split.texts,
            "pairs": split.pairs,
            "labels": split.labels,
            "teacher": _model_files(teacher_dir),
            "mlm_model": None if cfg.mlm_model is None else _model_files(cfg.mlm_model),
            "cfg": cfg.model_dump_json(),
            "max_length": max_length,
        },
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _model_files(model: str | Path) -> list[tuple[str, int, int]] | str:
    """(name, size, mtime) of a model folder's files (weights, config and tokenizer all
    shape the output); a hub id stands for itself."""
    path = Path(resolve_model_dir(model))
    if not path.is_dir():
        return str(model)
    return [
        (f.name, f.stat().st_size, f.stat().st_mtime_ns)
        for f in sorted(path.iterdir())
        if f.is_file()
    ]


def _extend(split: Split, rows: list[dict]) -> Split:
    return Split(
        texts=split.texts + [row["text"] for row in rows],
        labels=split.labels + [row["label"] for row in rows],
        pairs=None if split.pairs is None else split.pairs + [row["pair"] for row in rows],
    )


def _rng(seed: int, example: int, copy: int) -> random.Random:
    """One generator per copy (string seeds hash stably across processes), so a copy's
    draws do not depend on which other copies or examples exist."""
    return random.Random(f"{seed}:{example}:{copy}")


def _chosen(n_words: int, rng: random.Random, prob: float) -> list[int]:
    """TinyBERT's per-word coin with probability p_t: the words to replace."""
    return [j for j in range(n_words) if rng.random() < prob]


def _methods(cfg: AugmentConfig) -> Iterator[tuple[int, str]]:
    """(copy index, method): copies cycle through the methods."""
    for copy in range(cfg.per_example):
        yield copy, cfg.methods[copy % len(cfg.methods)]


def _replace_positions(texts: list[str], cfg: AugmentConfig) -> set[Position]:
    """Every word some 'replace' copy will swap: its candidates are computed once (as in
    TinyBERT's script) and shared by all copies of the example."""
    return {
        (i, j)
        for i, text in enumerate(texts)
        for copy, method in _methods(cfg)
        if method == "replace"
        for j in _chosen(len(text.split()), _rng(cfg.seed, i, copy), cfg.replace_prob)
    }


def _ngram(words: list[str], rng: random.Random, prob: float, n_max: int) -> list[str]:
    """Tang et al.'s n-gram sampling: with probability p_ng, a random n-gram of the
    sentence, n uniform in 1..n_max (capped at its length)."""
    if not words or rng.random() >= prob:
        return words
    n = rng.randint(1, min(n_max, len(words)))
    start = rng.randint(0, len(words) - n)
    return words[start : start + n]


def _generate(
    texts: list[str],
    cfg: AugmentConfig,
    candidates: dict[Position, list[str]],
    mask_token: str | None,
) -> list[tuple[int, str]]:
    """(source example, augmented text) for every copy that differs from its original."""
    copies = []
    for i, text in enumerate(texts):
        words = text.split()
        for copy, method in _methods(cfg):
            rng = _rng(cfg.seed, i, copy)
            if method == "replace":  # same draws as _replace_positions, then the picks
                new = list(words)
                for j in _chosen(len(words), rng, cfg.replace_prob):
                    if candidates.get((i, j)):
                        new[j] = rng.choice(candidates[(i, j)])
            elif method == "mask":
                new = [mask_token if rng.random() < cfg.mask_prob else w for w in words]
            else:
                new = _ngram(words, rng, cfg.ngram_prob, cfg.ngram_max)
            if new != words:
                copies.append((i, " ".join(new)))
    return copies


def _cap(copies: list[tuple[int, str]], cfg: AugmentConfig) -> list[tuple[int, str]]:
    """A seeded subset of `max_examples` copies, in their original order."""
    if cfg.max_examples is None or len(copies) <= cfg.max_examples:
        return copies
    keep = sorted(random.Random(cfg.seed).sample(range(len(copies)), cfg.max_examples))
    return [copies[k] for k in keep]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def _teacher_labels(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    pairs: list[str] | None,
    progress: Progress,
    *,
    max_length: int,
    batch_size: int,
) -> list[int]:
    """The teacher's argmax on each text (pair), batched by length to limit padding."""
    order = sorted(range(len(texts)), key=lambda k: len(texts[k]) + len(pairs[k] if pairs else ""))
    labels = [0] * len(texts)
    task = progress.add_task("teacher labels", total=len(texts))
    for batch in _chunks(order, batch_size):
        enc = tokenizer(
            [texts[k] for k in batch],
            None if pairs is None else [pairs[k] for k in batch],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(teacher.device)
        for k, label in zip(batch, teacher(**enc).logits.argmax(-1).tolist(), strict=True):
            labels[k] = label
        progress.advance(task, len(batch))
    return labels


def _load_mlm(model: str | Path) -> tuple[PreTrainedModel, list[str]]:
    """A masked LM and the weights its folder lacked (randomly initialised)."""
    model_dir = resolve_model_dir(model)
    try:
        mlm, loading = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"could not load {model} as a masked LM ({exc.__class__.__name__}) — set "
            "augment.mlm_model to a masked-LM folder or hub id; this machine may be offline"
        ) from exc
    return mlm, [k for k in loading["missing_keys"] if not k.endswith("position_ids")]


def _replacer(
    teacher_dir: str | Path,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cfg: AugmentConfig,
    device: torch.device,
) -> tuple[str, _Replacer]:
    """The candidate source: `mlm_model`, else the teacher's MLM head, else the teacher's
    word embeddings (a classifier folder has no head; see the module docstring)."""
    if cfg.mlm_model is not None:
        mlm, missing = _load_mlm(cfg.mlm_model)
        if missing:
            raise UserError(
                f"augment.mlm_model {cfg.mlm_model} has no masked-LM head (missing "
                f"{missing[0]}, ...) — pass a pre-trained masked LM, or unset mlm_model to "
                "use the teacher's word-embedding neighbours"
            )
        mlm_tokenizer = load_tokenizer(resolve_model_dir(cfg.mlm_model))
        return "mlm", _Replacer(mlm_tokenizer, mlm.to(device).eval(), cfg.candidates)
    mlm, missing = _load_mlm(teacher_dir)
    if missing:
        return "embedding-neighbours", _Replacer(tokenizer, teacher, cfg.candidates, mlm=False)
    return "mlm", _Replacer(tokenizer, mlm.to(device).eval(), cfg.candidates)


class _Replacer:
    """TinyBERT's candidate sets (sec. 3.3): the masked LM's top-K words for a word that is
    one word piece, masked in its sentence; the K nearest word-embedding neighbours of its
    first piece otherwise (or for every word when `mlm` is False)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
        k: int,
        *,
        mlm: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.mlm = mlm
        self.embeddings = model.get_input_embeddings().weight.detach()
        self.allowed = _word_tokens(tokenizer, self.embeddings.shape[0]).to(model.device)
        self.allowed_ids = self.allowed.tolist()
        self.n_allowed = sum(self.allowed_ids)
        self.k = k
        self._words: dict[int, str] = {}

    def candidates(
        self,
        texts: list[str],
        positions: set[Position],
        progress: Progress,
        *,
        max_length: int,
        batch_size: int,
    ) -> dict[Position, list[str]]:
        """Replacement words per (example, word); words with none (unknown to the
        vocabulary) are left out and so kept as they are."""
        sentences = {i: texts[i].split() for i, _ in positions}
        vocab = sorted({w for words in sentences.values() for w in words})
        if not vocab:
            return {}
        encoded = self.tokenizer([" " + w for w in vocab], add_special_tokens=False)
        pieces = dict(zip(vocab, encoded["input_ids"], strict=True))
        masked, by_piece = [], {}
        for i, j in sorted(positions):
            word_pieces = pieces[sentences[i][j]]
            if not word_pieces or not self.allowed_ids[word_pieces[0]]:
                continue
            if self.mlm and len(word_pieces) == 1:
                masked.append((i, j))
            else:
                by_piece[(i, j)] = word_pieces[0]
        neighbours = self._neighbours(sorted(set(by_piece.values())))
        found = {position: neighbours[piece] for position, piece in by_piece.items()}
        layouts = {i: _layout(sentences[i], pieces) for i, _ in masked}
        task = progress.add_task("masked-LM candidates", total=len(masked))
        masked.sort(key=lambda position: len(layouts[position[0]][0]))
        for batch in _chunks(masked, batch_size):
            found.update(self._predict(batch, layouts, max_length))
            progress.advance(task, len(batch))
        return found

    @torch.no_grad()
    def _predict(
        self,
        batch: Sequence[Position],
        layouts: dict[int, tuple[list[int], list[int]]],
        max_length: int,
    ) -> dict[Position, list[str]]:
        """Top-K words at each masked position, one masked word per sentence; sentences
        longer than the model's window are cut to a window around the word."""
        budget = max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        prefix = self.tokenizer.build_inputs_with_special_tokens([-1]).index(-1)
        rows, targets = [], []
        for i, j in batch:
            body, starts = layouts[i]
            lo = min(max(0, starts[j] - budget // 2), max(0, len(body) - budget))
            window = body[lo : lo + budget]
            window[starts[j] - lo] = self.tokenizer.mask_token_id
            rows.append(self.tokenizer.build_inputs_with_special_tokens(window))
            targets.append(prefix + starts[j] - lo)
        ids = torch.full((len(rows), max(map(len, rows))), self.tokenizer.pad_token_id)
        attention = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            attention[r, : len(row)] = 1
        device = self.model.device
        logits = self.model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
        rows_at = torch.arange(len(rows), device=device)
        logits = logits[rows_at, torch.tensor(targets, device=device)].masked_fill(
            ~self.allowed, -torch.inf
        )
        top = logits.topk(min(self.k, self.n_allowed)).indices.tolist()
        return {position: self._to_words(best) for position, best in zip(batch, top, strict=True)}

    @torch.no_grad()
    def _neighbours(self, pieces: list[int]) -> dict[int, list[str]]:
        """The K pieces nearest each piece by cosine, itself excluded."""
        unit = torch.nn.functional.normalize(self.embeddings.float(), dim=-1)
        k = min(self.k, self.n_allowed - 1)
        found = {}
        for chunk in _chunks(pieces, NEIGHBOUR_CHUNK):
            query = torch.tensor(chunk, device=unit.device)
            sims = (unit[query] @ unit.T).masked_fill(~self.allowed, -torch.inf)
            sims[torch.arange(len(chunk), device=unit.device), query] = -torch.inf
            for piece, top in zip(chunk, sims.topk(k).indices.tolist(), strict=True):
                found[piece] = self._to_words(top)
        return found

    def _to_words(self, ids: list[int]) -> list[str]:
        for i in ids:
            if i not in self._words:
                token = self.tokenizer.convert_ids_to_tokens(i)
                self._words[i] = self.tokenizer.convert_tokens_to_string([token]).strip()
        return [self._words[i] for i in ids]


def _layout(words: list[str], pieces: dict[str, list[int]]) -> tuple[list[int], list[int]]:
    """A sentence's piece ids and the index of each word's first piece."""
    body, starts = [], []
    for word in words:
        starts.append(len(body))
        body.extend(pieces[word])
    return body, starts


def _word_tokens(tokenizer: PreTrainedTokenizerBase, rows: int) -> torch.Tensor:
    """Which ids can stand for a whole word: not special tokens or placeholders like
    BERT's [unused0], and not continuation pieces ('##…' in WordPiece; pieces without the
    word-start mark in byte-level BPE / SentencePiece vocabularies)."""
    probe = tokenizer.tokenize(" the")
    marker = probe[0][0] if probe and probe[0][0] in WORD_START_MARKS else None
    special = set(tokenizer.all_special_ids)
    allowed = torch.zeros(rows, dtype=torch.bool)
    size = min(rows, len(tokenizer))
    for i, token in enumerate(tokenizer.convert_ids_to_tokens(list(range(size)))):
        if i in special or not token or (len(token) > 2 and token[0] + token[-1] in ("[]", "<>")):
            continue
        allowed[i] = len(token) > 1 and token[0] == marker if marker else token[:2] != "##"
    return allowed
