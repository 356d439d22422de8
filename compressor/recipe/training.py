"""Recipe sections of training: data, the loop, the student, distillation, augmentation
and distillation stages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from compressor.recipe._base import Strict


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
    columns: list[str] | None = Field(
        None,
        min_length=1,
        description="Names of the columns of .tsv / .csv files that have no header line, in "
        "order; their first row is then read as an example. Unset: the first row is the header.",
    )
    task: str | None = Field(
        None,
        description="sequence-classification (one label per text) or token-classification "
        "(a tag per word). Unset: read from the data (CoNLL files and JSON Lines of tokens "
        "and tags are token classification).",
    )
    tag_column: int | None = Field(
        None,
        ge=2,
        description="Which column of a CoNLL file holds the tag (1 is the word). Unset: the last.",
    )
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
    group_by_length: bool = Field(
        False,
        description="Batch training examples of similar length (shuffled groups of 50 "
        "batches, sorted inside), so little compute goes to padding; the order still changes "
        "every epoch and a resumed run replays it.",
    )
    keep: Literal["best", "last"] = Field(
        "best",
        description="Keep the best model by dev accuracy, or the last one (for stages whose "
        "classifier is not trained yet, like TinyBERT's intermediate stage).",
    )


DEFAULT_CELLS = [
    [("conv3", 0, 2), ("dil_conv3", 1, 2), ("conv5", 2, 3), ("max_pool3", 1, 3)],
    [("conv3", 0, 2), ("conv3", 1, 2), ("dil_conv5", 2, 3), ("identity", 1, 3)],
]
"""A small two-cell CNN for `student.kind: cnn`: two nodes per cell, two edges each, as in
DARTS' derived cells, mixing plain, dilated and pooling operations."""


class StudentConfig(Strict):
    """What the student is (`kind`): cut from the teacher (DistilBERT-style layer
    initialisation), a separately pre-trained model, or a BiLSTM (Tang et al. 2019) or a
    cell-based CNN (AdaBERT, Chen et al. 2020) built on the teacher's word embeddings."""

    model: str | None = Field(
        None,
        description="A pre-trained model (hub id or folder) used as the student instead of "
        "cutting the teacher; its tokenizer must match the teacher's. `layers` and `init` "
        "are then unused.",
    )
    kind: str = Field(
        "transformer",
        description="What the student is (compressor/students): 'transformer' is the "
        "teacher's architecture with fewer layers, or `model`; 'bilstm' is Tang et al.'s "
        "one-layer BiLSTM on the teacher's tokenizer and word embeddings, sized by the keys "
        "below (`layers` and `init` do not apply to it); 'cnn' is AdaBERT's convolutional "
        "student with the architecture in `cells`.",
    )
    layers: int = Field(3, ge=1)
    init: Literal["uniform", "first", "last"] | list[int] = Field(
        "uniform",
        description="Teacher layers copied into the student: 'uniform' takes every k-th "
        "(TinyBERT's g(m) = m*N/M), 'first' / 'last' the first / last M, or an explicit "
        "list of 0-based teacher layer indices.",
    )
    hidden: int = Field(
        300,
        ge=1,
        description="bilstm: LSTM units per direction (Tang et al. 2019: 300); cnn: channels "
        "of every cell. Ignored by the transformer kind, like the keys below.",
    )
    mlp: int = Field(400, ge=1, description="bilstm, cnn: width of the ReLU layer (Tang: 400).")
    embedding_dim: int | None = Field(
        None,
        ge=1,
        description="bilstm, cnn: width of the word embeddings, initialised from the teacher's; "
        "unset keeps the teacher's width, a smaller one projects them on their first "
        "principal components.",
    )
    siamese: bool = Field(
        False,
        description="bilstm: encode the two sentences of a pair apart and compare them "
        "(Tang's siamese model); needs data.text_pair_column. Off, a pair is read as one "
        "sequence (the only way a cnn student reads pairs).",
    )
    freeze_word_embeddings: bool | None = Field(
        None,
        description="Keep the word embeddings the student got from the teacher fixed while "
        "distilling. They are most of a small student's weights (two thirds of a 3-layer "
        "MiniLM-L6 cut), their gradient and optimizer update are dense, and a small "
        "transfer set moves few of their rows. Unset: fixed for a transformer cut from the "
        "teacher (where `make bench-distill` measured it), trained for every other student.",
    )
    cells: list[list[tuple[str, int, int]]] = Field(
        DEFAULT_CELLS,
        description="cnn: the architecture, a list of cells, each a list of [op, source, "
        "target] edges. Nodes 0 and 1 are the two previous cells' outputs, 2, 3, ... the "
        "cell's own; a node sums its edges and the cell outputs their mean. ops: conv3, "
        "conv5, conv7, dil_conv3, dil_conv5, dil_conv7 (dilation 2), max_pool3, avg_pool3, "
        "identity, zero. Written by hand or by a search; training never changes it.",
    )

    @property
    def frozen_word_embeddings(self) -> bool:
        """`freeze_word_embeddings` resolved: unset means fixed only for a transformer cut
        from the teacher, the one student kind whose retention was measured with them fixed."""
        if self.freeze_word_embeddings is not None:
            return self.freeze_word_embeddings
        return self.kind == "transformer" and self.model is None


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
    teacher_states_mb: int = Field(
        2048,
        ge=0,
        description="Largest store (MB, on disk and in the page cache) of the teacher's hidden "
        "states on the training examples, computed once when the terms read hidden states "
        "only; a larger one is not written and the teacher runs on every batch (the run "
        "says which). 0 never stores them.",
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
    Tang et al. 2019, sec. 3.1; for tagged words Dai & Adel 2020, sec. 2). Off by default: it
    multiplies the data the teacher reads."""

    enabled: bool = False
    methods: list[Literal["replace", "mask", "ngram", "token", "mention", "shuffle"]] = Field(
        default_factory=lambda: ["replace"],
        description="For texts: 'replace' (TinyBERT word replacement), 'mask' (Tang's [MASK] "
        "substitution), 'ngram' (Tang's n-gram sampling). For tagged words, keeping the "
        "tags right (Dai & Adel): 'token' (a word becomes another of its tag), 'mention' (an "
        "entity becomes another of its type), 'shuffle' (words shuffled within a one-label "
        "segment). Each augmented copy applies one method, cycling through the list.",
    )
    tag_prob: float = Field(
        0.3, ge=0, le=1, description="Dai & Adel's p per word, mention or segment (grid 0.1-0.7)."
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


class StageConfig(Strict):
    """One stage of a multi-stage distillation: overrides of `distill` and `train` for it
    (TinyBERT: intermediate layers first, then the prediction layer)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    distill: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
