"""ARM latency estimated, not measured: a roofline over the ONNX graph against device
profiles (benchmarks/roofline.py, benchmarks/profiles/*.yaml), with the method's error checked
on this host against a latency measured in the same run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from benchmarks.latency import Variant, run_latency
from benchmarks.roofline import NodeCost, estimate_ms, graph_costs, host_profile, load_profile
from benchmarks.targets import Artifacts
from benchmarks.targets.sections import DASH, TIMES, BenchmarkSection, Block, Record, fmt

if TYPE_CHECKING:
    from compressor.recipe import BenchmarkConfig

METHOD = (
    "roofline: each ONNX node's FLOPs / int8 ops and bytes at the given shape, time = "
    "max(ops / (peak x efficiency), bytes / bandwidth) + per-kernel overhead, summed over nodes"
)
CALIBRATION_SHAPE = (1, 128)
TITLE = "ARM (estimated)"


class ProfileInfo(Record):
    """A device profile as the report cites it: every figure with its source or marked
    assumed."""

    name: str
    sources: list[str] = Field(default_factory=list)
    assumed: list[str] = Field(default_factory=list)


class Estimate(Record):
    """One file on one profile at one shape; the bound split says what to optimise."""

    label: str
    profile: str
    batch: int
    seq_len: int
    threads: int
    estimate_ms: float
    compute_bound_ms: float
    memory_bound_ms: float


class Calibration(Record):
    """The method on this host: its estimate next to the measured p50 of the same file."""

    label: str
    batch: int
    seq_len: int
    estimate_ms: float
    measured_p50_ms: float
    measured_over_estimate: float
    host_sgemm_gflops: float
    host_copy_gbs: float


class EstimatedSection(BenchmarkSection):
    method: str | None = None
    profiles: dict[str, ProfileInfo] = Field(default_factory=dict)
    estimates: list[Estimate] = Field(default_factory=list)
    calibration: list[Calibration] = Field(default_factory=list)

    def block(self) -> Block:
        """Estimates with their method, sources, assumptions and the error seen on this host,
        each file against the teacher on the same profile and shape."""
        lines = [f"Every figure here is an ESTIMATE, not a measurement. Method: {self.method}."]
        for row in self.calibration:
            lines.append(
                f"Method check on this host ({row.host_sgemm_gflops:.0f} GFLOP/s SGEMM, "
                f"{row.host_copy_gbs:.0f} GB/s copy, measured): {row.label} at batch "
                f"{row.batch}, seq {row.seq_len}, 1 thread: estimate {row.estimate_ms:.2f} ms, "
                f"measured p50 {row.measured_p50_ms:.2f} ms "
                f"({row.measured_over_estimate:.2f}{TIMES} the estimate)"
            )
        for key, profile in self.profiles.items():
            lines.append(
                f"{key}: {profile.name}; sources: {'; '.join(profile.sources)}; "
                f"assumed: {'; '.join(profile.assumed)}"
            )
        teacher = {
            (e.profile, e.batch, e.seq_len, e.threads): e.estimate_ms
            for e in self.estimates
            if e.label.startswith("teacher")
        }
        rows = []
        for e in self.estimates:
            base = teacher.get((e.profile, e.batch, e.seq_len, e.threads))
            versus = DASH if base is None else f"{base / e.estimate_ms:.2f}{TIMES}"
            rows.append(
                [
                    e.profile,
                    e.label,
                    fmt(e.threads, ""),
                    fmt(e.batch, ""),
                    fmt(e.seq_len, ""),
                    f"{e.estimate_ms:.2f}",
                    "compute" if e.compute_bound_ms >= e.memory_bound_ms else "memory",
                    versus,
                ]
            )
        headers = ["Profile", "Model", "Threads", "Batch", "Seq", "Estimated ms", "Mostly",
                   "vs teacher"]  # fmt: skip
        return Block(TITLE, lines, headers, rows)


def estimate_arm(arts: Artifacts, cfg: BenchmarkConfig) -> EstimatedSection:
    """Estimates for every profile, file and fixed shape, plus the method's error here."""
    profiles = [load_profile(key) for key in cfg.arm_profiles]
    shapes = [(b, s) for b in cfg.batches for s in cfg.seq_lens if isinstance(s, int)]
    estimates = []
    costs = {}
    for label, path in arts.onnx_files().items():
        for batch, seq_len in {*shapes, CALIBRATION_SHAPE}:
            costs[label, batch, seq_len] = graph_costs(path, batch, seq_len)
    for profile in profiles:
        for label in arts.onnx_files():
            for batch, seq_len in shapes:
                for threads in sorted({1, profile.cores}):
                    figures = estimate_ms(costs[label, batch, seq_len], profile, threads)
                    estimates.append(
                        {
                            "label": label,
                            "profile": profile.key,
                            "batch": batch,
                            "seq_len": seq_len,
                            "threads": threads,
                            **figures,
                        }
                    )
    return EstimatedSection.model_validate(
        {
            "target": "arm",
            "mode": "estimated",
            "method": METHOD,
            "profiles": {
                p.key: {
                    "name": p.name,
                    "sources": p.sources,
                    "assumed": p.assumed,
                    "peak_fp32_gflops": p.peak_gflops(p.cores),
                    "bandwidth_gbs": p.bandwidth_gbs,
                }
                for p in profiles
            },
            "estimates": estimates,
            "calibration": calibrate_on_host(arts, costs),
        }
    )


def calibrate_on_host(
    arts: Artifacts, costs: dict[tuple[str, int, int], list[NodeCost]]
) -> list[dict[str, Any]]:
    """The same estimate for this machine (its peak and bandwidth measured) next to the ONNX
    files' measured p50 at one shape: how far to trust the device figures."""
    batch, seq_len = CALIBRATION_SHAPE
    profile = host_profile(1)
    variants = [Variant(label, path, "onnxruntime") for label, path in arts.onnx_files().items()]
    measured = run_latency(
        variants,
        batches=(batch,),
        seq_lens=(seq_len,),
        threads=1,
        warmup=3,
        iters=20,
        rounds=1,
        progress=False,
    )
    rows = []
    for result in measured:
        estimate = estimate_ms(costs[result["label"], batch, seq_len], profile, 1)["estimate_ms"]
        rows.append(
            {
                "label": result["label"],
                "batch": batch,
                "seq_len": seq_len,
                "threads": 1,
                "estimate_ms": estimate,
                "measured_p50_ms": result["p50_ms"],
                "measured_over_estimate": result["p50_ms"] / estimate,
                "host_sgemm_gflops": profile.peak_gflops(1),
                "host_copy_gbs": profile.bandwidth_gbs,
            }
        )
    return rows
