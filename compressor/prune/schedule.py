"""The cubic sparsity schedule of Zhu & Gupta (2017), used by HomoDistil and PLATON.

Pruning is fast while the model is still redundant and slows down as the target nears,
which leaves the distillation loss time to repair each cut.
"""

from __future__ import annotations


def cubic_progress(step: int, begin: int, end: int) -> float:
    """Fraction of the way from the full size to the target at `step`: 0 before `begin`,
    1 - (1 - (step - begin) / (end - begin))^3 in between, 1 from `end` on."""
    if step <= begin:
        return 0.0
    if step >= end:
        return 1.0
    return 1.0 - (1.0 - (step - begin) / (end - begin)) ** 3


def kept_count(total: int, target: int, progress: float) -> int:
    """Units to keep at `progress`, moving from `total` down to `target`."""
    return total - round((total - target) * progress)


def is_pruning_step(step: int, begin: int, end: int, every: int) -> bool:
    """Prune every `every` steps inside (begin, end], and always exactly at `end` so that the
    target is reached whatever `every` is."""
    return begin < step <= end and ((step - begin) % every == 0 or step == end)
