"""This machine's CPU: PyTorch eager (and torch.compile) against ONNX Runtime, every model in
its own process, teacher and students interleaved, intra-op threads swept."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from benchmarks.latency import Variant, Worker, run_latency, speedups
from benchmarks.targets import TEACHER_INT8, Artifacts
from benchmarks.targets.sections import Block, LatencySection, latency_section
from compressor.registry import TARGETS

if TYPE_CHECKING:
    from compressor.recipe import BenchmarkConfig

COMPILED = " torch.compile"
OPTIMIZED = "student ONNX optimized"


def cpu_variants(arts: Artifacts, *, torch_compile: bool) -> list[Variant]:
    variants = [Variant("teacher ONNX", arts.teacher_onnx, "onnxruntime")]
    if arts.pytorch:
        variants.insert(0, Variant("teacher PyTorch", arts.teacher_dir, "pytorch"))
    if arts.teacher_quantized is not None:
        variants.append(Variant(TEACHER_INT8, arts.teacher_quantized, "onnxruntime"))
    if arts.pytorch:
        variants.append(Variant("student PyTorch", arts.student_dir, "pytorch"))
    if arts.student_onnx is not None:
        variants.append(Variant("student ONNX", arts.student_onnx, "onnxruntime"))
    if arts.optimized is not None:
        variants.append(Variant(OPTIMIZED, arts.optimized, "onnxruntime"))
    if arts.quantized is not None and arts.quantized_label:
        variants.append(Variant(arts.quantized_label, arts.quantized, "onnxruntime"))
    if torch_compile and arts.pytorch:
        variants += [
            Variant("teacher PyTorch" + COMPILED, arts.teacher_dir, "pytorch-compile"),
            Variant("student PyTorch" + COMPILED, arts.student_dir, "pytorch-compile"),
        ]
    return variants


def comparison_pairs(labels: set[str], quantized: str | None) -> list[tuple[str, str]]:
    """What a user asks: what the student buys per engine, and what the export buys."""
    wanted = [
        ("teacher PyTorch", "student PyTorch"),
        ("teacher PyTorch", "student ONNX"),
        ("teacher ONNX", "student ONNX"),
        ("teacher ONNX", quantized),
        (TEACHER_INT8, "student ONNX"),
        (TEACHER_INT8, quantized),
        ("teacher ONNX", TEACHER_INT8),
        ("teacher PyTorch", quantized),
        ("student PyTorch", "student ONNX"),
        ("student ONNX", OPTIMIZED),
        ("student ONNX", quantized),
        ("teacher PyTorch", "teacher PyTorch" + COMPILED),
        ("student PyTorch", "student PyTorch" + COMPILED),
    ]
    return [(a, b) for a, b in wanted if a in labels and b in labels]


def time_variants(
    variants: list[Variant],
    cfg: BenchmarkConfig,
    threads: list[int],
    lengths: Sequence[int] | None,
    worker: Worker | None = None,
) -> list[dict[str, Any]]:
    """run_latency with the recipe's workload and statistics; `worker` runs each (model,
    round) elsewhere (a device over SSH)."""
    return run_latency(
        variants,
        batches=tuple(cfg.batches),
        seq_lens=tuple(cfg.seq_lens),
        threads=threads,
        warmup=cfg.warmup,
        iters=cfg.iters,
        rounds=cfg.rounds,
        lengths=lengths,
        worker=worker,
    )


def measure_here(
    target: str,
    arts: Artifacts,
    cfg: BenchmarkConfig,
    *,
    cores: int,
    lengths: Sequence[int] | None,
) -> LatencySection:
    """Every variant on this machine's CPU, recorded under `target` (an aarch64 machine is
    its own ARM target)."""
    variants = cpu_variants(arts, torch_compile=cfg.torch_compile)
    threads = cfg.thread_counts(cores)
    results = time_variants(variants, cfg, threads, lengths)
    pairs = comparison_pairs({v.label for v in variants}, arts.quantized_label)
    return latency_section(
        target,
        results,
        speedups(results, pairs),
        machine=platform.machine(),
        device_name=results[0].get("device_name") if results else None,
        threads=threads,
    )


@TARGETS.register("cpu")
class Cpu:
    """The default target: the figures `compress` records under the plain `benchmark` key."""

    def state_keys(self) -> tuple[str, ...]:
        return ("benchmark",)

    def state_key(self, cfg: BenchmarkConfig) -> str:
        return "benchmark"

    def measure(
        self,
        artifacts: Artifacts,
        cfg: BenchmarkConfig,
        *,
        cores: int,
        lengths: Sequence[int] | None,
    ) -> LatencySection:
        return measure_here("cpu", artifacts, cfg, cores=cores, lengths=lengths)

    def parse(self, record: Mapping[str, Any]) -> LatencySection:
        return LatencySection.model_validate(record)

    def blocks(self, section: LatencySection) -> list[Block]:
        return section.blocks("Latency (CPU, measured)", "Speed-ups")

    def device(self, section: LatencySection) -> str | None:
        if section.mode != "measured":
            return None
        return f"cpu: {section.device_name}" if section.device_name else "cpu"
