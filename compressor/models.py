"""Loading teachers and pre-trained models, with the checks that keep them plain Hugging Face
models (loadable by stock `from_pretrained`, exportable by stock tooling). Students are
built by their kind (`compressor.students`); a saved student of any kind, custom code
included, loads for inference through `load_saved_classifier`."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from compressor.archs import arch_of
from compressor.errors import UserError
from compressor.tasks import DEFAULT_TASK, task_named, task_of_config

WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)

hf_logging.set_verbosity_error()


def check_model_folder(path: Path) -> None:
    """A local model folder must hold a config and weights; say which is missing."""
    if not path.is_dir():
        raise UserError(f"model folder {path} does not exist — pass a Hugging Face model folder")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} has no config.json — pass a Hugging Face model folder")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise UserError(
            f"{path} has a config but no weights (model.safetensors / pytorch_model.bin) — "
            "copy the weights there or point to the folder that has them"
        )


def resolve_model_dir(path: str | Path) -> str:
    """Accept a run folder (holding `model/`), a model folder, or a hub id."""
    p = Path(path)
    if (p / "model" / "config.json").is_file():
        p = p / "model"
    if p.is_dir():
        check_model_folder(p)
        return str(p)
    if p.exists() or str(path).startswith((".", "/")) or str(path).count("/") > 1:
        raise UserError(f"model path {path} does not exist — pass a model folder or a hub id")
    return str(path)


def load_saved_classifier(model_dir: Path) -> PreTrainedModel:
    """A saved classifier of any task and student kind, for inference and timing. A folder
    whose config has an `auto_map` ships its model's code (what a student kind that is no
    stock transformers model saves, `compressor.students`), so only then is that code run."""
    config = PretrainedConfig.get_config_dict(str(model_dir))[0]
    return task_of_config(config).auto_class.from_pretrained(
        model_dir, trust_remote_code=bool(config.get("auto_map"))
    )


def _check_supported(config: AutoConfig, where: str) -> None:
    """Refuse at load time what later stages (capture, pruning, cutting) could not read."""
    try:
        arch_of(config)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from exc


def load_tokenizer(model_dir: str | Path) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"no usable tokenizer in {model_dir} ({exc.__class__.__name__}) — save the "
            "tokenizer next to the model (tokenizer.save_pretrained)"
        ) from exc


def load_classifier(
    path: str | Path,
    num_labels: int | None = None,
    label_names: list[str] | None = None,
    task: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a classifier for `task` (default: the one its config names, a sequence
    classifier for a bare backbone), adding a fresh head when the folder has none."""
    model_dir = resolve_model_dir(path)
    try:
        config = AutoConfig.from_pretrained(model_dir)
    except OSError as exc:
        raise UserError(
            f"could not load {path} ({exc.__class__.__name__}) — check the id or folder; "
            "this machine may be offline"
        ) from exc
    _check_supported(config, str(path))
    kwargs: dict = {}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
        if label_names:
            kwargs["id2label"] = dict(enumerate(label_names))
            kwargs["label2id"] = {name: i for i, name in enumerate(label_names)}
    head = task_named(task) if task else task_of_config(config.to_dict())
    model = head.auto_class.from_pretrained(
        model_dir, ignore_mismatched_sizes=num_labels is not None, **kwargs
    )
    return model, load_tokenizer(model_dir)


def load_masked_lm(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a masked LM whose prediction head was trained: task-agnostic distillation
    matches its predictions, so a freshly initialised head would be refused."""
    model_dir = resolve_model_dir(path)
    try:
        config = AutoConfig.from_pretrained(model_dir)
    except OSError as exc:
        raise UserError(
            f"could not load {path} ({exc.__class__.__name__}) — check the id or folder; "
            "this machine may be offline"
        ) from exc
    _check_supported(config, str(path))
    model, info = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    head = {n for n, _ in model.named_parameters() if n.startswith(("cls.", "lm_head."))}
    if head & set(info["missing_keys"]):
        raise UserError(
            f"{path} has no masked-LM head (its weights hold only the encoder) — task-agnostic "
            "pruning needs a pre-trained masked LM such as bert-base-uncased; use "
            "prune.objective: task for a fine-tuned classifier"
        )
    return model, load_tokenizer(model_dir)


def label_order(model: PreTrainedModel) -> list[str]:
    """The model's class names, by class id."""
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def check_labels(model: PreTrainedModel, task: str, label_names: list[str], where: str) -> None:
    """The data must be of the teacher's task, and its labels classes the teacher knows: by
    count for one label per text (ids, whatever the teacher calls them), by name for tags
    (a tag the teacher was never trained on cannot be distilled)."""
    model_task = task_of_config(model.config.to_dict()).name
    if model_task != task:
        raise UserError(
            f"the teacher is a {model_task} model but {where} holds {task} data — pass the "
            f"data it was fine-tuned on, or fine-tune a teacher on this data"
        )
    if task == DEFAULT_TASK:
        if len(label_names) > model.config.num_labels:
            raise UserError(
                f"{where} has {len(label_names)} label values but the teacher has "
                f"{model.config.num_labels} classes — use the data the teacher was fine-tuned on"
            )
        return
    known = label_order(model)
    unknown = sorted(set(label_names) - set(known))
    if unknown:
        raise UserError(
            f"{where} has tags {', '.join(unknown)} that the teacher does not know (it knows "
            f"{', '.join(known)}) — use the data the teacher was fine-tuned on"
        )


def count_parameters(model: torch.nn.Module, *, embeddings: bool = True) -> int:
    """All parameters, or without the embedding tables: those dominate small BERTs
    (11.7 M of MiniLM-L6's 22.7 M) yet cost almost no compute, so layer-count savings only
    show in the non-embedding figure."""
    return sum(
        p.numel() for n, p in model.named_parameters() if embeddings or "embeddings." not in n
    )


def check_tokenizers_match(
    teacher_tok: PreTrainedTokenizerBase,
    other_tok: PreTrainedTokenizerBase,
    samples: list[str],
    who: str,
    fix: str,
) -> None:
    """Distillation feeds every model the same token ids, so they must mean the same
    tokens: same vocabulary, and the same ids for real sentences (casing, normalisation).
    `who` names the other model in the error ("student x", "extra teacher y")."""
    t_vocab, o_vocab = teacher_tok.get_vocab(), other_tok.get_vocab()
    if t_vocab != o_vocab:
        differ = sum(1 for tok, i in t_vocab.items() if o_vocab.get(tok) != i)
        raise UserError(
            f"{who}: its tokenizer does not match the teacher's (vocab sizes "
            f"{len(o_vocab)} vs {len(t_vocab)}, {differ} teacher tokens missing or renumbered) "
            f"— {fix}"
        )
    for text in samples:
        if teacher_tok(text)["input_ids"] != other_tok(text)["input_ids"]:
            raise UserError(
                f"{who}: its tokenizer splits {text[:40]!r} differently from the teacher's "
                f"(casing or normalisation differ) — {fix}"
            )


def load_extra_teacher(
    path: str,
    teacher: PreTrainedModel,
    teacher_tok: PreTrainedTokenizerBase,
    samples: list[str],
) -> PreTrainedModel:
    """An extra teacher for multi-teacher KD, frozen. Its logits are averaged with the main
    teacher's class by class on the main teacher's token ids, so it must read the same
    tokens and predict the same classes in the same order; either mismatch would silently
    blend unrelated distributions."""
    model, tokenizer = load_classifier(path)
    who = f"extra teacher {path}"
    check_tokenizers_match(
        teacher_tok,
        tokenizer,
        samples,
        who,
        "use a teacher fine-tuned from a model with the main teacher's tokenizer, or drop it "
        "from distill.extra_teachers",
    )
    t_cfg, x_cfg = teacher.config, model.config
    if x_cfg.num_labels != t_cfg.num_labels:
        raise UserError(
            f"{who} has {x_cfg.num_labels} classes but the main teacher has "
            f"{t_cfg.num_labels} — use a teacher fine-tuned on the same task, or drop it from "
            "distill.extra_teachers"
        )
    t_labels = [t_cfg.id2label[i] for i in range(t_cfg.num_labels)]
    x_labels = [x_cfg.id2label[i] for i in range(x_cfg.num_labels)]
    if x_labels != t_labels:
        raise UserError(
            f"{who} names its classes {x_labels} but the main teacher {t_labels}; soft "
            "targets are averaged class by class — fix id2label / label2id in its "
            "config.json if only the names differ, else re-train it with the main teacher's "
            "label order"
        )
    return model.requires_grad_(False)
