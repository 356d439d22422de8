"""Training throughput of our distillation loop against TextBrewer's, as a ratio from one run.

    python -m benchmarks.experiments.textbrewer_compare <teacher_dir> <out_dir>
        [--steps N] [--rounds R]
        [--batch-size B] [--threads T]

Both tools distil the same 3-layer student (cut from the same teacher by `build_student`)
with plain Hinton KD (T = 2, alpha = 0.5, no intermediate terms), the same tokenized SST-2
examples in the same batches and order, AdamW with our trainer's parameter groups, the same
linear warmup schedule, gradient clipping at 1.0, the same seed, for the same number of
optimizer steps. Only the loop differs: `compressor.distill.trainer.train` (accelerate) with
`DistillObjective`, against `textbrewer.GeneralDistiller` with a logits + hard-loss adaptor.

Same loss. TextBrewer's `kd_loss_type='ce'` is the cross-entropy H(p_T, p_S) at temperature T
without the T^2 factor, while ours is T^2 * KL(p_T || p_S). KL = H(p_T, p_S) - H(p_T) and
H(p_T) does not depend on the student, so `kd_loss_weight = alpha * T^2` and
`hard_label_weight = 1 - alpha` give TextBrewer our gradients exactly, and its loss value is
ours plus alpha * T^2 * H(p_T). Before timing, both losses are computed on the same first
batch with identical students; the run stops unless the loss values agree within 1e-5 after
that constant and every parameter gradient agrees within 1e-5.

Throughput is samples/s = optimizer steps x batch / seconds in the training loop, evaluation
and saving excluded for both: ours is `TrainState.train_seconds`; TextBrewer's is the wall time
of `distiller.train()` minus the time inside its `save_and_callback` (one save plus the
dev-accuracy callback, at the last step). Each (tool, round) is a fresh process with pinned
thread pools, and rounds alternate the order (A B, B A, ...), so the per-round ratio compares
runs that saw the same machine load; the report gives its median and min-max.

A third contender, `ours_cached`, is our loop as a logits-only recipe runs it: the teacher's
logits from a fresh cache filled in the same process first (throughput with and without it).
A fourth, `ours_bf16`, is `ours_cached` in bfloat16 autocast: the same recipe, batches and
weights, in a precision TextBrewer 0.2.1 offers only on GPUs (apex fp16). A fifth,
`ours_regime`, adds the speed options of `recipes/retention.yaml`: the student's
word embeddings frozen and batches grouped by length. It trains fewer weights on other
batches, so it is not the same recipe: it measures what those options buy, which a
TextBrewer user could reproduce by hand (its 0.2.1 takes cached teacher outputs, and any
parameter can be left out of its optimizer); the loop-against-loop figure is `ours`.

TextBrewer's side (its configuration, the two compatibility workarounds it needs, its timed
run) is `textbrewer_peer`. Writes `textbrewer_compare.md` and `.json` in the output, and the
same report into benchmarks/results/bench-textbrewer.md and .json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from benchmarks.experiments.results import RESULTS, write_results
from benchmarks.experiments.textbrewer_peer import (
    WORKAROUNDS,
    batch_loss,
    run_textbrewer,
    textbrewer_loader,
)
from benchmarks.experiments.textbrewer_report import TOOLS, render_markdown
from benchmarks.stats import ratio_with_spread
from compressor import atomic
from compressor.data import TaskData, load_task_data
from compressor.distill.objective import CACHED_LOGITS, DistillObjective
from compressor.distill.trainer import make_loader, tokenize, train
from compressor.models import load_classifier
from compressor.recipe import Recipe, load_recipe
from compressor.students.transformer import build_student
from compressor.teacher_outputs import teacher_logits

SEED = 42
TOLERANCE = 1e-5
STDERR_TAIL_CHARS = 3000
THROUGHPUT_DEFINITION = (
    "optimizer steps x batch / seconds in the training loop; evaluation and saving excluded "
    "(ours: TrainState.train_seconds; TextBrewer: distiller.train() wall time minus its "
    "save_and_callback)"
)
RESULTS_NAME = "bench-textbrewer"
VERSIONED = ("torch", "transformers", "accelerate", "textbrewer")


def shared_recipe(steps: int, batch_size: int, data_source: str | None = None) -> Recipe:
    """The one recipe both tools read: plain Hinton KD, one epoch of exactly `steps` batches,
    evaluation and checkpoint only at the last step."""
    return load_recipe(
        None,
        {
            "data.source": data_source,
            "data.max_train_examples": steps * batch_size,
            "student.layers": 3,
            "distill.temperature": 2.0,
            "distill.alpha": 0.5,
            "distill.intermediate": [],
            "train.max_steps": steps,
            "train.batch_size": batch_size,
            "train.lr": 1e-4,  # the rows before compress's default became the regime's
            "train.group_by_length": False,  # the same batches as TextBrewer's
            "student.freeze_word_embeddings": False,
            "train.eval_every": steps + 1,
            "train.checkpoint_every": steps + 1,
            "train.seed": SEED,
        },
    )


def load_inputs(
    teacher_dir: str, recipe: Recipe
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, TaskData]:
    """The frozen teacher, its tokenizer and the task data, as the distillation stage has them."""
    teacher, tokenizer = load_classifier(teacher_dir)
    teacher.requires_grad_(False)
    return teacher, tokenizer, load_task_data(recipe.data)


def check_same_objective(teacher_dir: str, recipe: Recipe) -> dict[str, Any]:
    """Same batches, same loss, same gradients in both tools, or a RuntimeError.

    The students run in eval mode so that dropout does not make the two forward passes differ.
    """
    teacher, tokenizer, data = load_inputs(teacher_dir, recipe)
    cfg = recipe.train
    features = tokenize(data.train, tokenizer, recipe.data.max_length)
    set_seed(cfg.seed)
    accelerator = Accelerator(dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    ours_loader = accelerator.prepare(make_loader(features, tokenizer, cfg.batch_size, True))
    ours_loader.set_epoch(0)
    ours_batches = list(ours_loader)
    tb_batches = list(textbrewer_loader(features, tokenizer, cfg.batch_size, cfg.seed))
    if len(ours_batches) != len(tb_batches) or not all(
        a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        for a, b in zip(ours_batches, tb_batches, strict=True)
    ):
        raise RuntimeError("TextBrewer's batches differ from our trainer's — fix textbrewer_loader")
    batch = tb_batches[0]

    ours_student = build_student(teacher, recipe.student).eval()
    ours_loss, _parts = DistillObjective(teacher, ours_student, recipe.distill)(ours_student, batch)
    ours_loss.backward()

    tb_student = build_student(teacher, recipe.student).eval()
    tb_loss = batch_loss(teacher, tb_student, recipe, batch)
    tb_loss.backward()

    d = recipe.distill
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        log_p_t = F.log_softmax(teacher(**inputs).logits / d.temperature, dim=-1)
        entropy = float(-(log_p_t.exp() * log_p_t).sum(-1).mean())
    offset = d.alpha * d.temperature**2 * entropy
    tb_grads = dict(tb_student.named_parameters())
    grad_gap = max(
        float((p.grad - tb_grads[n].grad).abs().max()) for n, p in ours_student.named_parameters()
    )
    result = {
        "batch_size": cfg.batch_size,
        "batches_identical": len(ours_batches),
        "ours_loss": ours_loss.item(),
        "textbrewer_loss": tb_loss.item(),
        "teacher_entropy_term": offset,
        "loss_gap": abs(tb_loss.item() - offset - ours_loss.item()),
        "max_grad_gap": grad_gap,
        "tolerance": TOLERANCE,
    }
    if result["loss_gap"] > TOLERANCE or grad_gap > TOLERANCE:
        raise RuntimeError(f"the two tools optimise different losses: {result}")
    return result


def run_ours(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: TaskData,
    recipe: Recipe,
    cached: bool = False,
    regime: bool = False,
    bf16: bool = False,
) -> dict[str, Any]:
    """One distillation with our trainer, as the pipeline's distillation stage runs it; with
    `cached`, on the teacher's logits from a fresh cache that this call fills first; with
    `regime`, word embeddings frozen and batches grouped by length as well; with `bf16`, in
    bfloat16 autocast (`train.mixed_precision: bf16`)."""
    student = build_student(teacher, recipe.student)
    train_cfg = recipe.train
    if bf16:
        train_cfg = train_cfg.model_copy(update={"mixed_precision": "bf16"})
    if regime:
        student.get_input_embeddings().requires_grad_(False)
        train_cfg = train_cfg.model_copy(update={"group_by_length": True})
    objective = DistillObjective(teacher, student, recipe.distill)
    with tempfile.TemporaryDirectory() as tmp:
        fields, fill_seconds = None, 0.0
        if cached:
            started = time.perf_counter()
            logits = teacher_logits(teacher, tokenizer, data.train, Path(tmp) / "logits",
                                    max_length=recipe.data.max_length,
                                    batch_size=recipe.train.batch_size)  # fmt: skip
            fill_seconds = time.perf_counter() - started
            fields = {CACHED_LOGITS: [row.tolist() for row in logits]}
        state = train(
            student,
            tokenizer,
            data.train,
            data.dev,
            train_cfg,
            max_length=recipe.data.max_length,
            out_dir=Path(tmp),
            compute_loss=objective,
            extra_modules=objective.modules,
            frozen_modules=[teacher],
            description="ours: Hinton KD"
            + (" (cached teacher logits)" if cached else "")
            + (", bfloat16" if bf16 else "")
            + (", frozen word embeddings, grouped batches" if regime else ""),
            example_fields=fields,
        )
    return {
        "steps": state.step,
        "train_seconds": state.train_seconds,
        "dev_accuracy": state.best_dev_accuracy,
        "cache_fill_seconds": fill_seconds,
    }


def worker(tool: str, teacher_dir: str, recipe: Recipe, threads: int, result: Path) -> None:
    """Body of one (tool, round) process: train, then write the timing to `result`."""
    torch.set_num_threads(threads)
    runs = {"ours": run_ours, "ours_cached": partial(run_ours, cached=True),
            "ours_bf16": partial(run_ours, cached=True, bf16=True),
            "ours_regime": partial(run_ours, cached=True, regime=True),
            "textbrewer": run_textbrewer}  # fmt: skip
    outcome = runs[tool](*load_inputs(teacher_dir, recipe), recipe)
    samples = outcome["steps"] * recipe.train.batch_size
    outcome["samples_per_s"] = samples / max(outcome["train_seconds"], 1e-9)
    fill = outcome.get("cache_fill_seconds", 0.0)
    outcome["samples_per_s_with_fill"] = samples / max(outcome["train_seconds"] + fill, 1e-9)
    outcome["torch_threads"] = torch.get_num_threads()
    atomic.write_json(result, outcome)


def run_worker(tool: str, teacher_dir: str, steps: int, batch_size: int, threads: int) -> dict:
    """One tool in a fresh process with pinned thread pools, so no round inherits another's
    allocator or thread state."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [
            sys.executable, "-m", "benchmarks.experiments.textbrewer_compare", teacher_dir, tmp,
            "--steps", str(steps), "--batch-size", str(batch_size), "--threads", str(threads),
            "--worker", tool,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0 or not result.is_file():
            tail = (proc.stderr.strip() or proc.stdout.strip())[-STDERR_TAIL_CHARS:]
            raise RuntimeError(f"{tool} worker failed with exit code {proc.returncode}:\n{tail}")
        return json.loads(result.read_text(encoding="utf-8"))


def compare(
    teacher_dir: str,
    out: Path,
    *,
    steps: int,
    rounds: int,
    batch_size: int,
    threads: int,
    results: Path | None = None,
) -> dict[str, Any]:
    """Objective check, then `rounds` alternating rounds; writes the JSON and Markdown report
    into `out` and, with `results`, the same report into the committed results file."""
    recipe = shared_recipe(steps, batch_size)
    check = check_same_objective(teacher_dir, recipe)
    print(f"objective check passed: {check}", flush=True)
    per_round = []
    for r in range(rounds):
        order = TOOLS if r % 2 == 0 else TOOLS[::-1]
        row: dict[str, Any] = {"round": r + 1, "order": list(order)}
        for tool in order:
            row[tool] = run_worker(tool, teacher_dir, steps, batch_size, threads)
            print(f"round {r + 1} {tool}: {row[tool]['samples_per_s']:.2f} samples/s", flush=True)
        peer = row["textbrewer"]["samples_per_s"]
        row["ratio"] = row["ours"]["samples_per_s"] / peer
        row["ratio_cached"] = row["ours_cached"]["samples_per_s"] / peer
        row["ratio_cached_with_fill"] = row["ours_cached"]["samples_per_s_with_fill"] / peer
        row["ratio_bf16"] = row["ours_bf16"]["samples_per_s"] / peer
        row["ratio_regime"] = row["ours_regime"]["samples_per_s"] / peer
        per_round.append(row)
    sps = {tool: [row[tool]["samples_per_s"] for row in per_round] for tool in TOOLS}
    report = {
        "question": "training throughput of one recipe, ours vs TextBrewer, same run",
        "setup": {
            "teacher": teacher_dir,
            "student_layers": recipe.student.layers,
            "loss": f"Hinton KD, T={recipe.distill.temperature}, alpha={recipe.distill.alpha}",
            "steps": steps,
            "batch_size": batch_size,
            "train_examples": steps * batch_size,
            "lr": recipe.train.lr,
            "seed": SEED,
            "threads": threads,
            "torch_threads": per_round[0]["ours"]["torch_threads"],
            "throughput": THROUGHPUT_DEFINITION,
            "versions": {name: _version(name) for name in VERSIONED},
        },
        "objective_check": check,
        "rounds": per_round,
        "samples_per_s_median": {tool: statistics.median(v) for tool, v in sps.items()},
        "ratio_ours_over_textbrewer": ratio_with_spread(sps["ours"], sps["textbrewer"]),
        "ratio_cached_over_textbrewer": ratio_with_spread(sps["ours_cached"], sps["textbrewer"]),
        "ratio_cached_with_fill_over_textbrewer": ratio_with_spread(
            [row["ours_cached"]["samples_per_s_with_fill"] for row in per_round],
            sps["textbrewer"],
        ),
        "ratio_bf16_over_textbrewer": ratio_with_spread(sps["ours_bf16"], sps["textbrewer"]),
        "ratio_regime_over_textbrewer": ratio_with_spread(sps["ours_regime"], sps["textbrewer"]),
        "textbrewer_workarounds": WORKAROUNDS,
    }
    text = render_markdown(report)
    atomic.write_json(out / "textbrewer_compare.json", report)
    atomic.write_text(out / "textbrewer_compare.md", text)
    if results is not None:
        write_results(RESULTS_NAME, text, report, folder=results)
    return report


def _version(name: str) -> str:
    """A package's installed version; 'not installed' rather than an error, since the report
    is only ever written after TextBrewer has run (the objective check imports it)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher_dir", help="fine-tuned classifier folder")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        recipe = shared_recipe(args.steps, args.batch_size)
        worker(args.worker, args.teacher_dir, recipe, args.threads, args.out_dir / "result.json")
        return
    report = compare(
        args.teacher_dir,
        args.out_dir,
        steps=args.steps,
        rounds=args.rounds,
        batch_size=args.batch_size,
        threads=args.threads,
        results=RESULTS,
    )
    ratio = report["ratio_ours_over_textbrewer"]
    print(
        f"ours / TextBrewer samples/s: {ratio['median']:.3f} "
        f"(min {ratio['min']:.3f}, max {ratio['max']:.3f}) -> {args.out_dir}"
    )


if __name__ == "__main__":
    main()
