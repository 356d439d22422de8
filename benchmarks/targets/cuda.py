"""The GPU: PyTorch fp32 / fp16 and ONNX Runtime's CUDA (and TensorRT) providers with IO
binding, when this machine has them; a clear 'skipped' line when it does not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency import Variant, run_latency, speedups
from benchmarks.targets import Artifacts
from benchmarks.targets.sections import Block, LatencySection, latency_section
from compressor.recipe import BenchmarkConfig, QuantizeConfig
from compressor.registry import TARGETS


def cuda_engines() -> dict[str, str | None]:
    """engine -> None when it can run on a GPU here, else why not (said in the report)."""
    import onnxruntime as ort
    import torch

    providers = ort.get_available_providers()
    return {
        "pytorch": None
        if torch.cuda.is_available()
        else f"PyTorch {torch.__version__} sees no CUDA device",
        "onnxruntime": None
        if "CUDAExecutionProvider" in providers
        else f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (onnxruntime-gpu)",
        "tensorrt": None
        if "TensorrtExecutionProvider" in providers
        else "no TensorrtExecutionProvider",
    }


def fp16_onnx(onnx_path: Path) -> Path:
    """The student in half precision for the GPU, made once next to the fp32 file: the file
    and name the recipe's `quantize.mode: fp16` would make."""
    from exporters.quant import get_mode

    fp16 = get_mode("fp16")
    out = fp16.path_for(onnx_path)
    if not out.is_file():
        fp16.make(onnx_path, out, QuantizeConfig(mode="fp16"))
    return out


def cuda_variants(arts: Artifacts, engines: dict[str, str | None]) -> list[Variant]:
    variants: list[Variant] = []
    if engines["pytorch"] is None:
        for who, folder in (("teacher", arts.teacher_dir), ("student", arts.student_dir)):
            for precision in ("fp32", "fp16"):
                variants.append(
                    Variant(f"{who} PyTorch {precision}", folder, "pytorch", "cuda", precision)
                )
    onnx = {"teacher": arts.teacher_onnx, "student": arts.student_onnx}
    for provider in ("onnxruntime", "tensorrt"):
        if engines[provider] is not None:
            continue
        name = "CUDA EP" if provider == "onnxruntime" else "TensorRT EP"
        key = "cuda" if provider == "onnxruntime" else "tensorrt"
        for who, path in onnx.items():
            if path is None:
                continue
            variants.append(Variant(f"{who} ONNX {name}", path, "onnxruntime", "cuda",
                                    ort_provider=key))  # fmt: skip
            variants.append(Variant(f"{who} ONNX fp16 {name}", fp16_onnx(path), "onnxruntime",
                                    "cuda", "fp16", key))  # fmt: skip
    return variants


PAIRS = [
    ("teacher PyTorch fp32", "student PyTorch fp32"),
    ("teacher PyTorch fp32", "student PyTorch fp16"),
    ("teacher PyTorch fp32", "student ONNX CUDA EP"),
    ("teacher ONNX CUDA EP", "student ONNX CUDA EP"),
    ("teacher ONNX CUDA EP", "student ONNX fp16 CUDA EP"),
    ("teacher ONNX TensorRT EP", "student ONNX TensorRT EP"),
]


@TARGETS.register("cuda")
class Cuda:
    """The GPU, or a 'skipped' section with the reason: a recipe that asks for the GPU on a
    machine without one still finishes, and its report says why there are no GPU figures."""

    def state_keys(self) -> tuple[str, ...]:
        return ("benchmark_cuda",)

    def state_key(self, cfg: BenchmarkConfig) -> str:
        return "benchmark_cuda"

    def measure(
        self,
        artifacts: Artifacts,
        cfg: BenchmarkConfig,
        *,
        cores: int,
        lengths: Sequence[int] | None,
    ) -> LatencySection:
        engines = cuda_engines()
        if engines["pytorch"] is not None and engines["onnxruntime"] is not None:
            return LatencySection(
                target="cuda",
                mode="skipped",
                reason=f"no GPU engine here: {engines['pytorch']}; {engines['onnxruntime']}",
            )
        variants = cuda_variants(artifacts, engines)
        # the host threads only feed the GPU: one count, all cores
        results = run_latency(
            variants,
            batches=tuple(cfg.batches),
            seq_lens=tuple(cfg.seq_lens),
            threads=cores,
            warmup=cfg.warmup,
            iters=cfg.iters,
            rounds=cfg.rounds,
            lengths=lengths,
        )
        labels = {v.label for v in variants}
        pairs = [(a, b) for a, b in PAIRS if a in labels and b in labels]
        return latency_section(
            "cuda",
            results,
            speedups(results, pairs),
            device_name=results[0].get("device_name") if results else None,
            driver=results[0].get("driver") if results else None,
            unavailable={engine: why for engine, why in engines.items() if why is not None},
        )

    def parse(self, record: Mapping[str, Any]) -> LatencySection:
        return LatencySection.model_validate(record)

    def blocks(self, section: LatencySection) -> list[Block]:
        return section.blocks("Latency (CUDA, measured)", "CUDA speed-ups (measured)")

    def device(self, section: LatencySection) -> str | None:
        if section.mode != "measured":
            return None
        return f"cuda: {section.device_name}" if section.device_name else "cuda"
