"""The frozen teacher's hidden states on the training examples, computed once and
memory-mapped, for recipes whose terms read the teacher's layers.

Why: the cached logits (`compressor.teacher_outputs`) spare the teacher's pass only to
recipes that read nothing but logits. The default recipe also matches hidden states, so the
teacher ran on every batch of every epoch, the same work again in each epoch and each stage
(`make bench-distill` times the default recipe with and without this store). Its hidden
states on an example never change (frozen, eval mode), so they are computed in one pass, for
the layers the terms read only, stored as float16 rows of the real tokens (pads are never
read: every hidden-state term averages over the attention mask), and read back per batch.

Float16 rounds a target by at most 2^-11 of its size, far below the distance the student is
trained to close. The store is one folder per (teacher files, max length, layers, examples),
written atomically when the pass ends; a killed pass is redone by the next run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor import atomic
from compressor.data import Split
from compressor.distill.trainer import tokenize
from compressor.progress import LoggedProgress, LogLine
from compressor.tasks import DEFAULT_TASK
from compressor.teacher_outputs import example_digests, model_fingerprint

STATES_FORMAT = 1
STATE_INDEX = "teacher_state_index"
"""The batch field that carries each example's row in the store: with it the teacher does
not run, and its hidden states are read from the store."""
BYTES_PER_VALUE = 2
TOKEN_LOGITS = "token_logits.npy"
"""A token classifier's logits, one row per stored token (a sentence classifier's are in
logits.npy, one row per example)."""


@dataclass(frozen=True)
class TeacherStates:
    """The teacher's hidden states at `layers` (0 = embeddings) on every example of a
    split: `states` (tokens, layers, width) float16, memory-mapped, example k's rows being
    `offsets[k]:offsets[k + 1]`."""

    layers: tuple[int, ...]
    states: np.ndarray
    offsets: np.ndarray
    logits: np.ndarray
    """(examples, labels), or for a token classifier (tokens, labels) rowed like `states`."""
    per_token: bool = False

    def batch_logits(self, index: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The teacher's logits on this batch: (batch, labels), or (batch, seq, labels) for a
        token classifier, pads zero."""
        if not self.per_token:
            return torch.from_numpy(self.logits[index.numpy()])
        return self._spread(self.logits, index, attention_mask)

    def _spread(self, rows: np.ndarray, index: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Stored per-token rows of the batch's examples placed at their real tokens."""
        tokens = np.concatenate(
            [np.arange(self.offsets[k], self.offsets[k + 1]) for k in index.tolist()]
        )
        flat = torch.from_numpy(np.asarray(rows[tokens])).float()
        batch = flat.new_zeros((*attention_mask.shape, *flat.shape[1:]))
        batch[attention_mask.bool()] = flat  # real tokens in row-major order, as stored
        return batch

    def hidden_states(self, index: torch.Tensor, attention_mask: torch.Tensor) -> list:
        """What the teacher's forward would give as `hidden_states` on this batch: a list by
        layer, float32 (batch, seq, width) at the stored layers, None elsewhere; pads zero.
        A batch whose real-token counts differ from the stored ones was tokenized otherwise
        than the store: that is a bug, not a user error, and stops the run."""
        lengths = attention_mask.sum(-1).tolist()
        rows = index.tolist()
        stored = [int(self.offsets[k + 1] - self.offsets[k]) for k in rows]
        if stored != lengths:
            bad = next(b for b, (n, m) in enumerate(zip(stored, lengths, strict=True)) if n != m)
            raise RuntimeError(
                f"example {rows[bad]} has {lengths[bad]} tokens in the batch, {stored[bad]} "
                "in the store"
            )
        batch = self._spread(self.states, index, attention_mask)  # (batch, seq, layers, width)
        out: list = [None] * (max(self.layers) + 1)
        for j, layer in enumerate(self.layers):
            out[layer] = batch[:, :, j]
        return out


def store_bytes(lengths: list[int], layers: tuple[int, ...], width: int) -> int:
    """Disk (and page-cache) bytes of the store for examples of these token lengths."""
    return sum(lengths) * len(layers) * width * BYTES_PER_VALUE


def _folder(root: Path, teacher_dir: str | Path, split: Split, layers: tuple[int, ...],
            max_length: int) -> Path:  # fmt: skip
    examples = hashlib.sha256(b"".join(example_digests(split))).hexdigest()
    blob = json.dumps({"format": STATES_FORMAT, "teacher": model_fingerprint(teacher_dir),
                       "len": max_length, "layers": layers, "examples": examples})  # fmt: skip
    return Path(root) / f"states-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _open(folder: Path, layers: tuple[int, ...]) -> TeacherStates:
    per_token = (folder / TOKEN_LOGITS).is_file()
    return TeacherStates(
        layers=layers,
        states=np.load(folder / "states.npy", mmap_mode="r"),
        offsets=np.load(folder / "offsets.npy"),
        logits=np.load(folder / (TOKEN_LOGITS if per_token else "logits.npy")),
        per_token=per_token,
    )


@torch.no_grad()
def teacher_states(
    teacher: PreTrainedModel,
    teacher_dir: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    split: Split,
    root: Path,
    *,
    layers: tuple[int, ...],
    max_length: int,
    limit_bytes: int,
    batch_size: int = 64,
) -> tuple[TeacherStates | None, int]:
    """The store of the teacher's states at `layers` and its logits on `split`, read from
    `root` or computed into it; (None, size) when it would exceed `limit_bytes`, so the
    caller runs the teacher on every batch instead. The tokenization is the trainer's own
    (`tokenize`), so the stored rows line up with the batches it makes."""
    features = tokenize(split, tokenizer, max_length, labels=False)
    lengths = [len(f["input_ids"]) for f in features]
    width = teacher.config.hidden_size
    size = store_bytes(lengths, layers, width)
    if size > limit_bytes:
        return None, size
    folder = _folder(root, teacher_dir, split, layers, max_length)
    if (folder / "states.npy").is_file():
        return _open(folder, layers), size
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    teacher.eval()
    with atomic.atomic_dir(folder) as tmp:
        states = np.lib.format.open_memmap(
            tmp / "states.npy", mode="w+", dtype=np.float16,
            shape=(int(offsets[-1]), len(layers), width),
        )  # fmt: skip
        per_token = split.task != DEFAULT_TASK
        logits = np.zeros(
            (int(offsets[-1]) if per_token else len(split), teacher.config.num_labels),
            dtype=np.float32,
        )
        order = sorted(range(len(split)), key=lengths.__getitem__)
        with LoggedProgress() as progress:
            task = progress.add_task(
                "teacher hidden states (cached)", total=len(split), log=LogLine(items="examples")
            )
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                batch = tokenizer.pad([features[i] for i in rows], return_tensors="pt").to(
                    teacher.device
                )
                out = teacher(**batch, output_hidden_states=True)
                batch_logits = out.logits.float().cpu().numpy()
                if not per_token:
                    logits[rows] = batch_logits
                picked = torch.stack([out.hidden_states[layer] for layer in layers], dim=2)
                picked = picked.to(torch.float16).cpu().numpy()
                for b, k in enumerate(rows):
                    states[offsets[k] : offsets[k + 1]] = picked[b, : lengths[k]]
                    if per_token:
                        logits[offsets[k] : offsets[k + 1]] = batch_logits[b, : lengths[k]]
                progress.advance(task, len(rows))
        states.flush()
        del states
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / (TOKEN_LOGITS if per_token else "logits.npy"), logits)
    return _open(folder, layers), size
