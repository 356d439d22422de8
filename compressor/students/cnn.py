"""The `cnn` student kind: the convolutional student of AdaBERT (Chen et al., IJCAI 2020,
"Task-Adaptive BERT Compression with Differentiable Neural Architecture Search"), with its
architecture given in the recipe (`student.cells`) or by AdaBERT's search stage. The model is
`modeling_cnn.py`, saved beside the weights so that `trust_remote_code=True` loads it
without this project; the architecture lives in its config.json, so retraining, loading and
export never search.

What is AdaBERT's: the search space's operations (convolutions of width 3, 5 and 7, the
same dilated, max and average pooling of width 3, identity, zero), cells whose two inputs are
the two previous cells' outputs, nodes that sum their incoming edges, the first cell reading
the (single) sentence's embeddings as both inputs, embeddings started from BERT's, a max
pool over the sequence and a classifier on top.

Where this differs, and why:

- The search is a stage of its own (`compressor/nas`, `adabert:` in the recipe): it writes
  `student.cells` into the run folder, and this kind only builds what it is given.
- Cell output: the mean of the cell's intermediate nodes (DARTS concatenates them, which
  would multiply the width by the node count); every cell keeps `student.hidden` channels.
- Operations: ReLU then convolution, without DARTS' batch norm, whose batch statistics
  would let pads and other sentences reach a sentence's states while training. Every
  operation's output is zeroed at the pads, and the sentence vector is a max over real
  tokens, so a sentence's logits do not depend on its batch.
- Embeddings: the teacher's WordPiece table (projected on its principal components when
  `student.embedding_dim` is narrower, as the bilstm kind does), then a 1x1 convolution to
  `student.hidden` channels; a ReLU layer (`student.mlp`) before the classifier.
- Sentence pairs: AdaBERT feeds the two sentences to the first cell's two inputs; here a pair
  is read as one sequence ([CLS] a [SEP] b [SEP]) and `student.siamese` is refused.
- Training: the recipe's terms. AdaBERT's search distils the teacher's layers through probe
  classifiers; the retraining here learns the teacher's logits (`logits_mse`), and losses
  that read attentions, hidden states or Q/K/V are refused (`provides`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor.errors import UserError
from compressor.models import load_tokenizer
from compressor.registry import STUDENT_KINDS
from compressor.students._custom import CustomKind
from compressor.students.modeling_cnn import (
    CNNConfig,
    CNNForSequenceClassification,
    check_cells,
)

if TYPE_CHECKING:
    # typing only: recipe validation imports the losses, which import this package
    from compressor.recipe import StudentConfig


class CNNKind(CustomKind):
    """The seam for AdaBERT's students; one stateless instance is registered."""

    name = "cnn"
    model_type = CNNConfig.model_type
    heads: ClassVar[dict[str, type[PreTrainedModel]]] = {
        "sequence-classification": CNNForSequenceClassification
    }

    def build(
        self,
        teacher: PreTrainedModel,
        teacher_tokenizer: PreTrainedTokenizerBase,
        cfg: StudentConfig,
        samples: list[str],
    ) -> tuple[CNNForSequenceClassification, PreTrainedTokenizerBase]:
        """A fresh CNN of `cfg.cells` on the teacher's tokenizer, its embedding table the
        teacher's (projected to `cfg.embedding_dim` when narrower)."""
        if cfg.siamese:
            raise UserError(
                "student.siamese is the bilstm's pair model and a cnn student reads a pair as "
                "one sequence — set student.siamese false, or student.kind bilstm"
            )
        try:
            check_cells(cfg.cells)
        except ValueError as exc:
            raise UserError(f"student.cells: {exc} — fix the architecture in the recipe") from exc
        return self.fresh(teacher, teacher_tokenizer, cfg, cells=cfg.cells)

    def describe(self, model: nn.Module, cfg: StudentConfig | None = None) -> str:
        config = getattr(model, "module", model).config
        kept = getattr(config, "embedding_variance_kept", 1.0)
        edges = sum(len(cell) for cell in config.cells)
        return (
            f"CNN of {len(config.cells)} cells ({edges} edges), {config.hidden_size} channels, "
            f"{config.mlp_size}-unit ReLU layer, {config.embedding_dim}-d embeddings from the "
            f"teacher's ({kept:.1%} of their variance)"
        )

    def export_onnx(self, model_dir: Path, out_dir: Path, opset: int) -> Path:
        """Conv, MaxPool and AveragePool nodes; inputs input_ids and attention_mask (a pair
        is one sequence). The sample holds two sentences of different lengths, so it has
        pads."""
        model, tokenizer = self.load(model_dir), load_tokenizer(model_dir)
        sample = tokenizer(["a b c d e", "f"], padding=True, return_tensors="pt")
        names = ["input_ids", "attention_mask"]
        return self.write_onnx(model, tokenizer, sample, names, out_dir, opset)

    def dims(self, model: nn.Module) -> tuple[int, int]:
        """Cells and channels: sizes terms that read logits only, the only ones a CNN
        student is given."""
        config = getattr(model, "module", model).config
        return len(config.cells), config.hidden_size


CNN = STUDENT_KINDS.register(CNNKind.name)(CNNKind())
