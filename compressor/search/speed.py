"""A candidate's speed on the search's target, as ratios to the teacher's files timed in the
same run: the harness `benchmark` uses (one process per model, interleaved rounds) on the
CPU; the roofline estimate against one device profile for `arm:<profile>`. Ratios, not
milliseconds, so candidates timed minutes apart on a shared machine compare fairly."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.targets import TEACHER_INT8, Artifacts, get_target
from benchmarks.targets.estimated import EstimatedSection
from benchmarks.targets.sections import BenchmarkSection, LatencySection
from compressor.errors import UserError
from compressor.recipe import BenchmarkConfig

TEACHER_ONNX = "teacher ONNX"
CANDIDATE = "candidate"


@dataclass(frozen=True)
class SearchTarget:
    """Where candidates are timed, at one shape: what `--target`, `--threads`, `--batch`
    and `--seq-len` say."""

    name: Literal["cpu", "arm"]
    profile: str | None
    threads: int
    batch: int
    seq_len: int | Literal["dev"]
    iters: int = 30
    rounds: int = 3

    @classmethod
    def parse(
        cls, spec: str, *, threads: int, batch: int, seq_len: str, iters: int = 30
    ) -> SearchTarget:
        name, _, profile = spec.partition(":")
        length: int | Literal["dev"] = "dev"
        if seq_len != "dev":
            if not seq_len.isdigit() or int(seq_len) < 1:
                raise UserError(f"--seq-len {seq_len!r}: give a token count or 'dev'")
            length = int(seq_len)
        if name == "cpu" and not profile:
            return cls("cpu", None, threads, batch, length, iters)
        if name == "arm" and profile:
            if length == "dev":
                raise UserError(
                    "--target arm:<profile> estimates fixed shapes: pass --seq-len 128 (or "
                    "another token count)"
                )
            return cls("arm", profile, threads, batch, length, iters)
        raise UserError(
            f"--target {spec!r}: search times candidates on 'cpu' or 'arm:<profile>' (e.g. "
            "arm:cortex-a55); cuda is not searched yet — time a finished run with "
            "`compressor benchmark RUN --target cuda`"
        )

    @property
    def mode(self) -> str:
        return "measured" if self.name == "cpu" else "estimated"

    def describe(self) -> str:
        where = "this CPU" if self.name == "cpu" else f"{self.profile} (roofline estimate)"
        return f"{where}, {self.threads} threads, batch {self.batch}, seq {self.seq_len}"

    def config(self) -> BenchmarkConfig:
        """The benchmark settings that time exactly this shape."""
        common = {"batches": [self.batch], "seq_lens": [self.seq_len], "threads": [self.threads]}
        if self.name == "cpu":
            return BenchmarkConfig(
                target="cpu", warmup=3, iters=self.iters, rounds=self.rounds, **common
            )
        return BenchmarkConfig(
            target="arm", arm_mode="estimated", arm_profiles=[self.profile or ""], **common
        )


@dataclass(frozen=True)
class Speed:
    """teacher / candidate latency, from one run: how many times faster the candidate is."""

    mode: str
    vs_teacher: float
    vs_teacher_int8: float | None
    candidate_ms: float


def measure_speed(
    target: SearchTarget,
    *,
    teacher_dir: Path,
    teacher_onnx: Path,
    teacher_int8: Path | None,
    candidate_dir: Path,
    candidate: Path,
    lengths: Sequence[int] | None,
) -> Speed:
    """Time (or estimate) the candidate's file beside the teacher's two files."""
    arts = Artifacts(
        teacher_dir=teacher_dir,
        teacher_onnx=teacher_onnx,
        student_dir=candidate_dir,
        quantized_label=CANDIDATE,
        quantized=candidate,
        teacher_quantized=teacher_int8,
        pytorch=False,
    )
    cfg = target.config()
    section = get_target(cfg.target).measure(
        arts, cfg, cores=os.cpu_count() or 1, lengths=lengths if target.seq_len == "dev" else None
    )
    speed = speed_in(section, CANDIDATE, target)
    if speed is None:
        raise UserError(f"the {target.name} target could not time the candidate: "
                        f"{getattr(section, 'reason', None)} — rerun the search")  # fmt: skip
    return speed


def speed_in(section: BenchmarkSection, label: str, target: SearchTarget) -> Speed | None:
    """The file `label`'s speed against the teacher's files in a recorded benchmark section
    (None when it holds no such figure): the measured ratios, or the ratio of estimates at
    the most threads up to the target's (the roofline estimates 1 thread and all the
    profile's cores)."""
    if isinstance(section, EstimatedSection):
        most = max(e.threads for e in section.estimates if e.threads <= target.threads)
        ms = {e.label: e.estimate_ms for e in section.estimates if e.threads == most}
        if label not in ms:
            return None
        int8 = ms.get(TEACHER_INT8)
        return Speed("estimated", ms[TEACHER_ONNX] / ms[label],
                     int8 / ms[label] if int8 else None, ms[label])  # fmt: skip
    if not isinstance(section, LatencySection) or section.mode != "measured":
        return None
    ratios = {s.baseline: s.ratio for s in section.speedups or [] if s.candidate == label}
    p50 = next((r.p50_ms for r in section.measured_results() if r.label == label), None)
    if ratios.get(TEACHER_ONNX) is None or p50 is None:
        return None
    return Speed("measured", float(ratios[TEACHER_ONNX]), ratios.get(TEACHER_INT8), float(p50))
