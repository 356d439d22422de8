"""The training loop behind both `finetune` and `distill`, on Hugging Face `accelerate`.

One process here; `accelerate launch` spreads the same code over GPUs or nodes. The loop
owns what every run needs: gradient accumulation, seeded and resumable data order,
evaluation every N steps, keeping the best model, checkpoints a crash can resume from,
and a progress bar. What is optimised comes in as `compute_loss`.
"""

from __future__ import annotations

import math
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

from compressor import atomic
from compressor.data import Split
from compressor.distill.dev_score import dev_score
from compressor.errors import UserError
from compressor.progress import LoggedProgress, LogLine
from compressor.recipe import TrainConfig
from compressor.students import kind_of
from compressor.tasks import task_named

LossFn = Callable[
    [PreTrainedModel, dict[str, torch.Tensor], float], tuple[torch.Tensor, dict[str, float]]
]
STATE_FILE = "trainer_state.json"


MAX_GRAD_NORM = 1.0


def clip_factor(norm: float) -> float:
    """What `clip_grad_norm_` scaled the gradients by (torch's own formula); 0 when the norm
    is not finite (an fp16 overflow step, which the optimizer skips too)."""
    if not math.isfinite(norm):
        return 0.0
    return min(1.0, MAX_GRAD_NORM / (norm + 1e-6))


class TrainingHooks(Protocol):
    """What a method that acts on the model during training (the pruner) plugs in: it sees
    the gradients before each optimizer step and the step's loss parts after it, and is
    checkpointed with the run."""

    def after_backward(self, clip_factor: float) -> None:
        """`clip_factor` is what gradient clipping multiplied this step's gradients by."""

    def after_step(self, step: int, parts: dict[str, float]) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainState:
    """What a checkpoint needs besides tensors, and what the report shows."""

    step: int = 0
    total_steps: int = 0
    best_step: int = -1
    best_dev_accuracy: float = -1.0
    train_examples: int = 0
    train_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)

    def samples_per_second(self, batch_size: int, grad_accum: int) -> float:
        """Training throughput over optimizer steps only (evaluation and saving excluded)."""
        return self.step * batch_size * grad_accum / max(self.train_seconds, 1e-9)


def seed_fresh_weights(seed: int) -> None:
    """Seed before building a stage's fresh weights (a new classifier head, a projection, the
    Meta-KD domain head). `train` seeds only once they exist, so their values would
    otherwise depend on whatever ran earlier in the process: a comparison running many
    models in one process (benchmarks/) got other students than the same recipe run alone."""
    set_seed(seed)


def total_steps(cfg: TrainConfig, train_examples: int) -> int:
    """Optimizer steps of a run: `max_steps`, else `epochs` over the batches."""
    per_epoch = max(1, math.ceil(math.ceil(train_examples / cfg.batch_size) / cfg.grad_accum))
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))


def tokenize(
    split: Split, tokenizer: PreTrainedTokenizerBase, max_length: int, labels: bool = True
) -> list[dict]:
    """Tokenize once, unpadded, as the split's task reads its examples; batches are padded
    to their own longest example. Without `labels` (masked LM) the collator makes the
    targets."""
    task = task_named(split.task)
    return task.features(split.texts, split.pairs, split.labels if labels else None,
                         tokenizer, max_length)  # fmt: skip


class MaskingCollator:
    """BERT's masked-LM corruption (15 % of tokens: 80 % [MASK], 10 % random, 10 % kept),
    seeded by the batch's own token ids: the same batch is masked the same way every time,
    so dev accuracy is comparable across evaluations and a resumed run masks as the
    uninterrupted one did."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, probability: float, salt: int):
        self.inner = DataCollatorForLanguageModeling(tokenizer, mlm_probability=probability)
        self.salt = salt

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = b"".join(bytes(str(f["input_ids"]), "ascii") for f in features)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(zlib.crc32(ids) ^ self.salt)
            return self.inner(features)


class LengthGroupedEpochs(LengthGroupedSampler):
    """transformers' length-grouped batches (random groups of 50 batches, each sorted by
    length), then the batches themselves in random order: left sorted, each group fed 50
    batches from its longest sentences to its shortest, a drift the student's dev accuracy
    followed between evaluations. Drawn anew each epoch from (seed, epoch): the
    trainer's `set_epoch` reaches it through accelerate, so a resumed run gets the order the
    uninterrupted one had. A last, partial batch stays last, so every batch stays whole."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int) -> None:
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = list(super().__iter__())
        size = self.batch_size
        whole = len(order) // size * size
        picks = torch.randperm(whole // size, generator=self.generator).tolist()
        return iter([i for b in picks for i in order[b * size : (b + 1) * size]] + order[whole:])


def make_loader(
    features: list[dict],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    shuffle: bool,
    collator: Callable[[list[dict]], dict] | None = None,
    group_by_length_seed: int | None = None,
) -> DataLoader:
    """Batches padded to their longest member (labels too, by the collator of the task);
    shuffled, and with `group_by_length_seed` grouped by length."""
    collate = collator or DataCollatorWithPadding(tokenizer)
    if shuffle and group_by_length_seed is not None:
        lengths = [len(f["input_ids"]) for f in features]
        sampler = LengthGroupedEpochs(lengths, batch_size, group_by_length_seed)
        return DataLoader(features, batch_size=batch_size, sampler=sampler, collate_fn=collate)
    return DataLoader(features, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """Newest checkpoint whose state file was written (it is written last, atomically)."""
    done = [p for p in ckpt_root.glob("step-*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_split: Split,
    dev_split: Split,
    cfg: TrainConfig,
    *,
    max_length: int,
    out_dir: Path,
    compute_loss: LossFn,
    extra_modules: list[torch.nn.Module] | None = None,
    frozen_modules: list[torch.nn.Module] | None = None,
    resume: bool = False,
    description: str = "training",
    on_step: Callable[[int], None] | None = None,
    on_evaluate: Callable[[int, float], None] | None = None,
    hooks: TrainingHooks | None = None,
    keep_from_step: int = 0,
    mlm_probability: float | None = None,
    example_fields: dict[str, list] | None = None,
) -> TrainState:
    """Optimise `model` (and `extra_modules`, e.g. loss projections) and keep the best one.

    `out_dir/best` receives the best model by dev accuracy, or the last one with
    `cfg.keep == "last"` (saved by its student kind, with the tokenizer); `compute_loss`
    also receives the training progress in [0, 1] for scheduled terms;
    `out_dir/checkpoints/step-N` the resumable state. `frozen_modules` (the teacher) are
    only moved to the device. `hooks` act on the model between steps (pruning); evaluations
    before `keep_from_step` are logged but never kept (a model still being pruned). With
    `mlm_probability` the data is unlabelled text for a masked LM, and "dev accuracy" is
    the masked-token accuracy. `example_fields` are per-example values (a domain id, an
    instance weight) batched with the training examples, for a `compute_loss` that weighs
    examples one by one (Meta-KD). `on_evaluate(step, dev accuracy)` follows every
    evaluation: a search judges a candidate there, and may stop it by raising.
    """
    set_seed(cfg.seed)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=cfg.mixed_precision,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    extra = extra_modules or []
    mlm = mlm_probability is not None
    train_features = tokenize(train_split, tokenizer, max_length, labels=not mlm)
    dev_features = tokenize(dev_split, tokenizer, max_length, labels=not mlm)
    for name, values in (example_fields or {}).items():
        for feature, value in zip(train_features, values, strict=True):
            feature[name] = value
    data_task = None if mlm else task_named(train_split.task)
    if data_task is None:
        train_collate = MaskingCollator(tokenizer, mlm_probability, cfg.seed)
        dev_collate = MaskingCollator(tokenizer, mlm_probability, 0)
    else:
        train_collate = dev_collate = data_task.collator(tokenizer)
    train_loader = make_loader(
        train_features,
        tokenizer,
        cfg.batch_size,
        shuffle=True,
        collator=train_collate,
        group_by_length_seed=cfg.seed if cfg.group_by_length else None,
    )
    dev_loader = make_loader(
        dev_features,
        tokenizer,
        cfg.batch_size * 2,
        shuffle=False,
        collator=dev_collate,
    )
    params = [p for m in [model, *extra] for p in m.parameters() if p.requires_grad]
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    named = [(n, p) for m in [model, *extra] for n, p in m.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {
                "params": [p for n, p in named if not n.endswith(no_decay)],
                "weight_decay": cfg.weight_decay,
            },
            {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        fused=True,  # one kernel for all weights, the same update (`make bench-textbrewer`)
    )
    steps_per_epoch = max(1, math.ceil(len(train_loader) / cfg.grad_accum))
    total = total_steps(cfg, len(train_split))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    model, *extra, optimizer, train_loader, dev_loader, scheduler = accelerator.prepare(
        model, *extra, optimizer, train_loader, dev_loader, scheduler
    )
    for frozen in frozen_modules or []:
        frozen.to(accelerator.device).eval()
    if hooks is not None:
        accelerator.register_for_checkpointing(hooks)

    ckpt_root = Path(out_dir) / "checkpoints"
    state = TrainState(total_steps=total, train_examples=len(train_split))
    if resume and (ckpt := latest_checkpoint(ckpt_root)) is not None:
        accelerator.load_state(str(ckpt))
        state = TrainState(**atomic.read_json(ckpt / STATE_FILE))
        state.total_steps = total

    def evaluate_and_keep(loss: float) -> None:
        acc = dev_score(model, dev_loader, accelerator, data_task)
        state.history.append({"step": state.step, "loss": round(loss, 5), "dev_accuracy": acc})
        keep_last = cfg.keep == "last" and state.step == total
        eligible = state.step >= keep_from_step
        if eligible and (acc > state.best_dev_accuracy or keep_last):
            state.best_dev_accuracy, state.best_step = acc, state.step
            if accelerator.is_main_process:
                kept = accelerator.unwrap_model(model)
                with atomic.atomic_dir(Path(out_dir) / "best") as tmp:
                    kind_of(kept).save(kept, tokenizer, tmp)
        progress.update(task, acc=f"{acc:.4f}")
        if progress.logs_lines:  # besides the timed progress lines: each dev accuracy
            progress.console.print(
                f"{description}: step {state.step}/{total} loss {loss:.4f} dev {shown} {acc:.4f}"
            )
        if on_evaluate is not None:
            on_evaluate(state.step, acc)

    def checkpoint() -> None:
        target = ckpt_root / f"step-{state.step}"
        accelerator.save_state(str(target))
        if accelerator.is_main_process:
            atomic.write_json(target / STATE_FILE, asdict(state))
            for old in ckpt_root.glob("step-*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True)

    model.train()
    running = 0.0
    shown = data_task.short_metric if data_task else "acc"  # masked LM: masked-token accuracy
    progress = LoggedProgress(
        TextColumn(f"[bold]{description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"loss {{task.fields[loss]}}  dev {shown} {{task.fields[acc]}}"),
        TimeRemainingColumn(),
        disable=not accelerator.is_main_process,
    )
    log = LogLine(
        unit="step",
        fields=("loss",),
        items="samples",
        items_per_unit=cfg.batch_size * cfg.grad_accum * accelerator.num_processes,
    )
    with progress:
        task = progress.add_task(
            description, total=total, completed=state.step, log=log, loss="—", acc="—"
        )
        epoch = state.step // steps_per_epoch
        while state.step < total:
            train_loader.set_epoch(epoch)
            skip = (state.step - epoch * steps_per_epoch) * cfg.grad_accum
            loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
            step_started = time.perf_counter()
            for batch in loader:
                with accelerator.accumulate(model):
                    loss, parts = compute_loss(model, batch, state.step / total)
                    if not torch.isfinite(loss):
                        raise UserError(
                            f"loss became {loss.item()} at step {state.step} — lower the "
                            "learning rate or check the data; resume from the last checkpoint "
                            "with --resume"
                        )
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        norm = float(accelerator.clip_grad_norm_(params, MAX_GRAD_NORM))
                        if hooks is not None:
                            hooks.after_backward(clip_factor(norm))
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                if not accelerator.sync_gradients:
                    continue
                state.train_seconds += time.perf_counter() - step_started
                state.step += 1
                running = 0.9 * running + 0.1 * loss.item() if state.step > 1 else loss.item()
                progress.update(task, completed=state.step, loss=f"{running:.4f}")
                if hooks is not None:
                    hooks.after_step(state.step, parts)
                if state.step % cfg.eval_every == 0 or state.step == total:
                    evaluate_and_keep(running)
                if state.step % cfg.checkpoint_every == 0 or state.step == total:
                    checkpoint()
                if on_step is not None:
                    on_step(state.step)
                if state.step >= total:
                    break
                step_started = time.perf_counter()
            epoch += 1
    accelerator.wait_for_everyone()
    return state
