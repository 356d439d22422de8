"""Training-set augmentation for distillation, labelled by the teacher (tagged words:
`compressor.augment.tagged`, which keeps their tags right).

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
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from compressor import atomic
from compressor.augment.perturb import capped, generate, replace_positions
from compressor.augment.replace import make_replacer
from compressor.augment.tagged import generate_tagged, misfits
from compressor.data import Split
from compressor.errors import UserError
from compressor.models import load_classifier
from compressor.progress import LoggedProgress
from compressor.recipe import AugmentConfig
from compressor.tasks import DEFAULT_TASK
from compressor.teacher_outputs import cache_dir as logits_dir
from compressor.teacher_outputs import model_fingerprint, teacher_logits

CACHE_FORMAT = 1  # bump when generation changes, so old cached sets are not reused


def check_methods(cfg: AugmentConfig, task: str) -> None:
    """Refuse methods made for the other kind of example (`tagged.misfits`)."""
    wrong, fits = misfits(cfg.methods, task != DEFAULT_TASK)
    if wrong:
        raise UserError(
            f"augment.methods {', '.join(wrong)} cannot augment {task} data — use "
            f"{', '.join(fits)} instead"
        )


def augment_split(
    split: Split,
    teacher_dir: str | Path,
    cfg: AugmentConfig,
    cache_root: Path,
    *,
    max_length: int = 128,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    logits_root: Path | None = None,
    label_names: list[str] | None = None,
) -> tuple[Split, dict]:
    """The split's examples followed by teacher-labelled augmented copies, plus what was done.

    Each example gets `cfg.per_example` copies, copy c applying `cfg.methods[c % len]`; for
    pair tasks only the first text changes. Every random draw is seeded by `cfg.seed` per
    (example, copy), so a copy does not depend on batching or on the other examples. The
    augmented rows (text, pair, label; one JSON object a line) are cached under `cache_root`
    by the split's content, the teacher's (and masked LM's) files, `cfg` and `max_length`;
    a hit loads no model. The teacher's logits on the copies go to the logits cache under
    `logits_root` (default `cache_root`; `compressor.teacher_outputs`), where distillation
    reads them instead of running the teacher again.

    Tagged words (`label_names` naming their tag ids) get the tag-preserving methods: the
    copies keep their rebuilt tags as labels, and the teacher's per-word logits go to the
    logits cache the same way.

    Info: cached, path (the .jsonl of augmented examples), original / augmented counts,
    candidate_source ("mlm", "embedding-neighbours", or None when 'replace' is not among the
    methods), methods.
    """
    check_methods(cfg, split.task)
    key = _cache_key(split, teacher_dir, cfg, max_length, label_names)
    data_path = Path(cache_root) / f"augment-{key[:16]}.jsonl"
    info_path = data_path.with_suffix(".json")
    if data_path.is_file() and info_path.is_file():  # the sidecar is written last
        rows = [json.loads(line) for line in data_path.read_text("utf-8").split("\n") if line]
        info = atomic.read_json(info_path) | {"path": str(data_path), "cached": True}
        return _extend(split, rows), info

    device = torch.device(device)
    teacher, tokenizer = load_classifier(teacher_dir)
    teacher.to(device).eval()
    if split.task != DEFAULT_TASK:
        if label_names is None:
            raise ValueError("tagged words need their label names to be augmented")
        copies = capped(generate_tagged(list(zip(split.texts, split.labels, strict=True)),
                                        label_names, cfg), cfg)  # fmt: skip
        new = Split([w for _, w, _ in copies], [t for *_, t in copies], task=split.task)
        with LoggedProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeRemainingColumn()) as progress:  # fmt: skip
            teacher_logits(teacher, tokenizer, new,
                           logits_dir(logits_root or cache_root, teacher_dir, max_length),
                           max_length=max_length, batch_size=batch_size,
                           progress=progress)  # fmt: skip
        rows = [{"words": w, "tags": t} for w, t in zip(new.texts, new.labels, strict=True)]
        return _write(split, rows, data_path, info_path, cfg, None)
    if "mask" in cfg.methods and tokenizer.mask_token is None:
        raise UserError(
            f"the tokenizer of {teacher_dir} has no mask token — drop 'mask' from augment.methods"
        )
    progress = LoggedProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with progress:
        source, candidates = None, {}
        if "replace" in cfg.methods:
            source, replacer = make_replacer(teacher_dir, teacher, tokenizer, cfg, device)
            candidates = replacer.candidates(
                split.texts,
                replace_positions(split.texts, cfg),
                progress,
                max_length=max_length,
                batch_size=batch_size,
            )
        copies = capped(generate(split.texts, cfg, candidates, tokenizer.mask_token), cfg)
        texts = [text for _, text in copies]
        pairs = None if split.pairs is None else [split.pairs[i] for i, _ in copies]
        logits = teacher_logits(
            teacher,
            tokenizer,
            Split(texts, [0] * len(texts), pairs),
            logits_dir(logits_root or cache_root, teacher_dir, max_length),
            max_length=max_length,
            batch_size=batch_size,
            progress=progress,
        )
        labels = [int(row.argmax()) for row in logits]
    rows = [
        {"text": text, "pair": None if pairs is None else pairs[k], "label": labels[k]}
        for k, text in enumerate(texts)
    ]
    return _write(split, rows, data_path, info_path, cfg, source)


def _write(split: Split, rows: list[dict], data_path: Path, info_path: Path,
           cfg: AugmentConfig, source: str | None) -> tuple[Split, dict]:  # fmt: skip
    """Store the augmented rows and their sidecar (last, so a cut write is no hit)."""
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


def _cache_key(split: Split, teacher_dir: str | Path, cfg: AugmentConfig, max_length: int,
               label_names: list[str] | None) -> str:  # fmt: skip
    """Everything the augmented set depends on; model folders by their files' names, sizes
    and mtimes, which changes whenever a model is re-saved without hashing gigabytes."""
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "texts": split.texts,
            "pairs": split.pairs,
            "labels": split.labels,
            "teacher": model_fingerprint(teacher_dir),
            "mlm_model": None if cfg.mlm_model is None else model_fingerprint(cfg.mlm_model),
            "cfg": cfg.model_dump_json(),
            "max_length": max_length,
            **({} if label_names is None else {"label_names": label_names}),
        },
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _extend(split: Split, rows: list[dict]) -> Split:
    if split.task != DEFAULT_TASK:
        return Split(split.texts + [row["words"] for row in rows],
                     split.labels + [row["tags"] for row in rows], task=split.task)  # fmt: skip
    return Split(
        texts=split.texts + [row["text"] for row in rows],
        labels=split.labels + [row["label"] for row in rows],
        pairs=None if split.pairs is None else split.pairs + [row["pair"] for row in rows],
    )
