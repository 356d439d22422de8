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
from compressor.prune.units import Layout, UnitMasks, non_embedding_parameters, sensitivity
from compressor.recipe import PruneConfig


def targets(cfg: PruneConfig, layout: Layout) -> dict[str, int]:
    """Kept size of each pruned kind (per layer for heads and FFN), from the recipe.

    A hidden target must be a multiple of the head size and caps the heads per layer at
    hidden / head size: a stock config derives the head size from those two numbers.
    """
    sizes = layout.sizes()
    wanted: dict[str, int] = {}
    if cfg.hidden is not None:
        if cfg.hidden % layout.head_dim:
            nearest = max(layout.head_dim, cfg.hidden // layout.head_dim * layout.head_dim)
            raise UserError(
                f"prune.hidden {cfg.hidden} is not a multiple of the head size "
                f"{layout.head_dim} — pick e.g. {nearest}"
            )
        if cfg.hidden > layout.hidden:
            raise UserError(
                f"prune target hidden={cfg.hidden} exceeds the model's {layout.hidden} — lower it"
            )
        wanted["hidden"] = cfg.hidden
    width = wanted.get("hidden", layout.hidden)
    cap = width // layout.head_dim
    if cfg.budget is not None:
        wanted["heads"], wanted["ffn"] = budget_sizes(cfg.budget, layout, width)
    if cfg.heads is not None:
        wanted["heads"] = cfg.heads
    if cfg.ffn is not None:
        wanted["ffn"] = cfg.ffn
    if wanted.get("heads", layout.num_heads) > cap:
        if cfg.heads is not None:
            raise UserError(
                f"prune.heads {cfg.heads} does not fit hidden width {width}: at head "
                f"size {layout.head_dim} a layer holds at most {cap} heads — lower heads"
            )
        wanted["heads"] = cap
    for kind, size in wanted.items():
        if size > sizes[kind]:
            raise UserError(
                f"prune target {kind}={size} exceeds the model's {sizes[kind]} — lower it"
            )
    return {kind: size for kind, size in wanted.items() if size < sizes[kind]}


def budget_sizes(budget: float, layout: Layout, hidden: int) -> tuple[int, int]:
    """Heads and FFN neurons per layer that keep `budget` of the model's non-embedding
    parameters once it is also cut to width `hidden`.

    The width cut is given, so only heads and FFN are solved for: both at the fraction
    that lands on the budget, then the heads rounded (at most the width's cap) and the FFN
    count solved again for what the rounded heads left, so the result misses the budget by
    at most half an FFN neuron in every layer. Head counts nearest that fraction are tried
    first; if none leaves 1..ffn neurons, the budget is out of reach at this width.
    """
    n = len(layout.layers)
    full = non_embedding_parameters(layout, layout.hidden, n * layout.num_heads, n * layout.ffn)
    fixed = non_embedding_parameters(layout, hidden, 0, 0)
    per_head = non_embedding_parameters(layout, hidden, n, 0) - fixed  # one in every layer
    per_neuron = non_embedding_parameters(layout, hidden, 0, n) - fixed
    goal = budget * full - fixed
    cap = min(layout.num_heads, hidden // layout.head_dim)
    fraction = goal / (layout.num_heads * per_head + layout.ffn * per_neuron)
    for heads in sorted(range(1, cap + 1), key=lambda h: abs(h - fraction * layout.num_heads)):
        ffn = round((goal - heads * per_head) / per_neuron)
        if 1 <= ffn <= layout.ffn:
            return heads, ffn
    least = (fixed + per_head + per_neuron) / full
    most = (fixed + cap * per_head + layout.ffn * per_neuron) / full
    raise UserError(
        f"prune.budget {budget:g} is out of reach at hidden width {hidden}: cut to that width "
        f"the model keeps between {least:.1%} and {most:.1%} of its non-embedding parameters "
        "— pick a budget in that range, or change prune.hidden"
    )


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

    def after_backward(self, clip_factor: float = 1.0) -> None:
        """Fold this step's sensitivities into the smoothed scores (before the optimizer
        step, while the gradients are there). The gradients were clipped by `clip_factor`;
        dividing it out gives the paper's |theta * dL/dtheta|, so a step with a large gradient
        norm weighs in the moving average as much as it really matters."""
        if self.trace and self.trace[-1]["step"] >= self.end:
            return
        if clip_factor <= 0:  # a skipped (overflowed) step carries no sensitivity
            return
        for kind in self.targets:
            self.criterion.update(kind, sensitivity(self.layout, kind) / clip_factor)

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
        """Non-embedding parameters of the masked model over the unmasked one's: the cut
        model's share, the measure `prune.budget` is given in."""
        layout = self.layout
        n = len(layout.layers)
        kept = self.masks.masks
        hidden = int(kept["hidden"].sum()) if "hidden" in kept else layout.hidden
        heads = int(kept["heads"].sum()) if "heads" in kept else n * layout.num_heads
        ffn = int(kept["ffn"].sum()) if "ffn" in kept else n * layout.ffn
        full = non_embedding_parameters(layout, layout.hidden, n * layout.num_heads, n * layout.ffn)
        return non_embedding_parameters(layout, hidden, heads, ffn) / full

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
