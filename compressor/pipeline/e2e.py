"""End-to-end files: the fp32 and the quantized file each with the tokenizer inside the graph
(`exporters.e2e`), gated on every dev sentence; one that fails is removed and reported."""

from __future__ import annotations

from pathlib import Path

from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage
from compressor.tasks import DEFAULT_TASK


class EndToEnd(Stage):
    name = "e2e"

    def status(self, ctx: RunContext) -> str:
        return "putting the tokenizer into the graph (end-to-end files) and checking them"

    def enabled(self, ctx: RunContext) -> bool:
        if ctx.skip_export or ctx.mlm or not ctx.recipe.export.e2e:
            return False
        return ctx.data.task == DEFAULT_TASK

    def skipped_because(self, ctx: RunContext) -> str:
        if ctx.recipe.export.e2e and not (ctx.skip_export or ctx.mlm):
            return "end-to-end files return one label per sentence; this task tags words"
        return super().skipped_because(ctx)

    def plan(self, ctx: RunContext) -> str:
        return (
            "fp32 and quantized files also with the tokenizer inside (raw sentences in), kept "
            f"when their token ids and logits match on all {len(ctx.data.dev)} dev sentences"
        )

    def run(self, ctx: RunContext) -> None:
        from exporters.e2e import e2e_checked

        run, recipe = ctx.folder, ctx.recipe
        sources = [run.result("export")["path"], run.result("quantize").get("path")]
        made = []
        for source in [Path(p) for p in sources if p]:
            item = e2e_checked(source, ctx.data.dev, max_length=recipe.data.max_length,
                               tolerance=recipe.export.parity_tolerance,
                               recipe_hash=recipe.hash())  # fmt: skip
            if item.get("skipped"):
                console.print(f"[yellow]no end-to-end file for {source.name}: {item['skipped']}")
            elif item["path"] is None:
                console.print(f"[red]{source.name} end to end does not match it, not shipped: "
                              f"{item['gate']}")  # fmt: skip
            made.append(item)
        run.complete(self.name, files=made)
