"""TextBrewer's side of the throughput comparison (`textbrewer_compare`): its distiller set up
to optimise our recipe's loss on our trainer's batches, and one timed run of it.

TextBrewer 0.2.1.post1 (2020) against torch 2.13 / transformers 4.57: its only breakage is
the import of `SummaryWriter` from tensorboardX or, failing that, torch.utils.tensorboard
(which needs the tensorboard package). The writer is only built when `log_dir` is set, which
it is not here, so `import_textbrewer` registers a stub `tensorboardX` module before the
import instead of installing tensorboard. Separately, TextBrewer passes a batch as keywords
only when `type(batch) is dict`; the collator's BatchEncoding is a UserDict, so batches go
through TextBrewer's own `batch_postprocessor=dict` hook. Nothing in TextBrewer is patched.
Install it with `pip install --no-deps textbrewer==0.2.1.post1` (`make bench-textbrewer`
does).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
import types
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)

from compressor.data import TaskData
from compressor.distill.dev_score import dev_score
from compressor.distill.trainer import make_loader, tokenize
from compressor.recipe import Recipe, TrainConfig
from compressor.students.transformer import build_student
from compressor.tasks import task_named

WORKAROUNDS = [
    "a stub `tensorboardX` module is registered before importing textbrewer: its "
    "SummaryWriter import needs tensorboard otherwise, and the writer is never built "
    "(log_dir=None)",
    "batches reach TextBrewer through batch_postprocessor=dict: DataCollatorWithPadding yields "
    "a BatchEncoding, which fails TextBrewer's `type(batch) is dict` test and would be "
    "unpacked positionally as model(*batch)",
]


def import_textbrewer() -> types.ModuleType:
    """Import TextBrewer without tensorboard (see the module docstring); a real tensorboardX
    or tensorboard, where installed, is left to be used."""
    if "tensorboardX" not in sys.modules and not any(
        importlib.util.find_spec(name) for name in ("tensorboardX", "tensorboard")
    ):
        stub = types.ModuleType("tensorboardX")
        stub.SummaryWriter = None  # only built when log_dir is set, never here
        sys.modules["tensorboardX"] = stub
    import textbrewer

    return textbrewer


def textbrewer_loader(
    features: list[dict], tokenizer: PreTrainedTokenizerBase, batch_size: int, seed: int
) -> DataLoader:
    """Our trainer's batches in our trainer's order: accelerate's seedable sampler draws
    epoch 0 as `randperm(n)` from a generator seeded with the training seed.
    `textbrewer_compare.check_same_objective` verifies every batch against the prepared
    loader."""
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        features,
        batch_size=batch_size,
        sampler=order.tolist(),
        collate_fn=DataCollatorWithPadding(tokenizer),
    )


def hinton_adaptor(batch: dict[str, torch.Tensor], outputs: Any) -> dict[str, torch.Tensor]:
    """What TextBrewer reads of a forward pass: logits for KD and, since the batch carries
    labels, the model's own cross-entropy as the hard-label loss."""
    return {"logits": outputs.logits, "losses": outputs.loss}


def textbrewer_configs(textbrewer: types.ModuleType, recipe: Recipe, out_dir: str) -> tuple:
    """TrainingConfig and DistillationConfig equal to the recipe's loss (`textbrewer_compare`'s
    docstring derives the weights)."""
    d = recipe.distill
    train_config = textbrewer.TrainingConfig(
        device="cpu", log_dir=None, output_dir=out_dir, ckpt_steps=recipe.train.max_steps
    )
    distill_config = textbrewer.DistillationConfig(
        temperature=d.temperature,
        kd_loss_type="ce",
        kd_loss_weight=d.alpha * d.temperature**2,
        hard_label_weight=1 - d.alpha,
    )
    return train_config, distill_config


def distiller(
    teacher: PreTrainedModel, student: PreTrainedModel, recipe: Recipe, out_dir: str
) -> Any:
    """One GeneralDistiller for both the objective check and the timed run, so the check
    covers the configuration that is timed."""
    textbrewer = import_textbrewer()
    return textbrewer.GeneralDistiller(
        *textbrewer_configs(textbrewer, recipe, out_dir),
        model_T=teacher,
        model_S=student,
        adaptor_T=hinton_adaptor,
        adaptor_S=hinton_adaptor,
    )


def batch_loss(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    recipe: Recipe,
    batch: dict[str, torch.Tensor],
) -> torch.Tensor:
    """TextBrewer's total loss on one batch, not yet backpropagated."""
    with tempfile.TemporaryDirectory() as tmp:
        loss, _parts = distiller(teacher, student, recipe, tmp).train_on_batch(dict(batch), {})
    return loss


def adamw(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """The optimizer `trainer.train` builds: no weight decay on biases and LayerNorm weights."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [
            {
                "params": [p for n, p in named if not n.endswith(no_decay)],
                "weight_decay": cfg.weight_decay,
            },
            {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )


def run_textbrewer(
    teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: TaskData, recipe: Recipe
) -> dict[str, Any]:
    """One distillation with TextBrewer's GeneralDistiller, dev accuracy from its callback.
    The clock stops around its `save_and_callback`, so saving and evaluation are excluded as
    they are from our `TrainState.train_seconds`."""
    student = build_student(teacher, recipe.student)
    cfg = recipe.train
    max_length = recipe.data.max_length
    loader = textbrewer_loader(
        tokenize(data.train, tokenizer, max_length), tokenizer, cfg.batch_size, cfg.seed
    )
    dev_loader = make_loader(
        tokenize(data.dev, tokenizer, max_length), tokenizer, cfg.batch_size * 2, shuffle=False
    )
    final: dict[str, Any] = {}

    def evaluate(model: PreTrainedModel, step: int) -> None:
        task = task_named(data.dev.task)
        final.update(steps=step, dev_accuracy=dev_score(model, dev_loader, Accelerator(), task))

    with tempfile.TemporaryDirectory() as tmp:
        tb = distiller(teacher, student, recipe, tmp)
        save_and_callback = tb.save_and_callback
        excluded = 0.0

        def timed_save_and_callback(*args: Any, **kwargs: Any) -> None:
            nonlocal excluded
            started = time.perf_counter()
            save_and_callback(*args, **kwargs)
            excluded += time.perf_counter() - started

        tb.save_and_callback = timed_save_and_callback
        optimizer = adamw(student, cfg)
        set_seed(cfg.seed)
        started = time.perf_counter()
        with tb:
            tb.train(
                optimizer,
                loader,
                num_steps=cfg.max_steps,
                scheduler_class=get_linear_schedule_with_warmup,
                scheduler_args={
                    "num_warmup_steps": int(cfg.warmup_ratio * cfg.max_steps),
                    "num_training_steps": cfg.max_steps,
                },
                max_grad_norm=1.0,
                callback=evaluate,
                batch_postprocessor=dict,
            )
        train_seconds = time.perf_counter() - started - excluded
    return {**final, "train_seconds": train_seconds}
