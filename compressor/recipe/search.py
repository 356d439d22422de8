"""The `search:` section: what `compressor search` may change in the recipe, per student kind,
and how much training a candidate gets before it is judged. The space is written as dotted
recipe keys with their choices, so anything a recipe can say is searchable; `compressor
search` checks every choice against the recipe before the first trial."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from compressor.recipe._base import Strict

TANG_TRANSFER = {  # Tang et al. 2019's transfer set and loss, as in recipes/bilstm.yaml
    "distill.prediction_weight": 0.0,
    "distill.intermediate": [{"name": "logits_mse", "weight": 1.0}],
    "augment.methods": ["mask", "ngram"],
    "augment.per_example": 10,
    "train.lr": 1.0e-3,
    "train.weight_decay": 0.0,
    "train.batch_size": 64,
    # as measured for these kinds: a base recipe may freeze a transformer student's table
    "student.freeze_word_embeddings": False,
}


class KindSpace(Strict):
    """One student kind in the search: the settings it always gets (`fixed`) and the keys the
    search chooses among (`space`), both as dotted recipe keys."""

    fixed: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted recipe settings every candidate of this kind gets (its loss, "
        "learning rate, ...), laid over the recipe.",
    )
    space: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Dotted recipe key -> the choices the search picks from, for this kind.",
    )

    @model_validator(mode="after")
    def _choices(self) -> KindSpace:
        for key, choices in self.space.items():
            if not choices:
                raise ValueError(f"space.{key} has no choices: give at least one")
        return self


TAGGER_TRANSFER = {  # recipes/ner_bilstm.yaml's loss, over Dai & Adel's tag-keeping copies
    "distill.alpha": 0.0,
    "distill.intermediate": [{"name": "logits_mse", "weight": 1.0}],
    "augment.methods": ["token", "mention", "shuffle"],
    "augment.per_example": 3,
    "train.lr": 1.0e-3,
    "train.weight_decay": 0.0,
    "student.freeze_word_embeddings": False,
}


def default_kinds(tagged: bool = False) -> dict[str, KindSpace]:
    """Depth for the transformer (layer dropping from the teacher), width for the BiLSTM,
    AdaBERT's efficiency weight for the CNN (its cells are searched per candidate). For
    tagged words: the transformer, and the BiLSTM tagger on gold tags plus the teacher's
    logits (AdaBERT's CNN has a sentence head only)."""
    if tagged:
        return {
            "transformer": default_kinds()["transformer"],
            "bilstm": KindSpace(
                fixed={"student.kind": "bilstm", **TAGGER_TRANSFER},
                space={"student.hidden": [150, 300], "augment.enabled": [False, True]},
            ),
        }
    return {
        "transformer": KindSpace(
            space={
                "student.layers": [1, 2, 3, 4],
                "vocab.prune": [False, True],
                "distill.temperature": [1.0, 2.0, 4.0],
                "distill.alpha": [0.5, 0.9],
            }
        ),
        "bilstm": KindSpace(
            fixed={"student.kind": "bilstm", **TANG_TRANSFER},
            space={"student.hidden": [150, 300], "augment.enabled": [False, True]},
        ),
        "cnn": KindSpace(
            fixed={
                "student.kind": "cnn",
                "student.embedding_dim": 128,
                "student.mlp": 128,
                "adabert.enabled": True,
                **TANG_TRANSFER,
            },
            space={
                "student.hidden": [64, 128],
                "adabert.beta": [0.0, 0.5, 4.0],
                "augment.enabled": [False, True],
            },
        ),
    }


DEFAULT_SHARED: dict[str, list[Any]] = {"quantize.mode": ["dynamic-int8", "static-int8"]}


class SearchConfig(Strict):
    """`compressor search`: candidates are recipes; each trains `trial_steps` steps, is judged
    on dev accuracy at rungs of successive halving, then exported, quantized, scored and timed
    on the target beside the teacher; the chosen one is trained again with the recipe's full
    budget."""

    kinds: dict[str, KindSpace] | None = Field(
        None,
        description="Student kinds to search (registered names) and each one's space; the "
        "kinds listed replace the default ones (transformer, bilstm, cnn: see "
        "`compressor recipe show`).",
    )
    space: dict[str, list[Any]] | None = Field(
        None,
        description="Dotted recipe key -> choices shared by every kind; given, it replaces "
        "the default (the final file's quantization mode: dynamic-int8 or static-int8).",
    )
    trial_steps: int = Field(
        360,
        ge=3,
        description="Optimizer steps a candidate trains at most during the search: a proxy "
        "for its full training, judged on dev accuracy at its rungs. `make bench-search` "
        "shows the chosen candidate's proxy accuracy next to its full-budget one.",
    )
    rungs: int = Field(
        3,
        ge=1,
        description="Successive-halving rungs: a candidate's dev accuracy is compared with "
        "the others' at trial_steps / reduction_factor^k steps, and the weakest stop early.",
    )
    reduction_factor: int = Field(3, ge=2, description="Successive halving's eta.")
    pruner: Literal["halving", "hyperband", "none"] = Field(
        "halving",
        description="Optuna's SuccessiveHalvingPruner, HyperbandPruner, or no early stops.",
    )
    seed: int = Field(42, description="Seed of the sampler (Optuna's multi-objective TPE).")
    startup_trials: int = Field(
        6, ge=1, description="Random candidates before TPE starts modelling the results."
    )

    @model_validator(mode="after")
    def _choices(self) -> SearchConfig:
        if self.kinds is not None and not self.kinds:
            raise ValueError("kinds is empty: name at least one student kind to search")
        for key, choices in (self.space or {}).items():
            if not choices:
                raise ValueError(f"space.{key} has no choices: give at least one")
        return self

    @property
    def kind_spaces(self) -> dict[str, KindSpace]:
        """The kinds searched: the recipe's, else the defaults (kept out of the section's
        fields so that a recipe's own kinds replace them instead of merging into them)."""
        return default_kinds() if self.kinds is None else self.kinds

    def for_tagged_words(self) -> SearchConfig:
        """The section for token classification: the recipe's own kinds, else the tagger
        defaults."""
        return (
            self
            if self.kinds is not None
            else self.model_copy(update={"kinds": default_kinds(tagged=True)})
        )

    @property
    def shared_space(self) -> dict[str, list[Any]]:
        return DEFAULT_SHARED if self.space is None else self.space

    def first_eval(self) -> int:
        """Steps between dev evaluations: the first rung."""
        return max(1, self.trial_steps // self.reduction_factor ** (self.rungs - 1))
