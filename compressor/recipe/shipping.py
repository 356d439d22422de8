"""Recipe sections of what ships and how it is measured: export, quantization, benchmark."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from compressor.recipe._base import Strict


class ExportConfig(Strict):
    """ONNX export and its parity gate."""

    opset: int = Field(18, ge=13)
    parity_tolerance: float = Field(1e-3, gt=0, description="Max |logit diff| for fp32 ONNX.")
    parity_samples: int = Field(128, ge=1)
    optimize: bool = Field(
        True,
        description="Also write model_optimized.onnx with ONNX Runtime's transformer fusions "
        "(attention, LayerNorm, GELU), kept only if it passes the same parity check.",
    )
    ort_format: bool = Field(
        False,
        description="Also convert the shipped files to ORT format (.ort) for ONNX Runtime "
        "Mobile, with the operator list a reduced build needs.",
    )
    e2e: bool = Field(
        True,
        description="Also write each shipped file (fp32 and quantized) as an end-to-end file, "
        "model_e2e.onnx / model_int8_e2e.onnx: raw sentences in, logits and label out, the "
        "WordPiece tokenizer inside the graph (onnxruntime-extensions' operators). Kept only "
        "when its token ids equal the Python tokenizer's on every dev sentence and its logits "
        "match the model file's.",
    )


class QuantizeConfig(Strict):
    """Post-training quantization of the exported student (ONNX Runtime's quantizer)."""

    mode: str = Field(
        "dynamic-int8",
        description="A registered mode (exporters/quant) or 'none'. 'dynamic-int8': int8 "
        "weights, activations quantized at run time; "
        "'static-int8': QDQ with activation ranges calibrated on training sentences; "
        "'int4': weight-only 4-bit MatMulNBits (smallest file, fp32 activations); "
        "'fp16': half precision for GPU targets, LayerNorm / Softmax kept in fp32.",
    )
    int4_block_size: int = Field(32, ge=16, description="int4: weights per scale block.")
    min_agreement: float = Field(
        0.9,
        ge=0,
        le=1,
        description="A quantized file whose predictions agree with the PyTorch model's on "
        "fewer of the parity sentences is reported as failed and removed, never shipped.",
    )
    per_channel: bool = True
    reduce_range: bool | Literal["auto"] = Field(
        "auto",
        description="int8: 7-bit weights. auto = on where this x86 CPU has no VNNI, whose "
        "u8s8 kernels saturate 8-bit weights.",
    )
    calibration: Literal["minmax", "entropy", "percentile"] = Field(
        "percentile",
        description="Static int8: how activation ranges are chosen. Percentile on 512 "
        "sentences was the only setting within 1 point of fp32 for both the MiniLM-L6 teacher "
        "and its 3-layer student on SST-2 (make bench-quant).",
    )
    calibration_samples: int = Field(
        512, ge=1, description="Static int8: training sentences run through the calibrator."
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="int8 (dynamic and static), int4: regular expressions on ONNX node names "
        "kept in fp32, e.g. 'classifier' or 'layer\\.0\\.'.",
    )
    max_drop: float | None = Field(
        None,
        ge=0,
        description="int8 (dynamic and static), int4: points the file may disagree with the "
        "fp32 file on `max_drop_samples` held training sentences, by the task's metric with "
        "the fp32 file's predictions as gold: for a classifier the share of labels changed (a "
        "bound on the accuracy it loses on them), for a tagger 100 minus the entity F1 "
        "against the fp32 file's entities. Beyond it, the quantized nodes whose fp32 "
        "fallback restores the most agreement are kept in fp32, one at a time, until the "
        "file is within the limit; the file records which and what they cost in size. "
        "Unset: no limit.",
    )
    max_drop_samples: int = Field(
        512, ge=16, description="Labelled training sentences max_drop is measured on."
    )


class BenchmarkConfig(Strict):
    """Latency measurement: engines in separate processes, teacher and student interleaved."""

    target: str = Field(
        "cpu",
        description="A registered target (benchmarks/targets). cpu: this machine's CPU; "
        "cuda: the GPU (skipped with a note when there is "
        "none); arm: mobile-like ARM targets, measured / emulated / estimated (arm_mode).",
    )
    batches: list[int] = Field(default_factory=lambda: [1, 32])
    seq_lens: list[int | Literal["dev"]] = Field(
        default_factory=lambda: [32, 128, "dev"],
        description="Fixed sequence lengths, and 'dev': the dev sentences' own lengths "
        "replayed in dynamically padded batches (real traffic).",
    )
    threads: list[int] | None = Field(
        None, description="Intra-op thread counts to sweep. Default: 1, 2 and all cores."
    )
    warmup: int = Field(10, ge=0)
    iters: int = Field(50, ge=1)
    rounds: int = Field(3, ge=1)
    arm_root: str | None = Field(
        None,
        description="arm64 emulation root (qemu, Debian arm64, aarch64 onnxruntime) for arm, "
        "emulated. Default: arm64-root in COMPRESSOR_CACHE_DIR or ~/.cache/compressor; "
        "`make arm-root` builds it.",
    )
    torch_compile: bool = Field(
        False, description="Also time PyTorch under torch.compile (slow to compile)."
    )
    arm_mode: Literal["estimated", "emulated", "measured"] = Field(
        "estimated",
        description="arm target: 'estimated' (roofline from the ONNX graph against device "
        "profiles), 'emulated' (qemu-user functional check; timings labelled emulated), "
        "'measured' (this machine when it is aarch64, or a device over SSH with `remote`).",
    )
    arm_profiles: list[str] = Field(
        default_factory=lambda: ["cortex-a55", "cortex-a76", "raspberry-pi-4", "raspberry-pi-5"],
        description="Device profiles (benchmarks/profiles/*.yaml) for arm estimates.",
    )
    remote: str | None = Field(
        None,
        description="user@host (or an ~/.ssh/config alias) of an ARM device to measure on over "
        "SSH with key-based login (arm, measured): the ONNX files and the latency worker are "
        "copied there and timed by the device's own ONNX Runtime.",
    )
    remote_python: str = Field(
        "python3",
        description="Python on the remote device that has numpy and onnxruntime (an absolute "
        "path for a virtual environment).",
    )

    @field_validator("threads", mode="before")
    @classmethod
    def _one_count_is_a_list(cls, value: Any) -> Any:
        """`threads: 2` (one count) is a sweep of one."""
        return [value] if isinstance(value, int) else value

    @field_validator("threads")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError("thread counts must be >= 1")
        return value

    @field_validator("seq_lens")
    @classmethod
    def _positive_lengths(cls, value: list[int | str]) -> list[int | str]:
        if not value or any(isinstance(n, int) and n < 1 for n in value):
            raise ValueError("sequence lengths must be >= 1 (or 'dev')")
        return value

    def thread_counts(self, cores: int) -> list[int]:
        """The sweep: the recipe's counts, else 1, 2 and all cores (deduplicated)."""
        return sorted(set(self.threads or [1, min(2, cores), cores]))
