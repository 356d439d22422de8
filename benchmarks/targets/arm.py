"""Mobile-like ARM targets, labelled by how the figure was obtained (`benchmark.arm_mode`).

- measured: this machine is aarch64, so the CPU target runs here as it is, or a device over
  SSH (`remote`, benchmarks/targets/remote.py) times the ONNX files with its own ONNX Runtime;
- emulated: the aarch64 ONNX Runtime build under qemu-user (benchmarks/targets/emulated.py),
  a functional check of every file on several ARM cores; its timings are never device figures;
- estimated: a roofline over the ONNX graph against device profiles
  (benchmarks/targets/estimated.py), with the method's error checked on this host against a
  measured latency in the same run.

Each mode records under its own key (`benchmark_arm_<mode>`), so one run can carry all three
side by side without one overwriting another.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from benchmarks.targets import Artifacts
from benchmarks.targets.cpu import measure_here
from benchmarks.targets.emulated import EmulatedSection, measure_emulated
from benchmarks.targets.estimated import EstimatedSection, estimate_arm
from benchmarks.targets.remote import measure_remote
from benchmarks.targets.sections import Block, LatencySection
from compressor.errors import UserError
from compressor.registry import TARGETS

if TYPE_CHECKING:
    from compressor.recipe import BenchmarkConfig

MODES = ("measured", "emulated", "estimated")
ARM_MACHINES = ("aarch64", "arm64")
ArmSection = LatencySection | EmulatedSection | EstimatedSection


@TARGETS.register("arm")
class Arm:
    """One target, three ways of getting a figure; the section type says which."""

    def state_keys(self) -> tuple[str, ...]:
        return tuple(f"benchmark_arm_{mode}" for mode in MODES)

    def state_key(self, cfg: BenchmarkConfig) -> str:
        return f"benchmark_arm_{cfg.arm_mode}"

    def measure(
        self,
        artifacts: Artifacts,
        cfg: BenchmarkConfig,
        *,
        cores: int,
        lengths: Sequence[int] | None,
    ) -> ArmSection:
        if cfg.arm_mode == "emulated":
            return measure_emulated(artifacts, cfg)
        if cfg.arm_mode == "estimated":
            return estimate_arm(artifacts, cfg)
        if cfg.remote:
            return measure_remote(artifacts, cfg, lengths=lengths)
        if platform.machine() not in ARM_MACHINES:
            raise UserError(
                f"arm_mode measured needs an ARM machine, this one is {platform.machine()} — "
                "use arm_mode estimated here, or run on the device"
            )
        return measure_here("arm", artifacts, cfg, cores=cores, lengths=lengths)

    def parse(self, record: Mapping[str, Any]) -> ArmSection:
        if record.get("mode") == "estimated":
            return EstimatedSection.model_validate(record)
        if record.get("mode") == "emulated":
            return EmulatedSection.model_validate(record)
        return LatencySection.model_validate(record)

    def blocks(self, section: ArmSection) -> list[Block]:
        if isinstance(section, EstimatedSection | EmulatedSection):
            return [section.block()]
        return section.blocks(f"ARM ({section.mode})", f"ARM speed-ups ({section.mode})")

    def device(self, section: ArmSection) -> str | None:
        if isinstance(section, EstimatedSection | EmulatedSection):
            return f"arm ({section.mode})"
        if section.mode != "measured":
            return None
        where = f" over SSH ({section.remote})" if section.remote else ""
        return f"arm: {section.device_name or section.machine or 'unknown'}{where}"
