"""Benchmark targets as a registry: the names a recipe can give, the state keys they record
under, a target added by one class that the report renders without an edit, the GPU target
skipped with its reason where there is no GPU, and the report's device line taken from what
was actually benchmarked."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from optimum.exporters.onnx import main_export

from benchmarks.report import Report, render_html, render_markdown
from benchmarks.targets import Artifacts, get_target, recorded_sections
from benchmarks.targets.cuda import cuda_engines
from benchmarks.targets.sections import BenchmarkSection, Block, fmt
from compressor.errors import UserError
from compressor.pipeline.report import build_report
from compressor.recipe import BenchmarkConfig, load_recipe
from compressor.registry import TARGETS
from compressor.runfolder import RunFolder
from tests.conftest import save_variant


class DiskSection(BenchmarkSection):
    """The toy target's record: bytes of every model file, per label."""

    sizes_kb: dict[str, float]


class Disk:
    """A target that 'measures' what each model costs on disk: one class is all a new target
    needs; nothing in the report or the pipeline names it."""

    def state_keys(self) -> tuple[str, ...]:
        return ("benchmark_disk",)

    def state_key(self, cfg: BenchmarkConfig) -> str:
        return "benchmark_disk"

    def measure(
        self,
        artifacts: Artifacts,
        cfg: BenchmarkConfig,
        *,
        cores: int,
        lengths: Sequence[int] | None,
    ) -> DiskSection:
        folders = {
            "teacher PyTorch": artifacts.teacher_dir,
            "student PyTorch": artifacts.student_dir,
        }
        sizes = {
            label: sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1024
            for label, folder in folders.items()
        }
        return DiskSection(target="disk", mode="measured", sizes_kb=sizes)

    def parse(self, record: Mapping[str, Any]) -> DiskSection:
        return DiskSection.model_validate(record)

    def blocks(self, section: DiskSection) -> list[Block]:
        rows = [[label, fmt(kb, ".1f")] for label, kb in section.sizes_kb.items()]
        return [
            Block("Weights on disk (toy <target>)", ["Read from the files."], ["Model", "KB"], rows)
        ]

    def device(self, section: DiskSection) -> str | None:
        return "disk: this machine's filesystem"


@pytest.fixture()
def disk_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy registered as a target module would register itself, for this test only."""
    monkeypatch.setattr(TARGETS, "_entries", dict(TARGETS.items()))
    TARGETS.register("disk")(Disk)


@pytest.fixture(scope="module")
def arts(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """The tiny teacher and a 1-layer student with their ONNX exports."""
    out = tmp_path_factory.mktemp("targets_models")
    student = save_variant(tiny_teacher_dir, out / "student", seed=1, num_hidden_layers=1)
    onnx = {}
    for name, folder in (("teacher", tiny_teacher_dir), ("student", student)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter from the export, not from our code
            main_export(str(folder), output=str(out / f"{name}_onnx"), task="text-classification",
                        opset=17, do_validation=False)  # fmt: skip
        onnx[name] = out / f"{name}_onnx" / "model.onnx"
    return Artifacts(tiny_teacher_dir, onnx["teacher"], student, student_onnx=onnx["student"])


def _run(tmp_path: Path, teacher_dir: Path) -> RunFolder:
    """A run folder whose student was distilled from the tiny teacher, nothing benchmarked."""
    run = RunFolder.create(tmp_path / "run", "compress", load_recipe(), overwrite=False,
                           resume=False)  # fmt: skip
    data = {"source": "sst2 (first 16 dev rows)", "notes": []}
    run.complete("distill", teacher=str(teacher_dir), data=data, steps=4, history=[])
    return run


def test_registry_names_the_three_targets_and_their_state_keys() -> None:
    assert set(TARGETS.names()) == {"cpu", "cuda", "arm"}
    assert get_target("cpu").state_key(BenchmarkConfig()) == "benchmark"
    assert get_target("cuda").state_key(BenchmarkConfig(target="cuda")) == "benchmark_cuda"
    arm = get_target("arm")
    for mode in ("measured", "emulated", "estimated"):
        cfg = BenchmarkConfig(target="arm", arm_mode=mode)
        assert arm.state_key(cfg) == f"benchmark_arm_{mode}" in arm.state_keys()


def test_unknown_target_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(UserError) as err:
        get_target("tpu")
    message = str(err.value)
    assert "\n" not in message and "'tpu'" in message
    assert all(name in message for name in ("cpu", "cuda", "arm"))
    with pytest.raises(UserError, match="unknown benchmark target 'tpu'"):
        Report.model_validate({"benchmarks": {"benchmark_tpu": {"target": "tpu"}}})


def test_a_toy_target_renders_in_both_formats_and_names_the_device(
    disk_target: None, arts: Artifacts, tmp_path: Path
) -> None:
    target = get_target("disk")
    section = target.measure(arts, BenchmarkConfig(), cores=1, lengths=None)
    teacher_kb = (arts.teacher_dir / "model.safetensors").stat().st_size / 1024
    student_kb = (arts.student_dir / "model.safetensors").stat().st_size / 1024
    assert student_kb < teacher_kb  # 1 layer of 4
    run = _run(tmp_path, arts.teacher_dir)
    run.complete(target.state_key(BenchmarkConfig()), **section.record())

    report = build_report(run)
    assert report.run is not None and report.run.device == "disk: this machine's filesystem"
    md = render_markdown(report)
    assert "## Weights on disk (toy <target>)\n\n- Read from the files.\n" in md
    assert f"| teacher PyTorch | {teacher_kb:.1f} |" in md
    assert f"| student PyTorch | {student_kb:.1f} |" in md
    page = render_html(report)
    assert "<h2>Weights on disk (toy &lt;target&gt;)</h2>" in page  # escaped, not markup
    assert f"<td>student PyTorch</td><td>{student_kb:.1f}</td>" in page
    # report.json reads back into the same report
    again = Report.model_validate(report.record())
    assert isinstance(again.benchmarks["benchmark_disk"], DiskSection)
    assert render_markdown(again) == md


def test_cuda_without_a_gpu_is_skipped_with_its_reason(arts: Artifacts) -> None:
    engines = cuda_engines()
    if engines["pytorch"] is None or engines["onnxruntime"] is None:
        pytest.skip("this machine has a GPU engine: the cuda target measures instead")
    cuda = get_target("cuda")
    section = cuda.measure(arts, BenchmarkConfig(target="cuda"), cores=1, lengths=None)
    assert section.record() == {"target": "cuda", "mode": "skipped", "reason": section.reason}
    assert section.reason and section.reason.startswith("no GPU engine here: PyTorch ")
    assert "sees no CUDA device" in section.reason and "CUDAExecutionProvider" in section.reason
    assert cuda.device(section) is None  # nothing was measured on it
    report = Report(benchmarks={cuda.state_key(BenchmarkConfig(target="cuda")): section})
    md = render_markdown(report)
    assert f"## Latency (CUDA, measured)\n\n- Skipped: {section.reason}\n" in md
    assert "## CUDA speed-ups (measured)\n\n\u2014\n" in md
    assert "Skipped: " in render_html(report)


def test_cuda_on_a_gpu_measures_and_names_it(arts: Artifacts) -> None:
    """Runs only where torch sees a GPU (the device check); the figures come back typed."""
    engines = cuda_engines()
    if engines["pytorch"] is not None:
        pytest.skip(f"no GPU for PyTorch here: {engines['pytorch']}")
    cfg = BenchmarkConfig(target="cuda", batches=[1], seq_lens=[16], warmup=2, iters=10, rounds=2)
    cuda = get_target("cuda")
    section = cuda.measure(arts, cfg, cores=2, lengths=None)
    print(section.record())
    assert section.mode == "measured" and section.device_name
    labels = {r.label for r in section.results or []}
    assert {"teacher PyTorch fp32", "student PyTorch fp16"} <= labels
    assert all((r.p50_ms or 0) > 0 for r in section.results or [])
    assert cuda.device(section) == f"cuda: {section.device_name}"
    md = render_markdown(Report(benchmarks={"benchmark_cuda": section}))
    assert f"Device: {section.device_name}" in md and "| student PyTorch fp16 | pytorch |" in md


def test_device_comes_from_what_was_benchmarked(arts: Artifacts, tmp_path: Path) -> None:
    """The defect this replaces: every report said "cpu", whatever the run was timed on."""
    run = _run(tmp_path, arts.teacher_dir)
    report = build_report(run)
    assert report.run is not None and report.run.device is None
    assert "Device:" not in render_markdown(report)
    assert "Latency" not in render_markdown(report)  # no target recorded, none shown

    gpu = {"target": "cuda", "mode": "measured", "device_name": "NVIDIA H200", "driver": "570",
           "results": [], "speedups": []}  # fmt: skip
    run.complete("benchmark_cuda", **gpu)
    run.complete("benchmark_arm_estimated", target="arm", mode="estimated", method="roofline")
    report = build_report(run)
    assert report.run is not None
    assert report.run.device == "cuda: NVIDIA H200; arm (estimated)"
    md = render_markdown(report)
    assert "- Device: cuda: NVIDIA H200; arm (estimated)\n" in md
    assert md.index("## Latency (CUDA, measured)") < md.index("## ARM (estimated)")
    assert list(report.benchmarks) == ["benchmark_cuda", "benchmark_arm_estimated"]


def test_recorded_sections_keep_other_stages_out() -> None:
    stages = {
        "distill": {"steps": 4},
        "benchmark": {"target": "cpu", "mode": "measured", "device_name": "Xeon", "results": []},
        "export": {"target": "not a benchmark"},
    }
    sections = recorded_sections(stages)
    assert list(sections) == ["benchmark"]
    assert get_target("cpu").device(sections["benchmark"]) == "cpu: Xeon"
    assert sections["benchmark"].record() == stages["benchmark"]


def test_report_json_without_a_target_says_how_to_rebuild() -> None:
    with pytest.raises(UserError, match=re.escape("compressor report <run>")):
        Report.model_validate({"benchmarks": {"benchmark": {"mode": "measured"}}})
