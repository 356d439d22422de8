"""Distillation: the student is built (or loaded) and trained through each stage of the
recipe (TinyBERT: intermediate layers, then predictions); a finished stage is skipped on
--resume and the next starts from its kept model."""

from __future__ import annotations

from typing import Any

from torch import nn

from compressor.distill.objective import CACHED_LOGITS, DistillObjective, check_servable
from compressor.distill.teacher_states import STATE_INDEX
from compressor.distill.trainer import seed_fresh_weights, total_steps, train
from compressor.models import count_parameters
from compressor.pipeline.adabert import searched_student
from compressor.pipeline.context import RunContext, console, describe_data
from compressor.pipeline.inputs import (
    cached_teacher_logits,
    load_extra_teachers,
    load_teacher,
    stored_teacher_states,
    training_split,
)
from compressor.pipeline.stage import Stage
from compressor.recipe import DistillConfig
from compressor.runfolder import cache_root
from compressor.students import kind_named, kind_of, load_trained, make_student


def describe_loss(cfg: DistillConfig) -> str:
    """One line for a plan: the prediction term, extra teachers and intermediate terms."""
    terms = [f"{t.name}x{t.weight}" for t in cfg.intermediate if t.weight > 0]
    pred = (
        f"KD T={cfg.temperature} ({cfg.temperature_schedule}), alpha={cfg.alpha}"
        if cfg.prediction_weight > 0
        else "no prediction loss"
    )
    teachers = f", +{len(cfg.extra_teachers)} teachers" if cfg.extra_teachers else ""
    return f"{pred}{teachers}, intermediate={terms or 'none'}"


class Distill(Stage):
    name = "distill"

    def enabled(self, ctx: RunContext) -> bool:
        return not ctx.homodistil

    def skipped_because(self, ctx: RunContext) -> str:
        return "HomoDistil prunes an exact copy of the teacher instead"

    def plan(self, ctx: RunContext) -> str:
        recipe = ctx.recipe
        steps = []
        for name, distill_cfg, cfg in recipe.stage_plan():
            total = total_steps(cfg, len(ctx.data.train))
            grouped = ", grouped by length" if cfg.group_by_length else ""
            steps.append(
                f"{name}: {total} steps of batch {cfg.batch_size} x {cfg.grad_accum}{grouped}, "
                f"lr {cfg.lr}, keep {cfg.keep}; {describe_loss(distill_cfg)}"
            )
        frozen = "frozen" if recipe.student.frozen_word_embeddings else "trained"
        return " | ".join(steps) + f"; word embeddings {frozen}"

    def run(self, ctx: RunContext) -> None:
        run, recipe, data = ctx.folder, ctx.recipe, ctx.data
        for _name, distill_cfg, _train_cfg in recipe.stage_plan():  # before any teacher pass
            check_servable(kind_named(recipe.student.kind), distill_cfg)
        teacher, tokenizer = load_teacher(ctx)
        extra = load_extra_teachers(recipe, data, teacher, tokenizer)
        train_split, augmentation = training_split(ctx)
        seed_fresh_weights(recipe.train.seed)
        student_cfg = searched_student(ctx)
        samples = data.train.sentences[:32]
        student, student_tok = make_student(teacher, tokenizer, student_cfg, samples)
        freeze = student_cfg.frozen_word_embeddings
        student = freeze_word_embeddings(student, freeze)
        student_params = count_parameters(student), count_parameters(student, embeddings=False)
        plan = recipe.stage_plan()
        stages: list[dict[str, Any]] = []
        cached: list[list[float]] | None = None
        for i, (name, distill_cfg, train_cfg) in enumerate(plan):
            last = i == len(plan) - 1
            target = run.path / "model" if last else run.path / "stages" / name
            if not last and run.done(f"distill:{name}"):
                stages.append(run.result(f"distill:{name}"))
                student = freeze_word_embeddings(load_trained(target), freeze)
                continue
            seed_fresh_weights(train_cfg.seed)
            objective = DistillObjective(
                teacher,
                student,
                distill_cfg,
                [(extra[spec.model], spec.weight) for spec in distill_cfg.extra_teachers],
            )
            fields, teacher_pass = None, "every batch"
            if not objective.reads_teacher_internals and not ctx.mlm:
                if cached is None:
                    cached = cached_teacher_logits(
                        ctx, teacher, tokenizer, student_tok, train_split
                    )
                if cached is not None:
                    fields, teacher_pass = {CACHED_LOGITS: cached}, "cached logits"
            elif objective.teacher_layers and distill_cfg.teacher_states_mb and not ctx.mlm:
                states, teacher_pass = stored_teacher_states(
                    ctx, teacher, tokenizer, student_tok, train_split,
                    objective.teacher_layers, distill_cfg.teacher_states_mb,
                )  # fmt: skip
                if states is not None:
                    objective.use_states(states)
                    fields = {STATE_INDEX: list(range(len(train_split)))}
            console.print(f"teacher's pass: {teacher_pass}")
            train_dir = run.path / "training" / (name if len(plan) > 1 else "")
            stage_label = f" — stage {i + 1}/{len(plan)}: {name}" if len(plan) > 1 else ""
            state = train(
                student,
                student_tok,
                train_split,
                data.dev,
                train_cfg,
                max_length=recipe.data.max_length,
                out_dir=train_dir,
                compute_loss=objective,
                extra_modules=objective.modules,
                frozen_modules=objective.frozen,
                resume=ctx.resume,
                description=f"distilling the student ({kind_of(student).describe(student)})"
                + stage_label,
                example_fields=fields,
                on_evaluate=ctx.on_evaluate,
            )
            run.promote(train_dir, target)
            result = {
                "name": name,
                "steps": state.step,
                "kept": train_cfg.keep,
                "best_step": state.best_step,
                "best_dev_accuracy": state.best_dev_accuracy,
                "history": state.history,
                "teacher_pass": teacher_pass,
                "train_seconds": round(state.train_seconds, 3),
                "train_samples_per_s": round(
                    state.samples_per_second(train_cfg.batch_size, train_cfg.grad_accum), 2
                ),
                "losses": ["soft_kd", "hard_ce"] * (distill_cfg.prediction_weight > 0)
                + [term.name for term in distill_cfg.intermediate if term.weight > 0],
            }
            stages.append(result)
            if not last:
                run.complete(f"distill:{name}", **result)
                student = freeze_word_embeddings(load_trained(target), freeze)
        final = stages[-1]
        seconds = sum(stage["train_seconds"] for stage in stages)
        samples = sum(stage["train_samples_per_s"] * stage["train_seconds"] for stage in stages)
        run.complete(
            self.name,
            teacher=ctx.teacher,
            student_source=recipe.student.model or kind_of(student).describe(student, student_cfg),
            extra_teachers=[spec.model for spec in recipe.distill.extra_teachers],
            word_embeddings="frozen" if freeze else "trained",
            data=describe_data(data),
            augmentation=augmentation,
            stages=stages,
            steps=sum(stage["steps"] for stage in stages),
            best_step=final["best_step"],
            best_dev_accuracy=final["best_dev_accuracy"],
            history=final["history"],
            train_examples=len(train_split),
            train_seconds=round(seconds, 3),
            train_samples_per_s=round(samples / max(seconds, 1e-9), 2),
            teacher_parameters=count_parameters(teacher),
            student_parameters=student_params[0],
            teacher_non_embedding_parameters=count_parameters(teacher, embeddings=False),
            student_non_embedding_parameters=student_params[1],
        )
        run.drop_training()


def freeze_word_embeddings(student: nn.Module, freeze: bool) -> nn.Module:
    """`student`, its word embeddings fixed when `freeze`: the trainer optimises what requires
    a gradient, so a frozen table gets no dense gradient, no optimizer state and no update;
    every student kind has the HF accessor."""
    if freeze:
        student.get_input_embeddings().requires_grad_(False)
    return student


def describe_augmentation(ctx: RunContext) -> str:
    aug = ctx.recipe.augment
    if not aug.enabled:
        return "none"
    return (
        f"{aug.methods} x{aug.per_example} per example, labelled by the teacher "
        f"(cached in {cache_root() / 'augment'}; epochs grow with the set)"
    )
