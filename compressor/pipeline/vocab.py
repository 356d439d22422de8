"""Vocabulary pruning: the student keeps only the training text's tokens; training sentences
must give the same logits before and after, or the student is left as it was."""

from __future__ import annotations

from compressor import atomic
from compressor.models import count_parameters, load_tokenizer
from compressor.pipeline.context import RunContext, size_mb
from compressor.pipeline.stage import Stage
from compressor.students import kind_of, load_trained


class Vocab(Stage):
    name = "vocab"

    def status(self, ctx: RunContext) -> str:
        return "pruning the vocabulary to the training text's tokens"

    def enabled(self, ctx: RunContext) -> bool:
        return ctx.recipe.vocab.prune and not ctx.mlm

    def plan(self, ctx: RunContext) -> str:
        return "keep only the training text's tokens (same logits on 64 training sentences)"

    def run(self, ctx: RunContext) -> None:
        import torch

        from compressor.prune.vocab import check_same_logits, prune_vocabulary

        model_dir, recipe, data = ctx.model_dir, ctx.recipe, ctx.data
        model = load_trained(model_dir).eval()
        tokenizer = load_tokenizer(model_dir)
        probe = data.train.take(64)

        def logits(tok) -> torch.Tensor:
            batch = tok(probe.sentences, probe.pairs, truncation=True, padding=True,
                        max_length=recipe.data.max_length, return_tensors="pt")  # fmt: skip
            with torch.no_grad():
                return model(**batch).logits

        before, size_before = logits(tokenizer), size_mb(model_dir)
        train = data.train
        new_tokenizer, kept = prune_vocabulary(model, tokenizer, train.sentences, train.pairs)
        diff = float((logits(new_tokenizer) - before).abs().max())
        check_same_logits(diff, len(probe))
        with atomic.atomic_dir(model_dir) as tmp:
            kind_of(model).save(model, new_tokenizer, tmp)
        ctx.folder.complete(
            self.name,
            **kept,
            size_mb_before=size_before,
            size_mb_after=size_mb(model_dir),
            max_abs_diff_on_train_text=diff,
            student_parameters=count_parameters(model),
        )
