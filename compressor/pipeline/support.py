"""What of the chain a task other than one label per text can use yet, checked before any
training: a recipe asking for more gets one line naming what to drop, not a crash an hour in.

Token classification runs distillation of transformer and BiLSTM students, HomoDistil
pruning, vocabulary pruning, export, parity, every quantization mode with or without
`max_drop`, .ort files, evaluation, the benchmark, and augmentation by the methods that keep
tags right. AdaBERT reads one label per text, and a student kind without a head for the task
(the CNN's is a sentence head) is refused; so are augmentation methods made for the other
task.
"""

from __future__ import annotations

from compressor.augment.tagged import misfits
from compressor.errors import UserError
from compressor.pipeline.context import RunContext
from compressor.recipe import Recipe
from compressor.students import kind_named
from compressor.tasks import DEFAULT_TASK


def unsupported(ctx: RunContext) -> list[str]:
    """The recipe settings that the data's task cannot run yet, as recipe keys."""
    return [] if ctx.mlm else unsupported_for(ctx.recipe, ctx.data.task)


def unsupported_for(recipe: Recipe, task: str) -> list[str]:
    """The settings of `recipe` that data of `task` cannot run yet, as recipe keys."""
    tagged = task != DEFAULT_TASK
    wrong, fits = misfits(recipe.augment.methods, tagged)
    methods = (f"augment.methods {', '.join(wrong)} (this data takes {', '.join(fits)})",
               recipe.augment.enabled and bool(wrong))  # fmt: skip
    if not tagged:
        return [key for key, on in [methods] if on]
    asked = [
        methods,
        ("adabert.enabled", recipe.adabert.enabled),
        (
            f"student.kind {recipe.student.kind}",
            not kind_named(recipe.student.kind).serves(task),
        ),
    ]
    return [key for key, on in asked if on]


def check_task_support(ctx: RunContext) -> None:
    """Refuse a recipe whose settings the data's task cannot run yet."""
    keys = unsupported(ctx)
    if keys:
        raise UserError(
            f"{ctx.data.source} is {ctx.data.task} data, which {', '.join(keys)} cannot "
            "handle yet — drop those settings from the recipe"
        )
