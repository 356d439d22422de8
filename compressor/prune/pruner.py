"""The pruning side of a HomoDistil run, driven by the training loop's hooks.

After each backward pass the per-unit sensitivities feed the importance criterion; every
`every` steps between `begin` and `end` the masks shrink to the cubic schedule's size by
dropping the lowest-scored units still kept. Masks only ever lose units, and the pruner's
state (masks, smoothed scores, trace) is checkpointed with the run so a resumed run prunes
exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from compressor.errors import UserError
from compressor.prune.importance import IMPORTANCE
from compressor.prune.schedule import cubic_progress, is_pruning_step, kept_count
from compressor.prune.units import Layout, UnitMasks, sensitivity
from compressor.recipe import PruneConfig


def targets(cfg: PruneConfig, layout: Layout) -> dict[str, int]:
    """Kept size of each pruned kind (per layer for heads and FFN), from the recipe.

    A hidden target must be a multiple of the head size and caps the heads per layer at
    hidden / head size: a stock config derives the head size from those two numbers.
    """
    sizes = layout.sizes()
    wanted: dict[str, int] = {}
    if cfg.budget is not None:
        wanted["heads"] = max(1, round(cfg.budget * layout.num_heads))
        wanted["ffn"] = max(1, round(cfg.budget * layout.ffn))
    if cfg.heads is not None:
        wanted["heads"] = cfg.heads
    if cfg.ffn is not None:
        wanted["ffn"] = cfg.ffn
    if cfg.hidden is not None:
        if cfg.hidden % layout.head_dim:
            nearest = max(layout.head_dim, cfg.hidden // layout.head_dim * layout.head_dim)
            raise UserError(
                f"prune.hidden {cfg.hidden} is not a multiple of the head size "
                f"{layout.head_dim} — pick e.g. {nearest}"
            )
        cap = cfg.hidden // layout.head_dim
        if wanted.get("heads", layout.num_heads) > cap:
            if cfg.heads is not None:
                raise UserError(
                    f"prune.heads {cfg.heads} does not fit hidden width {cfg.hidden}: at head "
                    f"size {layout.head_dim} a layer holds at most {cap} heads — lower heads"
                )
            wanted["heads"] = cap
        wanted["hidden"] = cfg.hidden
    for kind, size in wanted.items():
        if size > sizes[kind]:
            raise UserError(
                f"prune target {kind}={size} exceeds the model's {sizes[kind]} — lower it"
            )
    return {kind: size for kind, size in wanted.items() if size < sizes[kind]}


class Pruner:
    """Masks, importance and schedule of one pruning run; the trainer calls `after_backward`
    and `after_step`, and checkpoints it through `state_dict`."""

    def __init__(
        self,
        layout: Layout,
        cfg: PruneConfig,
        total_steps: int,
        probe: Callable[[], float] | None = None,
    ):
        """`probe` measures the student/teacher prediction gap on fixed sentences; it runs
        every `cfg.every` steps and right after each pruning event."""
        self.layout = layout
        self.probe = probe
        self.cfg = cfg
        self.targets = targets(cfg, layout)
        if not self.targets:
            raise UserError("the prune targets equal the model's sizes: nothing to prune")
        self.masks = UnitMasks(layout, tuple(self.targets))
        self.criterion = IMPORTANCE[cfg.criterion](cfg.beta1, cfg.beta2)
        self.begin = math.floor(cfg.begin * total_steps)
        self.end = max(self.begin + 1, math.ceil(cfg.end * total_steps))
        self.trace: list[dict] = []

    def after_backward(self) -> None:
        """Fold this step's sensitivities into the smoothed scores (before the optimizer
        step, while the gradients are there)."""
        if self.trace and self.trace[-1]["step"] >= self.end:
            return
        for kind in self.targets:
            self.criterion.update(kind, sensitivity(self.layout, kind))

    def after_step(self, step: int, parts: dict[str, float]) -> None:
        """Prune when the schedule says so, and trace the prediction gap and sizes."""
        pruning = is_pruning_step(step, self.begin, self.end, self.cfg.every)
        if pruning:
            self.prune_to(cubic_progress(step, self.begin, self.end))
        entry = {
            "step": step,
            "prediction_kl": parts.get("prediction_kl"),
            "remaining": round(self.remaining_fraction(), 5),
        }
        if self.probe is not None and (pruning or step % self.cfg.every == 0):
            entry["probe_kl"] = self.probe()
        self.trace.append(entry)

    def prune_to(self, progress: float) -> None:
        """Shrink each kind to its schedule size at `progress`, in place (hooks hold views)."""
        sizes = self.layout.sizes()
        for kind, target in self.targets.items():
            keep = kept_count(sizes[kind], target, progress)
            mask = self.masks.masks[kind]
            score = self.criterion.score(kind).masked_fill(mask == 0, -math.inf)
            if kind == "heads" and self.cfg.head_scope == "global":
                width = kept_count(
                    sizes["hidden"], self.targets.get("hidden", sizes["hidden"]), progress
                )
                cap = max(keep, min(sizes[kind], width // self.layout.head_dim))
                new = _top_global(score, keep * len(self.layout.layers), cap)
            else:
                new = _top_k(score, keep)
            mask.mul_(new)

    def remaining_fraction(self) -> float:
        """Non-embedding parameters of the masked model over the unmasked one's (weights of
        attention and FFN matrices, which dominate)."""
        layout = self.layout
        n = len(layout.layers)
        kept = self.masks.masks
        hidden = kept["hidden"].sum().item() if "hidden" in kept else layout.hidden
        heads = kept["heads"].sum().item() if "heads" in kept else n * layout.num_heads
        ffn = kept["ffn"].sum().item() if "ffn" in kept else n * layout.ffn
        full = n * layout.hidden * (4 * layout.num_heads * layout.head_dim + 2 * layout.ffn)
        return hidden * (4 * heads * layout.head_dim + 2 * ffn) / full

    def state_dict(self) -> dict:
        return {
            "masks": {k: v.clone() for k, v in self.masks.masks.items()},
            "criterion": self.criterion.state_dict(),
            "trace": list(self.trace),
        }

    def load_state_dict(self, state: dict) -> None:
        for kind, mask in state["masks"].items():
            self.masks.masks[kind].copy_(mask)
        self.criterion.load_state_dict(state["criterion"])
        self.trace = list(state["trace"])


def _top_k(score: torch.Tensor, k: int) -> torch.Tensor:
    """0/1 mask keeping the k best entries of the last dimension (ties by lower index)."""
    keep = torch.zeros_like(score)
    index = score.topk(k, dim=-1).indices
    return keep.scatter_(-1, index, 1.0)


def _top_global(score: torch.Tensor, total: int, cap: int) -> torch.Tensor:
    """0/1 (layers, heads) mask keeping the `total` best heads across layers, at least one
    and at most `cap` per layer (no attention block vanishes; each fits the hidden width)."""
    keep = _top_k(score, 1)
    per_layer = keep.sum(1)
    order = score.masked_fill(keep == 1, -math.inf).flatten().argsort(descending=True)
    chosen = int(keep.sum())
    for flat in order.tolist():
        if chosen >= total:
            break
        layer, head = divmod(flat, score.shape[1])
        if per_layer[layer] < cap and score[layer, head] > -math.inf:
            keep[layer, head] = 1.0
            per_layer[layer] += 1
            chosen += 1
    return keep
