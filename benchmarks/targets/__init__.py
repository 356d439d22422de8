"""Where a run is timed, one module per target, each registered in
`compressor.registry.TARGETS` under the name a recipe's `benchmark.target` gives: `cpu` and
`cuda` measure here, `arm` measures, emulates or estimates.

A target is everything that differs between targets: the run-state key it records under, how
it measures, how its recorded section loads back, and how that section reads in the report.
The pipeline and the report only ask the target, so a new target is one new module here plus
its test. Every section carries `target` and `mode` ("measured", "emulated", "estimated" or
"skipped"), so a report can never mix an estimate with a measurement without saying which is
which.

The registry imports this package's modules when a recipe is validated, so modules here keep
torch and ONNX Runtime imports inside their functions. Modules that register nothing
(`sections`, `estimated`, `emulated`, `remote`, `arm_root`) hold what the targets share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from benchmarks.targets.sections import BenchmarkSection, Block
from compressor.errors import UserError
from compressor.registry import TARGETS

if TYPE_CHECKING:
    from compressor.recipe import BenchmarkConfig

S = TypeVar("S", bound=BenchmarkSection)
# The teacher's own dynamic int8 file: what a user gets without us, so the number to beat.
TEACHER_INT8 = "teacher ONNX int8"


@dataclass(frozen=True)
class Artifacts:
    """The files a benchmark compares: the teacher (PyTorch, ONNX and its own int8 file) and
    the student's files."""

    teacher_dir: Path
    teacher_onnx: Path
    student_dir: Path
    student_onnx: Path | None = None
    quantized_label: str | None = None
    quantized: Path | None = None
    optimized: Path | None = None
    teacher_quantized: Path | None = None
    pytorch: bool = True
    """Time the PyTorch folders too; a search timing only the shippable file says False."""

    def onnx_files(self) -> dict[str, Path]:
        """label -> ONNX file, for targets that only run ONNX (estimates, emulation)."""
        files = {"teacher ONNX": self.teacher_onnx}
        if self.teacher_quantized is not None:
            files[TEACHER_INT8] = self.teacher_quantized
        if self.student_onnx is not None:
            files["student ONNX"] = self.student_onnx
        if self.quantized is not None and self.quantized_label:
            files[self.quantized_label] = self.quantized
        return files


class Target(Protocol[S]):
    """What a registered target class implements (instances are made with no arguments);
    `S` is the section type it records."""

    def state_keys(self) -> tuple[str, ...]:
        """Every run-state key this target may record under: the report finds its sections
        by these keys, whichever settings measured them."""
        ...

    def state_key(self, cfg: BenchmarkConfig) -> str:
        """The key for these settings; settings that measure different things (ARM measured
        against estimated) get different keys, so neither overwrites the other."""
        ...

    def measure(
        self,
        artifacts: Artifacts,
        cfg: BenchmarkConfig,
        *,
        cores: int,
        lengths: Sequence[int] | None,
    ) -> S:
        """Time (or estimate) the artifacts. `cores` is this machine's CPU count, `lengths`
        the dev sentences' token counts when `cfg.seq_lens` holds "dev"."""
        ...

    def parse(self, record: Mapping[str, Any]) -> S:
        """The typed section of a record this target wrote."""
        ...

    def blocks(self, section: S) -> list[Block]:
        """How the section reads in the report."""
        ...

    def device(self, section: S) -> str | None:
        """What the figures were obtained on, for the report's run line ("cpu: <model>");
        None when nothing was measured (a skipped target)."""
        ...


def get_target(name: str) -> Target[BenchmarkSection]:
    """The target registered as `name`, or a one-line UserError listing the known ones."""
    return cast("type[Target[BenchmarkSection]]", TARGETS.get(name))()


def load_section(record: Mapping[str, Any]) -> BenchmarkSection:
    """A recorded section (from a run's state or a report.json), typed by the target it
    names."""
    name = record.get("target")
    if not isinstance(name, str):
        raise UserError(
            f"a benchmark section names no target (fields: {', '.join(record)}) — rebuild the "
            "report with `compressor report <run>`"
        )
    return get_target(name).parse(record)


def recorded_sections(stages: Mapping[str, Mapping[str, Any]]) -> dict[str, BenchmarkSection]:
    """Every benchmark a run recorded, by state key, in the order the run measured them."""
    owners: dict[str, Target[BenchmarkSection]] = {}
    for name in TARGETS.names():
        target = get_target(name)
        owners.update(dict.fromkeys(target.state_keys(), target))
    return {key: owners[key].parse(record) for key, record in stages.items() if key in owners}
