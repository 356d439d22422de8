"""AdaBERT's search, before distillation: it writes the cnn student's cells into the run
folder (`adabert.json` and the state), and the distillation stage builds the student from
them, so retraining, export and a resumed run never search again."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from compressor import atomic
from compressor.distill.trainer import seed_fresh_weights
from compressor.nas import adabert_search
from compressor.pipeline.context import RunContext, console
from compressor.pipeline.inputs import load_teacher
from compressor.pipeline.stage import Stage
from compressor.recipe import StudentConfig
from compressor.students import make_student

PLACEHOLDER_CELLS = [[("identity", 1, 2)]]
"""The student built only to lend the search its embeddings and projection."""


def searched_student(ctx: RunContext) -> StudentConfig:
    """The recipe's student, with the cells the search chose when it ran."""
    student = ctx.recipe.student
    if ctx.run is None or not ctx.folder.done(AdaBert.name):
        return student
    cells = ctx.folder.result(AdaBert.name)["cells"]
    return StudentConfig.model_validate(student.model_dump() | {"cells": cells})


class AdaBert(Stage):
    name = "adabert"

    def enabled(self, ctx: RunContext) -> bool:
        return ctx.recipe.adabert.enabled

    def skipped_because(self, ctx: RunContext) -> str:
        if ctx.recipe.student.kind != "cnn":
            return f"a {ctx.recipe.student.kind} student has no cells to search"
        return "the cells are the recipe's student.cells (adabert.enabled is false)"

    def plan(self, ctx: RunContext) -> str:
        cfg = ctx.recipe.adabert
        examples = min(cfg.max_examples, len(ctx.data.train))
        return (
            f"search one cell of {cfg.nodes} nodes, stacked 1..{cfg.max_cells} times, on "
            f"{examples} training examples for {cfg.epochs} epochs; L = {1 - cfg.gamma:g} CE "
            f"+ {cfg.gamma:g} KD (teacher-layer probes) + {cfg.beta:g} L_E"
        )

    def run(self, ctx: RunContext) -> None:
        recipe = ctx.recipe
        teacher, tokenizer = load_teacher(ctx)
        seed_fresh_weights(recipe.adabert.seed)
        base_cfg = StudentConfig.model_validate(
            recipe.student.model_dump() | {"cells": PLACEHOLDER_CELLS}
        )
        base, _ = make_student(teacher, tokenizer, base_cfg, ctx.data.train.sentences[:32])
        result = adabert_search(
            teacher,
            tokenizer,
            base.embeddings,
            base.projection,
            ctx.data.train,
            recipe.adabert,
            max_length=recipe.data.max_length,
        )
        record: dict[str, Any] = result.to_dict()
        atomic.write_json(ctx.folder.path / "adabert.json", record)
        ctx.folder.complete(self.name, **record)
        edges = ", ".join(f"{op} {src}->{dst}" for op, src, dst in result.cells[0])
        console.print(
            f"AdaBERT chose {result.depth} cell(s) of {escape(f'[{edges}]')} in "
            f"{result.seconds / 60:.1f} min (cost {result.cost:.2f} width-7 convolutions)"
        )
