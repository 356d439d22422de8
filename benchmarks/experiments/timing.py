"""One interleaved latency run of a set of ONNX files against the teacher's, kept beside the
experiment's runs and reused while it asks for the same files: a rerun that only rebuilds a
table does not time everything again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency import Variant
from compressor import atomic

BASELINES = ("teacher", "teacher int8")


def cached_timing(
    cache: Path,
    variants: list[Variant],
    *,
    lengths: Callable[[], list[int]],
    batches: Sequence[int],
    seq_lens: Sequence[int | str],
    threads: int,
    iters: int,
) -> dict[str, Any]:
    """`variants` (the teacher's two files first) timed at every shape, 3 paired rounds, with
    each later file's speed-up over both teacher files. `lengths` is called only when the
    files are timed (the dev lengths take a tokenizer pass)."""
    from benchmarks.latency import run_latency, speedups

    wanted = [[v.label, str(v.model_path)] for v in variants]
    if cache.is_file() and (kept := atomic.read_json(cache))["variants"] == wanted:
        return kept
    results = run_latency(variants, batches=tuple(batches), seq_lens=tuple(seq_lens),
                          lengths=lengths() if "dev" in seq_lens else None, threads=threads,
                          warmup=3, iters=iters, rounds=3)  # fmt: skip
    pairs = [(base, v.label) for base in BASELINES for v in variants[1:]]
    timing = {"variants": wanted, "threads": threads, "results": results,
              "speedups": speedups(results, pairs)}  # fmt: skip
    atomic.write_json(cache, timing)
    return timing
