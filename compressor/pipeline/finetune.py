"""`compressor finetune`: a backbone (or a classifier to re-tune) trained on the task, the
teacher of a later `compress`. Its own run kind, outside the compress chain."""

from __future__ import annotations

from pathlib import Path

from compressor.data import load_task_data
from compressor.distill.trainer import seed_fresh_weights, train
from compressor.models import count_parameters, load_classifier
from compressor.pipeline.context import console, describe_data
from compressor.recipe import Recipe
from compressor.runfolder import RunFolder
from compressor.tasks import task_named


def finetune(model: str, recipe: Recipe, out: Path, *, overwrite: bool, resume: bool) -> Path:
    """Fine-tune `model` on the recipe's data; return the folder of the kept teacher."""
    run = RunFolder.create(out, "finetune", recipe, overwrite=overwrite, resume=resume)
    if not run.done("train"):
        data = load_task_data(recipe.data)
        seed_fresh_weights(recipe.finetune.seed)
        classifier, tokenizer = load_classifier(model, data.num_labels, data.label_names, data.task)

        def ce_loss(m, batch, progress):
            out = m(**batch)
            return out.loss, {"ce": out.loss.item()}

        state = train(
            classifier,
            tokenizer,
            data.train,
            data.dev,
            recipe.finetune,
            max_length=recipe.data.max_length,
            out_dir=run.path / "training",
            compute_loss=ce_loss,
            resume=resume,
            description="fine-tuning teacher",
        )
        run.promote(run.path / "training", run.path / "model")
        run.complete(
            "train",
            base_model=str(model),
            data=describe_data(data),
            steps=state.step,
            best_step=state.best_step,
            dev_accuracy=state.best_dev_accuracy,
            dev_metric=task_named(data.task).metric,
            history=state.history,
            parameters=count_parameters(classifier),
            train_examples=state.train_examples,
            train_seconds=round(state.train_seconds, 3),
            train_samples_per_s=round(
                state.samples_per_second(recipe.finetune.batch_size, recipe.finetune.grad_accum), 2
            ),
        )
        run.drop_training()
    result = run.result("train")
    console.print(
        f"teacher: dev {result.get('dev_metric', 'accuracy')} {result['dev_accuracy']:.4f} "
        f"after {result['steps']} steps "
        f"({result.get('train_samples_per_s', 'n/a')} samples/s) -> {run.path / 'model'}"
    )
    return run.path / "model"
