"""What the student kinds built on the teacher's word embeddings share (the `bilstm` and `cnn`
kinds): their models are custom Hugging Face classes whose code is saved beside the weights,
so loading, saving, the logits-only adaptor and the ONNX export are the same for every such
kind, and so is the start: the teacher's word-embedding table, optionally projected on its
first principal components. Each kind lists its model class per task (`heads`); the
teacher's task picks one."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from transformers import BatchEncoding, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from compressor.atomic import write_json
from compressor.errors import UserError
from compressor.models import resolve_model_dir
from compressor.students._kind import Features, Wants, accepted_inputs
from compressor.tasks import task_of_config

if TYPE_CHECKING:
    # typing only: recipe validation imports the losses, which import this package
    from compressor.recipe import StudentConfig


def principal_components(table: torch.Tensor, width: int) -> tuple[torch.Tensor, float]:
    """The rows of `table` on its first `width` principal components, and the share (0..1)
    of the table's variance those keep. An exact SVD, not `torch.pca_lowrank`'s randomised
    one, so a build gives the same student every time; a 30k x 768 table takes a second."""
    centred = table.float() - table.float().mean(0)
    _, singular, v_t = torch.linalg.svd(centred, full_matrices=False)
    variance = singular.pow(2)
    return centred @ v_t[:width].T, float(variance[:width].sum() / variance.sum())


class CustomKind:
    """Base of the kinds whose model is a registered custom class (`model_type`) started
    from the teacher's word embeddings; subclasses build the model and say which inputs
    their ONNX graph takes. Stateless: one instance per kind is registered."""

    name: str
    model_type: str
    heads: ClassVar[dict[str, type[PreTrainedModel]]]
    provides = Wants()

    def claims(self, config: dict[str, Any]) -> bool:
        return config.get("model_type") == self.model_type

    def serves(self, task: str) -> bool:
        return task in self.heads

    def head_for(self, teacher: PreTrainedModel) -> type[PreTrainedModel]:
        """The model class for the teacher's task; a task the kind has no head for is
        refused (the pipeline refuses it earlier, from the data)."""
        task = task_of_config(teacher.config.to_dict()).name
        if task not in self.heads:
            raise UserError(
                f"a {self.name} student has no {task} head (it has: {', '.join(self.heads)}) "
                "— set student.kind to transformer"
            )
        return self.heads[task]

    def teacher_embeddings(
        self,
        teacher: PreTrainedModel,
        teacher_tokenizer: PreTrainedTokenizerBase,
        cfg: StudentConfig,
    ) -> tuple[torch.Tensor, float]:
        """The teacher's word-embedding table at `cfg.embedding_dim` columns (its principal
        components when narrower) and the share of variance kept; refuses what these kinds
        cannot read: a pre-trained student model, or pads before the real tokens."""
        if cfg.model is not None:
            raise UserError(
                f"student.model ({cfg.model}) is a pre-trained transformer student, and a "
                f"{self.name} student is built on the teacher's embeddings — drop "
                "student.model, or set student.kind transformer"
            )
        if teacher_tokenizer.padding_side != "right":
            raise UserError(
                f"the teacher's tokenizer pads on the left and a {self.name} student reads pads "
                "after the real tokens — set padding_side 'right' in its tokenizer_config.json"
            )
        table = teacher.get_input_embeddings().weight.detach()
        width = cfg.embedding_dim or table.shape[1]
        if width > table.shape[1]:
            raise UserError(
                f"student.embedding_dim {width} is wider than the teacher's word embeddings "
                f"({table.shape[1]}) — set it to at most {table.shape[1]}, or leave it unset"
            )
        return (table, 1.0) if width == table.shape[1] else principal_components(table, width)

    def fresh(
        self,
        teacher: PreTrainedModel,
        teacher_tokenizer: PreTrainedTokenizerBase,
        cfg: StudentConfig,
        **fields: Any,
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """A new student with the head of the teacher's task, on the teacher's tokenizer and
        labels, its embedding table the teacher's (projected to `cfg.embedding_dim` when
        narrower); `fields` are the kind's own config entries."""
        model_class = self.head_for(teacher)
        weights, kept = self.teacher_embeddings(teacher, teacher_tokenizer, cfg)
        labels = teacher.config
        config = model_class.config_class(
            vocab_size=weights.shape[0],
            embedding_dim=weights.shape[1],
            hidden_size=cfg.hidden,
            mlp_size=cfg.mlp,
            pad_token_id=teacher_tokenizer.pad_token_id,
            num_labels=labels.num_labels,
            id2label=labels.id2label,
            label2id=labels.label2id,
            embedding_variance_kept=round(kept, 4),
            **fields,
        )
        student = model_class(config)
        with torch.no_grad():
            student.get_input_embeddings().weight.copy_(weights)
        return student, teacher_tokenizer

    def load(self, folder: Path) -> PreTrainedModel:
        """Through the code saved beside the weights and the Auto class of the task its
        config names, as any user of the folder loads it."""
        model_dir = resolve_model_dir(folder)
        config = PretrainedConfig.get_config_dict(model_dir)[0]
        return task_of_config(config).auto_class.from_pretrained(model_dir, trust_remote_code=True)

    def save(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
        """`save_pretrained` writes the config's `auto_map` and copies the modeling file."""
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    def adapt(self, model: nn.Module, inputs: dict[str, torch.Tensor], wants: Wants) -> Features:
        """The logits; hidden states, attentions and Q/K/V are never present (`provides`)."""
        accepted = accepted_inputs(model)
        return Features(model(**{k: v for k, v in inputs.items() if k in accepted}).logits)

    def write_onnx(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        sample: BatchEncoding,
        names: list[str],
        out_dir: Path,
        opset: int,
    ) -> Path:
        """The TorchScript exporter, which optimum also uses for transformers: torch.export's
        (`dynamo=True`) keeps the sequence length dynamic only in the first LSTM export of a
        process (PyTorch 2.13 reuses a cached non-loop LSTM kernel afterwards and bakes the
        length in). `sample` should hold pads, as real batches do. Batch and sequence axes
        dynamic (a tagger's logits keep the sequence axis), inputs named as the tokenizer
        names them; config.json (without `auto_map`:
        no PyTorch code ships with the graph) and the tokenizer beside it, as optimum's export
        leaves them for a transformer."""
        path = Path(out_dir) / "model.onnx"
        inputs = tuple(sample[name] for name in names)
        with torch.no_grad():
            per_token = model.eval()(*inputs).logits.dim() == 3
        with warnings.catch_warnings():
            # its deprecation notice, and shape warnings (an LSTM exported at batch 2 may
            # fail at other sizes): the parity check runs other sizes and lengths on every
            # export
            warnings.simplefilter(
                "ignore", (DeprecationWarning, UserWarning, torch.jit.TracerWarning)
            )
            torch.onnx.export(
                model,
                inputs,
                str(path),
                input_names=names,
                output_names=["logits"],
                dynamic_axes={
                    **{name: {0: "batch", 1: "sequence"} for name in names},
                    "logits": {0: "batch", 1: "sequence"} if per_token else {0: "batch"},
                },
                opset_version=opset,
                dynamo=False,
            )
        config = model.config.to_dict()
        config.pop("auto_map", None)
        write_json(Path(out_dir) / "config.json", config)
        tokenizer.save_pretrained(out_dir)
        return path
