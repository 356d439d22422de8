"""HomoDistil (Liang et al., ICLR 2023): prune the teacher's exact copy (or the distilled
student) while distilling, then save the physically smaller model as the run's student."""

from __future__ import annotations

from compressor import atomic
from compressor.archs import heads_per_layer
from compressor.distill.trainer import total_steps
from compressor.models import count_parameters
from compressor.pipeline.context import RunContext, describe_data
from compressor.pipeline.distill import describe_loss
from compressor.pipeline.inputs import load_teacher, training_split
from compressor.pipeline.stage import Stage
from compressor.students import kind_of, load_trained


class Prune(Stage):
    name = "prune"

    def enabled(self, ctx: RunContext) -> bool:
        return ctx.recipe.prune.enabled

    def plan(self, ctx: RunContext) -> str:
        """The targets checked against the teacher's shapes, and the schedule."""
        from compressor.prune.pruner import targets
        from compressor.prune.units import layout_of

        cfg, recipe = ctx.recipe.prune, ctx.recipe
        teacher, _tokenizer = load_teacher(ctx)
        distill_cfg, train_cfg = recipe.prune_plan()
        wanted = targets(cfg, layout_of(teacher))
        total = total_steps(train_cfg, len(ctx.data.train))
        return (
            f"{'masked-LM (task-agnostic)' if cfg.objective == 'mlm' else 'task'} distillation, "
            f"from the {'teacher' if cfg.start == 'teacher' else 'distilled student'} to "
            f"{wanted} ({cfg.criterion}, cubic from step {int(cfg.begin * total)} to "
            f"{int(cfg.end * total)} every {cfg.every}); {total} steps of batch "
            f"{train_cfg.batch_size}, lr {train_cfg.lr}; {describe_loss(distill_cfg)}"
        )

    def run(self, ctx: RunContext) -> None:
        import copy

        from compressor.prune.homodistil import prune_while_distilling, thin_trace

        run, recipe, data = ctx.folder, ctx.recipe, ctx.data
        teacher, tokenizer = load_teacher(ctx)
        if recipe.prune.start == "teacher":
            student = copy.deepcopy(teacher).requires_grad_(True)
            source = "an exact copy of the teacher"
        else:
            student = load_trained(ctx.model_dir)
            source = "the distilled student"
        before = count_parameters(student), count_parameters(student, embeddings=False)
        train_split, augmentation = (data.train, None) if ctx.mlm else training_split(ctx)
        outcome = prune_while_distilling(
            teacher,
            student,
            tokenizer,
            train_split,
            data.dev,
            recipe,
            run.path / "training" / "prune",
            resume=ctx.resume,
        )
        with atomic.atomic_dir(ctx.model_dir) as tmp:
            kind_of(outcome.model).save(outcome.model, tokenizer, tmp)
        state, pruner = outcome.state, outcome.pruner
        config = outcome.model.config
        _distill_cfg, train_cfg = recipe.prune_plan()
        run.complete(
            self.name,
            teacher=ctx.teacher,
            source=source,
            objective=recipe.prune.objective,
            data=describe_data(data),
            augmentation=augmentation,
            steps=state.step,
            best_step=state.best_step,
            best_dev_accuracy=state.best_dev_accuracy,
            history=state.history,
            train_examples=len(train_split),
            train_seconds=round(state.train_seconds, 3),
            train_samples_per_s=round(
                state.samples_per_second(train_cfg.batch_size, train_cfg.grad_accum), 2
            ),
            targets=pruner.targets,
            kept=pruner.masks.kept(),
            criterion=recipe.prune.criterion,
            schedule={"begin": pruner.begin, "end": pruner.end, "every": recipe.prune.every},
            architecture={
                "hidden_size": config.hidden_size,
                "intermediate_size": config.intermediate_size,
                "heads_per_layer": heads_per_layer(outcome.model),
            },
            shrink_max_abs_diff=outcome.shrink_max_abs_diff,
            trace=thin_trace(pruner.trace),
            parameters_before=before[0],
            non_embedding_parameters_before=before[1],
            teacher_parameters=count_parameters(teacher),
            student_parameters=count_parameters(outcome.model),
            teacher_non_embedding_parameters=count_parameters(teacher, embeddings=False),
            student_non_embedding_parameters=count_parameters(outcome.model, embeddings=False),
        )
        run.drop_training()
