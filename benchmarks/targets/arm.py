"""Mobile-like ARM targets, labelled by how the figure was obtained.

- measured: this machine is aarch64, so the CPU target runs here as it is, or a device over
  SSH (`remote`, benchmarks/targets/remote.py) times the ONNX files with its own ONNX Runtime;
- emulated: the aarch64 ONNX Runtime build under qemu-user (benchmarks/targets/emulated.py),
  a functional check of every file on several ARM cores; its timings are never device figures;
- estimated: a roofline over the ONNX graph against device profiles (benchmarks/roofline.py),
  with the method's error checked on this host against a measured latency in the same run.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any

from benchmarks.latency import Variant, run_latency
from benchmarks.roofline import estimate_ms, graph_costs, host_profile, load_profile
from benchmarks.targets import Artifacts
from benchmarks.targets.cpu import measure_cpu
from compressor.errors import UserError
from compressor.recipe import BenchmarkConfig

METHOD = (
    "roofline: each ONNX node's FLOPs / int8 ops and bytes at the given shape, time = "
    "max(ops / (peak x efficiency), bytes / bandwidth) + per-kernel overhead, summed over nodes"
)
CALIBRATION_SHAPE = (1, 128)


def measure_arm(
    arts: Artifacts, cfg: BenchmarkConfig, *, cores: int, lengths: Sequence[int] | None
) -> dict[str, Any]:
    if cfg.arm_mode == "measured":
        if cfg.remote:
            from benchmarks.targets.remote import measure_remote

            return measure_remote(arts, cfg, lengths=lengths)
        if platform.machine() not in ("aarch64", "arm64"):
            raise UserError(
                f"arm_mode measured needs an ARM machine, this one is {platform.machine()} — "
                "use arm_mode estimated here, or run on the device"
            )
        return {**measure_cpu(arts, cfg, cores=cores, lengths=lengths), "target": "arm"}
    if cfg.arm_mode == "emulated":
        from benchmarks.targets.emulated import measure_emulated

        return measure_emulated(arts, cfg)
    return estimate_arm(arts, cfg)


def estimate_arm(arts: Artifacts, cfg: BenchmarkConfig) -> dict[str, Any]:
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
    return {
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


def calibrate_on_host(arts: Artifacts, costs: dict[tuple[str, int, int], Any]) -> list[dict]:
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
