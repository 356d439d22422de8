"""The `bilstm` student kind: Tang et al. (2019), "Distilling Task-Specific Knowledge from
BERT into Simple Neural Networks": a one-layer BiLSTM (300 units per direction), a ReLU layer
(400) and the classifier, trained on the teacher's logits (`logits_mse`, their eq. 2); for
sentence pairs its siamese variant, [h1, h2, h1 * h2, |h1 - h2|] of the two sentences
encoded by the same BiLSTM (their sec. 3.2). For a token-classification teacher the same
BiLSTM tags: each token's two states go through the ReLU layer and the classifier, as
TextBrewer's one-layer BiGRU NER student does (a GRU there, an LSTM here). The model is
`modeling_bilstm.py`, saved beside the weights so that `trust_remote_code=True` loads it
without this project.

Where this differs from the paper, and why:

- Vocabulary and embeddings: the paper reads words through 300-d word2vec vectors (on
  SST-2 two channels, one frozen, one trained). Here the student keeps the teacher's
  WordPiece tokenizer and starts from the teacher's input word embeddings, one trained
  channel: both models are fed the same token ids in every batch, the shipped tokenizer
  stays the teacher's, vocabulary pruning applies unchanged, and no word vectors have to be
  downloaded. `student.embedding_dim` below the teacher's width projects the table on its
  first principal components (exact SVD of the centred table; the embedding mean, one
  constant shift of every input, is dropped and the LSTM's bias can absorb it). The share
  of variance kept is written into config.json as `embedding_variance_kept`.
- Sentence vector: the paper concatenates the last forward and backward states; this model
  max-pools both directions' states over the real tokens (pads masked), which needs no
  per-sentence gather of a last position and sees every token's state. It is not compared
  with the last states here.
- Tokens: the BiLSTM reads the tokenizer's output as it is, [CLS] and [SEP] included; the
  siamese model's two sentences are the tokenizer's segments ([CLS] a [SEP] and b [SEP]).
- Tagging: Tang et al. classify sentences only; the tagger is this kind's extension, not
  their model. It reads every word piece and the first piece of each word carries its tag,
  as for transformer taggers; no CRF (TextBrewer's BiGRU has none either).
- Training: the paper mixes alpha * CE + (1 - alpha) * MSE (eq. 3) and optimises with
  Adadelta; here the recipe sets the mix (`recipes/bilstm.yaml`) and the trainer's AdamW
  runs it. Their augmentation is `compressor.augment` (no POS-guided swapping there).
- What losses can read: the logits only. A BiLSTM has no attentions or Q/K/V, and its states
  are no layer of the teacher's, so terms reading those are refused before training
  (`provides`, checked by `compressor.distill.objective.check_servable`).
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
from compressor.students.modeling_bilstm import (
    BiLSTMConfig,
    BiLSTMForSequenceClassification,
    BiLSTMForTokenClassification,
)

if TYPE_CHECKING:
    # typing only: recipe validation imports the losses, which import this package
    from compressor.recipe import StudentConfig


class BiLSTMKind(CustomKind):
    """The seam for Tang et al.'s students; one stateless instance is registered."""

    name = "bilstm"
    model_type = BiLSTMConfig.model_type
    heads: ClassVar[dict[str, type[PreTrainedModel]]] = {
        "sequence-classification": BiLSTMForSequenceClassification,
        "token-classification": BiLSTMForTokenClassification,
    }

    def build(
        self,
        teacher: PreTrainedModel,
        teacher_tokenizer: PreTrainedTokenizerBase,
        cfg: StudentConfig,
        samples: list[str],
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """A fresh BiLSTM with the head of the teacher's task, on the teacher's tokenizer,
        its embedding table the teacher's (projected to `cfg.embedding_dim` when
        narrower)."""
        if cfg.siamese and self.head_for(teacher) is BiLSTMForTokenClassification:
            raise UserError(
                "student.siamese encodes the two sentences of a pair apart, and a tagger reads "
                "one sequence — set student.siamese false"
            )
        return self.fresh(teacher, teacher_tokenizer, cfg, siamese=cfg.siamese)

    def describe(self, model: nn.Module, cfg: StudentConfig | None = None) -> str:
        config = getattr(model, "module", model).config
        kept = getattr(config, "embedding_variance_kept", 1.0)
        # by name: a loaded model's class comes from the code saved beside its weights
        tagger = type(getattr(model, "module", model)).__name__ == "BiLSTMForTokenClassification"
        return (
            f"{'siamese ' * config.siamese}BiLSTM{' tagger' * tagger}, "
            f"{config.hidden_size} units per direction, "
            f"{config.mlp_size}-unit ReLU layer, {config.embedding_dim}-d embeddings from the "
            f"teacher's ({kept:.1%} of their variance)"
        )

    def export_onnx(self, model_dir: Path, out_dir: Path, opset: int) -> Path:
        """Inputs as the tokenizer names them (token_type_ids for a siamese model only); the
        sample holds two sentences of different lengths, so it has pads."""
        model, tokenizer = self.load(model_dir), load_tokenizer(model_dir)
        siamese = model.config.siamese
        names = ["input_ids", "attention_mask", *(["token_type_ids"] * siamese)]
        sample = tokenizer(["a b c d e", "f"], ["g h", "i j k"] if siamese else None,
                           padding=True, return_tensors="pt")  # fmt: skip
        return self.write_onnx(model, tokenizer, sample, names, out_dir, opset)

    def dims(self, model: nn.Module) -> tuple[int, int]:
        """One layer, both directions' width: sizes terms that read logits only, the only
        ones a BiLSTM student is given."""
        return 1, 2 * getattr(model, "module", model).config.hidden_size


BILSTM = STUDENT_KINDS.register(BiLSTMKind.name)(BiLSTMKind())
