"""The frozen teacher's logits on training examples, computed once and kept on disk.

Why: the teacher is frozen and in eval mode, so its logits on an example never change, yet a
distillation step that reads only logits ran the teacher on every batch of every epoch. For
a small student that pass is most of the step: a CNN student trained at 157 samples/s with
the 6-layer teacher in its loop. With the logits cached, an epoch over a transfer set
augmented 20x costs the student's passes only, and the teacher's pass over each example is
paid once, by whichever run meets the example first (the augmentation's labelling pass
fills the cache that training then reads).

The cache is a folder per (teacher files, max_length): shards of (example digest, logits;
per word for tagged words), each written atomically as it is finished, so a killed
labelling pass resumes at its last shard and runs that add examples (a larger augmentation)
compute only the new ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor import atomic
from compressor.data import Split
from compressor.models import resolve_model_dir
from compressor.progress import LoggedProgress, LogLine
from compressor.tasks import IGNORED, task_named

SHARD_EXAMPLES = 4096
"""Examples per shard: what a kill can lose of the labelling pass."""
CACHE_FORMAT = 2  # 2: digests stored as raw bytes (numpy "S16" dropped trailing NULs)


def model_fingerprint(model: str | Path) -> list[tuple[str, int, int]] | str:
    """(name, size, mtime) of a model folder's files (weights, config and tokenizer all shape
    the output), which changes whenever the model is re-saved, without hashing gigabytes; a
    hub id stands for itself."""
    path = Path(resolve_model_dir(model))
    if not path.is_dir():
        return str(model)
    return [
        (f.name, f.stat().st_size, f.stat().st_mtime_ns)
        for f in sorted(path.iterdir())
        if f.is_file()
    ]


def cache_dir(cache_root: Path, teacher_dir: str | Path, max_length: int) -> Path:
    """The folder of one teacher's cached logits at one truncation length."""
    blob = json.dumps(
        {"format": CACHE_FORMAT, "teacher": model_fingerprint(teacher_dir), "len": max_length}
    )
    return Path(cache_root) / f"logits-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _digest(text: str, pair: str | None) -> bytes:
    return hashlib.blake2b(json.dumps([text, pair]).encode("utf-8"), digest_size=16).digest()


def example_digests(split: Split) -> list[bytes]:
    """One 16-byte key per example (text and pair), in the split's order."""
    pairs = split.pairs
    return [
        _digest(text, None if pairs is None else pairs[k]) for k, text in enumerate(split.texts)
    ]


def _load(folder: Path) -> dict[bytes, np.ndarray]:
    """Every cached example's logits: one row, or for tagged words one row per word kept."""
    known: dict[bytes, np.ndarray] = {}
    for shard in sorted(folder.glob("shard-*.npz")):
        with np.load(shard) as data:
            keys = [row.tobytes() for row in data["keys"]]
            rows = data["logits"]
            if "words" in data:
                rows = np.split(rows, np.cumsum(data["words"])[:-1])
            known.update(zip(keys, rows, strict=True))
    return known


def _write_shard(folder: Path, keys: list[bytes], logits: list[np.ndarray]) -> None:
    """One shard; per-word logits are stored end to end with each example's word count."""
    name = hashlib.sha256(b"".join(keys)).hexdigest()[:16]
    with atomic.atomic_file(folder / f"shard-{name}.npz") as tmp:
        digests = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1)
        if logits[0].ndim == 1:
            np.savez(tmp, keys=digests, logits=np.stack(logits).astype(np.float32))
        else:
            words = np.array([len(rows) for rows in logits])
            np.savez(tmp, keys=digests, logits=np.concatenate(logits).astype(np.float32),
                     words=words)  # fmt: skip


@torch.no_grad()
def teacher_logits(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: Split,
    folder: Path,
    *,
    max_length: int,
    batch_size: int = 64,
    progress: LoggedProgress | None = None,
) -> list[np.ndarray]:
    """The teacher's logits on every example of `split`, in its order: (num_labels,) per
    example, or for tagged words (words kept, num_labels) at the positions the loss reads
    (each word's first piece). Read from `folder` (see `cache_dir`) where known, the rest
    computed in batches of similar length and stored. The tokenization is the trainer's
    (the task's features, truncated at `max_length`), so a cached row equals what the
    teacher gives on the batch the student sees, padding aside."""
    if not len(split):
        return []
    digests = example_digests(split)
    known = _load(folder) if folder.is_dir() else {}
    sentences = split.sentences
    missing = sorted(
        {d: k for k, d in enumerate(digests) if d not in known}.values(),
        key=lambda k: len(sentences[k]) + len(split.pairs[k] if split.pairs else ""),
    )
    if missing:
        task = task_named(split.task)
        collate = task.collator(tokenizer)
        teacher.eval()
        bar = None
        if progress is not None:
            bar = progress.add_task(
                "teacher logits (cached)", total=len(missing), log=LogLine(items="examples")
            )
        for start in range(0, len(missing), SHARD_EXAMPLES):
            shard = missing[start : start + SHARD_EXAMPLES]
            rows: list[np.ndarray] = []
            for first in range(0, len(shard), batch_size):
                picked = split.select(shard[first : first + batch_size])
                features = task.features(picked.texts, picked.pairs, picked.labels, tokenizer,
                                         max_length)  # fmt: skip
                batch = collate(features)
                labels = batch.pop("labels")
                logits = teacher(**batch.to(teacher.device)).logits.float().cpu()
                if logits.dim() == 2:
                    rows += list(logits.numpy())
                else:
                    rows += [row[kept].numpy() for row, kept in zip(logits, labels != IGNORED,
                                                                     strict=True)]  # fmt: skip
                if progress is not None and bar is not None:
                    progress.advance(bar, len(picked))
            keys = [digests[k] for k in shard]
            _write_shard(folder, keys, rows)
            known.update(zip(keys, rows, strict=True))
    return [known[d].astype(np.float32) for d in digests]
