"""Options that several commands share, declared once as groups.

A command declares a parameter annotated with a group (a dataclass whose fields are Typer
options); `grouped` spreads the group's fields into the command's signature, which is what
Typer reads, and hands the command one instance of the group. The help text and defaults of
a shared flag therefore live in one place."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

F = TypeVar("F", bound=Callable[..., Any])

RecipeOpt = Annotated[
    Path | None, typer.Option("--recipe", "-r", help="YAML recipe; flags override its keys.")
]
TextCol = Annotated[str | None, typer.Option(help="Column holding the text. \\[default: sentence]")]
PairCol = Annotated[
    str | None, typer.Option(help="Second text column for sentence-pair tasks. \\[default: none]")
]
LabelCol = Annotated[str | None, typer.Option(help="Column holding the label. \\[default: label]")]
BatchSize = Annotated[int | None, typer.Option(help="Examples per batch. \\[default: 32]")]
TeacherOpt = Annotated[
    str,
    typer.Option(help="Fine-tuned teacher: a finetune run folder, a model folder or a hub id."),
]
DATA_HELP = (
    "Folder with train.* (+ dev.*) files, one .tsv/.csv/.jsonl file, or "
    "hf:<dataset>[:<config>]. Default: ../shared/data/sst2, else hf:glue:sst2."
)


@dataclasses.dataclass
class DataOptions:
    """Where the task data is and which columns hold what."""

    data: Annotated[str | None, typer.Option(help=DATA_HELP)] = None
    text_column: TextCol = None
    text_pair_column: PairCol = None
    label_column: LabelCol = None
    max_train_examples: Annotated[
        int | None, typer.Option(help="Train on a seeded subset of this many examples.")
    ] = None
    columns: Annotated[
        str | None,
        typer.Option(
            help="Names of the columns of .tsv/.csv files without a header line, in order and "
            "comma-separated, e.g. sentence,label. \\[default: the first line is the header]"
        ),
    ] = None

    def overrides(self) -> dict[str, Any]:
        columns = None if self.columns is None else [c.strip() for c in self.columns.split(",")]
        return {
            "data.source": self.data,
            "data.text_column": self.text_column,
            "data.text_pair_column": self.text_pair_column,
            "data.label_column": self.label_column,
            "data.max_train_examples": self.max_train_examples,
            "data.columns": columns,
        }


@dataclasses.dataclass
class TrainOptions:
    """The training loop's length and pace."""

    steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")] = None
    epochs: Annotated[
        float | None, typer.Option(help="Passes over the training set. \\[default: 1]")
    ] = None
    batch_size: BatchSize = None
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (linear warm-up / decay).")
    ] = None

    def overrides(self, section: str) -> dict[str, Any]:
        """The flags as keys of `section` (train, finetune, prune.train)."""
        return {
            f"{section}.max_steps": self.steps,
            f"{section}.epochs": self.epochs,
            f"{section}.batch_size": self.batch_size,
            f"{section}.lr": self.lr,
        }


@dataclasses.dataclass
class ChainOptions:
    """What of the compress chain runs after training."""

    prune_vocab: Annotated[
        bool | None,
        typer.Option(
            help="Keep only the tokens of the training text in the vocabulary and embeddings "
            "(WordPiece tokenizers). \\[default: off]"
        ),
    ] = None
    skip_benchmark: Annotated[bool, typer.Option(help="Stop after evaluation.")] = False
    skip_export: Annotated[
        bool,
        typer.Option(help="Keep the PyTorch student only: no ONNX export or quantization."),
    ] = False
    dry_run: Annotated[
        bool, typer.Option(help="Check inputs and print the plan; train nothing.")
    ] = False


@dataclasses.dataclass
class RunOptions:
    """What to do with an output folder that already holds a run."""

    overwrite: Annotated[
        bool, typer.Option(help="Replace a previous run in the output folder.")
    ] = False
    resume: Annotated[
        bool, typer.Option(help="Continue the run in the output folder from its last checkpoint.")
    ] = False


def grouped(command: F) -> F:
    """Spread every option-group parameter of `command` into its fields for Typer, and
    rebuild the group when the command is called."""
    signature = inspect.signature(command, eval_str=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type, list[str]]] = {}
    for param in signature.parameters.values():
        group = param.annotation
        if not dataclasses.is_dataclass(group):
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        hints = get_type_hints(group, include_extras=True)
        names = [field.name for field in dataclasses.fields(group)]
        groups[param.name] = (group, names)
        params += [
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=hints[field.name],
            )
            for field in dataclasses.fields(group)
        ]

    @functools.wraps(command)
    def call(**kwargs: Any) -> Any:
        for name, (group, names) in groups.items():
            kwargs[name] = group(**{field: kwargs.pop(field) for field in names})
        return command(**kwargs)

    call.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params}
    return call  # type: ignore[return-value]
