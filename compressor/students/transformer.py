"""The `transformer` student kind: a Hugging Face encoder classifier, either a shallower copy
of the teacher initialised from chosen teacher layers (DistilBERT) or a separately
pre-trained model given by `student.model`. It stays a plain HF model: saved with
`save_pretrained`, loaded by stock `from_pretrained`, exported by optimum."""

from __future__ import annotations

import copy
import re
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from compressor.archs import arch_of
from compressor.models import (
    check_tokenizers_match,
    load_classifier,
    load_saved_classifier,
    resolve_model_dir,
)
from compressor.registry import STUDENT_KINDS
from compressor.students._capture import capture_qkv
from compressor.students._kind import Features, Wants, accepted_inputs
from compressor.students._layers import init_layers
from compressor.tasks import task_of_config

if TYPE_CHECKING:
    # typing only: recipe validation imports the losses, which import this package
    from compressor.recipe import StudentConfig


def build_student(teacher: PreTrainedModel, cfg: StudentConfig) -> PreTrainedModel:
    """A shallower copy of the teacher initialised from chosen teacher layers (DistilBERT).

    Works on the state dict by renaming `<layers>.<t>.` to `<layers>.<s>.`, the layer path
    coming from the architecture spec, so one function serves every family with a spec.
    """
    n_teacher = teacher.config.num_hidden_layers
    chosen = init_layers(cfg.init, cfg.layers, n_teacher)
    layer_key = re.compile(rf"(?:^|\.){re.escape(arch_of(teacher).layers)}\.(\d+)\.")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = cfg.layers
    student = type(teacher)(config)
    source_of = {t: s for s, t in enumerate(chosen)}
    state = {}
    for key, value in teacher.state_dict().items():
        match = layer_key.search(key)
        if match is None:
            state[key] = value
            continue
        t_idx = int(match.group(1))
        if t_idx in source_of:
            state[key[: match.start(1)] + str(source_of[t_idx]) + key[match.end(1) :]] = value
    missing, unexpected = student.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise RuntimeError(f"student init mismatch: missing={missing} unexpected={unexpected}")
    return student


class TransformerKind:
    """The seam for plain HF encoder classifiers; one stateless instance is registered."""

    name = "transformer"
    provides = Wants(hidden_states=True, attentions=True, qkv=True)

    def claims(self, config: dict[str, Any]) -> bool:
        """Any HF config whose model class ships with transformers: custom code (an
        `auto_map`) belongs to the kind that wrote it."""
        return not config.get("auto_map")

    def serves(self, task: str) -> bool:
        """Every task: transformers has an Auto class for each registered one."""
        return True

    def build(
        self,
        teacher: PreTrainedModel,
        teacher_tokenizer: PreTrainedTokenizerBase,
        cfg: StudentConfig,
        samples: list[str],
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Cut from the teacher (sharing its tokenizer), or a pre-trained model given a
        fresh head for the teacher's labels, whose tokenizer must read the same ids."""
        if cfg.model is None:
            return build_student(teacher, cfg), teacher_tokenizer
        labels = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
        task = task_of_config(teacher.config.to_dict()).name
        student, student_tok = load_classifier(cfg.model, len(labels), labels, task)
        check_tokenizers_match(
            teacher_tokenizer,
            student_tok,
            samples,
            f"student {cfg.model}",
            "pick a student pre-trained with the teacher's tokenizer",
        )
        return student, student_tok

    def describe(self, model: nn.Module, cfg: StudentConfig | None = None) -> str:
        layers = f"{getattr(model, 'module', model).config.num_hidden_layers} layers"
        if cfg is None:
            return layers
        if cfg.model is not None:
            return f"{layers}, {cfg.model} (pre-trained; tokenizer matches the teacher's)"
        return f"{layers}, cut from teacher layers {cfg.init}"

    def load(self, folder: Path) -> PreTrainedModel:
        return load_saved_classifier(Path(resolve_model_dir(folder)))

    def save(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    def export_onnx(self, model_dir: Path, out_dir: Path, opset: int) -> Path:
        """optimum's exporter, so every architecture it knows works without our own export
        code (pruned heads and narrower FFNs included: they are plain configs). Batch and
        sequence axes stay dynamic; optimum's validation on random inputs is skipped, the
        caller checks parity on real sentences."""
        # imported here: it takes seconds, and every training run loads this module
        from optimum.exporters.onnx import main_export

        with warnings.catch_warnings():
            # transformers' mask code trips the tracer's constant warning on every export; a
            # trace that really baked in a shape fails the varied-length parity check instead.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            main_export(
                str(model_dir),
                str(out_dir),
                task=task_of_config(
                    PretrainedConfig.get_config_dict(str(model_dir))[0]
                ).pipeline_tag,
                opset=opset,
                do_validation=False,
                local_files_only=True,
                library_name="transformers",
            )
        return Path(out_dir) / "model.onnx"

    def dims(self, model: nn.Module) -> tuple[int, int]:
        config = getattr(model, "module", model).config
        return config.num_hidden_layers, config.hidden_size

    def adapt(self, model: nn.Module, inputs: dict[str, torch.Tensor], wants: Wants) -> Features:
        """HF outputs as they are; Q/K/V through hooks on the projections the arch spec
        names, only when asked for (they hold every layer's activations)."""
        accepted = accepted_inputs(model)
        hooks = capture_qkv(model) if wants.qkv else nullcontext(None)
        with hooks as captured:
            out = model(
                **{k: v for k, v in inputs.items() if k in accepted},
                output_hidden_states=wants.hidden_states,
                output_attentions=wants.attentions,
            )
        return Features(out.logits, out.hidden_states, out.attentions, captured)


TRANSFORMER = STUDENT_KINDS.register(TransformerKind.name)(TransformerKind())
