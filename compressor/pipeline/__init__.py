"""The chain behind the CLI, one module per stage (see ARCHITECTURE.md): `finetune` makes a
teacher; `compress` runs adabert (a cnn student's search) -> distill -> prune -> vocab ->
export -> quantize -> ort_format -> teacher_files -> evaluate -> benchmark, then writes the
report."""

from compressor.pipeline.benchmark import benchmark
from compressor.pipeline.chain import STAGES, compress, plan
from compressor.pipeline.finetune import finetune
from compressor.pipeline.report import build_report, write_run_report

__all__ = [
    "STAGES",
    "benchmark",
    "build_report",
    "compress",
    "finetune",
    "plan",
    "write_run_report",
]
