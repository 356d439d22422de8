"""Recipe sections that shrink a trained student: structured pruning and vocabulary pruning."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from compressor.recipe._base import Strict


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


class AdaBertConfig(Strict):
    """AdaBERT's differentiable search (Chen et al., IJCAI 2020) of a `cnn` student's cell and
    depth, run before distillation; what it finds replaces `student.cells`, and the
    distillation stage then trains that discrete network from scratch.

    One cell architecture is searched and stacked: each of its `nodes` intermediate nodes
    reads every earlier node through an edge that mixes AdaBERT's ten operations by a
    Gumbel-softmax, and the depth K (1..`max_cells`) is a Gumbel-softmax choice too. The loss
    is (1 - gamma) CE + gamma KD + beta L_E, KD learning per-layer probe classifiers on the
    teacher's hidden states, L_E the expected parameters and FLOPs of the chosen operations.
    """

    enabled: bool = Field(False, description="Search the cnn student's cells before distilling.")
    max_cells: int = Field(
        4, ge=1, le=12, description="K_max: the deepest network searched (the paper: 8)."
    )
    nodes: int = Field(
        3, ge=1, le=6, description="Intermediate nodes per cell (the paper and DARTS: 3)."
    )
    gamma: float = Field(0.8, ge=0, le=1, description="Weight of the KD term against CE.")
    beta: float = Field(
        4.0, ge=0, description="Weight of the efficiency term L_E, in [0, 1] per architecture."
    )
    temperature: float = Field(
        1.0, gt=0, description="KD temperature on the probes' and the cells' logits."
    )
    gumbel_temperature: float = Field(
        1.0, gt=0, description="Gumbel-softmax temperature at epoch 0; x0.98 every epoch."
    )
    epochs: float = Field(8.0, gt=0, description="Passes over the search examples.")
    max_examples: int = Field(
        4000,
        ge=16,
        description="Training examples the search reads (half train the weights, half the "
        "architecture); the teacher's hidden states of all of them are held in memory.",
    )
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate of the network's weights.")
    arch_lr: float = Field(3e-3, gt=0, description="Adam learning rate of the architecture.")
    probe_epochs: int = Field(
        20, ge=1, description="Passes of each teacher-layer probe classifier over the examples."
    )
    seed: int = 42
