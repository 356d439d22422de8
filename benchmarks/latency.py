"""Latency of several models side by side, each timed in its own fresh process.

Measured on the benchmark machine: timing several engines in one process inflated p50 by up to
1.7x, and a shared noisy machine drifts over minutes. So every (variant, round) is a new
`benchmarks.latency_worker` process, thread counts are pinned, and rounds run the variants
interleaved (A B A B) so that a per-round ratio compares runs that saw the same load.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from benchmarks.latency_worker import ENGINES
from benchmarks.stats import ratio_with_spread, summarize
from compressor.errors import UserError
from compressor.progress import LoggedProgress, LogLine

STDERR_TAIL_CHARS = 3000
MAX_KEPT_SAMPLES = 200
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Variant:
    """One model to time: a PyTorch folder (engine "pytorch" / "pytorch-compile") or a .onnx
    file ("onnxruntime"), on a device, at a precision (PyTorch) or on an ORT provider."""

    label: str
    model_path: Path
    engine: str
    device: str = "cpu"
    precision: str = "fp32"
    ort_provider: str = "cpu"


def _check_variants(variants: list[Variant]) -> None:
    if not variants:
        raise ValueError("run_latency needs at least one variant")
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise ValueError(f"variant labels must be unique, got {labels}")
    for v in variants:
        if v.engine not in ENGINES:
            raise UserError(f"{v.label}: unknown engine {v.engine!r} — use one of {list(ENGINES)}")
        if not Path(v.model_path).exists():
            raise UserError(f"{v.label}: {v.model_path} does not exist — check the model path")


def worker_env(threads: int) -> dict[str, str]:
    """Pin the OpenMP/BLAS pools too, so no library sizes itself to the whole machine."""
    env = dict(os.environ)
    for name in THREAD_VARS:
        env[name] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


Worker = Callable[[Variant, dict[str, Any], dict[str, str]], dict[str, Any]]


def _run_worker(variant: Variant, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.latency_worker", json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    return worker_result(variant, args, proc)


def worker_result(
    variant: Variant, args: dict[str, Any], proc: subprocess.CompletedProcess[str]
) -> dict[str, Any]:
    """The worker's JSON line, wherever it ran (here or on a device over SSH)."""
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (proc.stderr.strip() or proc.stdout.strip())[-STDERR_TAIL_CHARS:]
    raise RuntimeError(
        f"latency worker failed for {variant.label} ({variant.engine}, batch {args['batch']}, "
        f"seq_len {args['seq_len']}) with exit code {proc.returncode}:\n{tail}"
    )


def _aggregate(variant: Variant, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One result dict per variant and shape; percentiles pool the samples of all rounds."""
    first = rounds[0]
    pooled = summarize([s for r in rounds for s in r["samples_ms"]])
    return {
        "label": variant.label,
        "engine": variant.engine,
        "model_path": str(variant.model_path),
        "batch": first["batch"],
        "seq_len": first["seq_len"],
        "threads": first["threads"],
        "device": first.get("device", variant.device),
        "device_name": first.get("device_name"),
        "driver": first.get("driver"),
        "precision": first.get("precision", variant.precision),
        "provider": first["provider"],
        "engine_version": first["engine_version"],
        "n_samples": pooled["n"],
        "p50_ms": pooled["p50"],
        "p90_ms": pooled["p90"],
        "p99_ms": pooled["p99"],
        "mean_ms": pooled["mean"],
        "std_ms": pooled["std"],
        "min_ms": pooled["min"],
        "max_ms": pooled["max"],
        "round_p50s_ms": [summarize(r["samples_ms"])["p50"] for r in rounds],
        "throughput_per_s": first["batch"] * 1000.0 / pooled["p50"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
        "peak_device_mb": max((r.get("peak_device_mb") or 0.0 for r in rounds), default=0.0)
        or None,
        # a few hundred samples are enough to draw the distribution in the report
        "samples_ms": [s for r in rounds for s in r["samples_ms"]][:MAX_KEPT_SAMPLES],
    }


def run_latency(
    variants: list[Variant],
    *,
    batches: Sequence[int] = (1, 32),
    seq_lens: Sequence[int | str] = (128,),
    threads: int | Sequence[int] = 2,
    warmup: int = 10,
    iters: int = 50,
    rounds: int = 3,
    lengths: Sequence[int] | None = None,
    progress: bool = True,
    worker: Worker | None = None,
) -> list[dict[str, Any]]:
    """Time every variant at every (threads, batch, seq_len); one result dict per variant and
    setting. A seq_len of "dev" replays `lengths` (the dev sentences' token counts) in
    dynamically padded batches instead of one fixed shape. `worker` runs one (variant,
    round) in a fresh process: here by default, on a device for `benchmark --remote`.

    Results are ordered by setting, then by variant order. `round_p50s_ms` keeps one p50 per
    round so `speedups` can pair rounds; the pooled percentiles describe the whole distribution.
    """
    _check_variants(variants)
    worker = worker or _run_worker
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if "dev" in seq_lens and not lengths:
        raise ValueError("seq_len 'dev' needs the dev sentences' token counts (lengths)")
    thread_counts = [threads] if isinstance(threads, int) else list(threads)
    shapes = list(itertools.product(thread_counts, batches, seq_lens))
    total = len(shapes) * rounds * len(variants)
    results: list[dict[str, Any]] = []
    bar = LoggedProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not progress,
    )
    with bar:
        task = bar.add_task("latency", total=total, log=LogLine(items="runs"))
        for n_threads, batch, seq_len in shapes:
            env = worker_env(n_threads)
            per_variant: dict[str, list[dict[str, Any]]] = {v.label: [] for v in variants}
            for round_idx in range(rounds):
                for v in variants:
                    bar.update(
                        task,
                        description=f"latency {v.label} t{n_threads} b{batch} s{seq_len} "
                        f"round {round_idx + 1}/{rounds}",
                    )
                    args = {
                        "model_path": str(v.model_path),
                        "engine": v.engine,
                        "device": v.device,
                        "precision": v.precision,
                        "ort_provider": v.ort_provider,
                        "batch": batch,
                        "seq_len": seq_len,
                        "threads": n_threads,
                        "warmup": warmup,
                        "iters": iters,
                    }
                    if seq_len == "dev":
                        args["lengths"] = list(lengths or [])
                    per_variant[v.label].append(worker(v, args, env))
                    bar.advance(task)
            results.extend(_aggregate(v, per_variant[v.label]) for v in variants)
    return results


def speedups(results: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """baseline p50 / candidate p50 per round, as a median with its min-max over rounds.

    Rounds are paired by index (they ran back to back), so machine drift between rounds
    widens the range instead of biasing the ratio. Shapes where either label is missing are
    skipped.
    """

    def setting(r: dict[str, Any]) -> tuple[Any, Any, Any]:
        return r["batch"], r["seq_len"], r.get("threads")

    by_key = {(r["label"], *setting(r)): r for r in results}
    shapes = list(dict.fromkeys(setting(r) for r in results))
    out: list[dict[str, Any]] = []
    for baseline, candidate in pairs:
        for batch, seq_len, threads in shapes:
            base = by_key.get((baseline, batch, seq_len, threads))
            cand = by_key.get((candidate, batch, seq_len, threads))
            if base is None or cand is None:
                continue
            spread = ratio_with_spread(base["round_p50s_ms"], cand["round_p50s_ms"])
            out.append(
                {
                    "baseline": baseline,
                    "candidate": candidate,
                    "batch": batch,
                    "seq_len": seq_len,
                    "threads": threads,
                    "ratio": spread["median"],
                    "ratio_min": spread["min"],
                    "ratio_max": spread["max"],
                }
            )
    return out
