"""Inputs that the training stages (distill, prune) and the plan share: the frozen teachers
and the training examples, augmented when the recipe asks."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor.data import Split, TaskData
from compressor.distill.teacher_states import TeacherStates
from compressor.models import (
    check_labels,
    label_order,
    load_classifier,
    load_extra_teacher,
    load_masked_lm,
)
from compressor.pipeline.context import RunContext
from compressor.recipe import Recipe
from compressor.runfolder import cache_root
from compressor.tasks import DEFAULT_TASK

LOGITS_CACHE = "teacher-logits"
"""The folder under the cache root that holds the teachers' logits on training examples."""
STATES_CACHE = "teacher-states"
"""The folder under the cache root that holds stores of teachers' hidden states."""


def load_teacher(ctx: RunContext) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The frozen teacher (a masked LM for task-agnostic pruning), its task and labels
    checked against the data's; tags are renumbered by the teacher's class order."""
    if ctx.mlm:
        teacher, tokenizer = load_masked_lm(ctx.teacher)
    else:
        teacher, tokenizer = load_classifier(ctx.teacher)
        check_labels(teacher, ctx.data.task, ctx.data.label_names, ctx.data.source)
        if ctx.data.task != DEFAULT_TASK:
            ctx.data.use_label_order(label_order(teacher))
    return teacher.requires_grad_(False), tokenizer


def load_extra_teachers(
    recipe: Recipe, data: TaskData, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> dict[str, PreTrainedModel]:
    """Every extra teacher any stage names, loaded once, frozen, checked against the main
    teacher's tokenizer and labels."""
    teachers = {}
    for _name, distill, _train in recipe.stage_plan():
        for spec in distill.extra_teachers:
            if spec.model not in teachers:
                teachers[spec.model] = load_extra_teacher(
                    spec.model, teacher, tokenizer, data.train.sentences[:32]
                )
    return teachers


def training_split(ctx: RunContext) -> tuple[Split, dict | None]:
    """The training examples, with the teacher-labelled augmented set appended when asked."""
    recipe, data = ctx.recipe, ctx.data
    if not recipe.augment.enabled:
        return data.train, None
    import torch

    from compressor.augment import augment_split
    from compressor.models import resolve_model_dir

    return augment_split(
        data.train,
        resolve_model_dir(ctx.teacher),
        recipe.augment,
        cache_root() / "augment",
        max_length=recipe.data.max_length,
        device="cuda" if torch.cuda.is_available() else "cpu",
        logits_root=cache_root() / LOGITS_CACHE,
        label_names=data.label_names,
    )


def cached_teacher_logits(
    ctx: RunContext,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    student_tokenizer: PreTrainedTokenizerBase,
    split: Split,
) -> list[list] | None:
    """The teacher's logits on every training example from the logits cache (computing the
    ones it lacks; per word for tagged words), or None when the student reads other tokens
    than the teacher (a pretrained student with its own vocabulary): then the teacher runs
    on every batch."""
    if student_tokenizer.get_vocab() != tokenizer.get_vocab():
        return None
    from compressor.models import resolve_model_dir
    from compressor.progress import LoggedProgress
    from compressor.teacher_outputs import cache_dir, teacher_logits

    folder = cache_dir(cache_root() / LOGITS_CACHE, resolve_model_dir(ctx.teacher),
                       ctx.recipe.data.max_length)  # fmt: skip
    with LoggedProgress() as progress:
        logits = teacher_logits(
            teacher, tokenizer, split, folder, max_length=ctx.recipe.data.max_length,
            progress=progress,
        )  # fmt: skip
    return [row.tolist() for row in logits]


def stored_teacher_states(
    ctx: RunContext,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    student_tokenizer: PreTrainedTokenizerBase,
    split: Split,
    layers: tuple[int, ...],
    limit_mb: int,
) -> tuple[TeacherStates | None, str]:
    """The store of the teacher's hidden states at `layers` on `split` (computed once), or
    None when it is over `limit_mb` or the student reads other tokens than the teacher; and
    what the run says of the teacher's pass."""
    if student_tokenizer.get_vocab() != tokenizer.get_vocab():
        return None, "every batch (the student reads other tokens)"
    from compressor.distill.teacher_states import teacher_states
    from compressor.models import resolve_model_dir

    states, size = teacher_states(
        teacher, resolve_model_dir(ctx.teacher), tokenizer, split, cache_root() / STATES_CACHE,
        layers=layers, max_length=ctx.recipe.data.max_length, limit_bytes=limit_mb * 2**20,
    )  # fmt: skip
    mb = f"{size / 2**20:,.0f} MB"
    if states is None:
        return None, f"every batch (its hidden-state store, {mb}, is over the {limit_mb} MB limit)"
    return states, f"stored hidden states (layers {', '.join(map(str, layers))}; {mb})"
