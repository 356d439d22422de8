"""Candidates as recipes: the `search:` section's choices become Optuna parameters (define by
run, so a kind's own keys exist only in its trials), and a candidate's picks become a recipe
laid over the user's, checked like any recipe."""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
from pydantic import ValidationError

from compressor.errors import UserError
from compressor.pipeline.support import unsupported_for
from compressor.recipe import Recipe, SearchConfig, set_dotted, validation_message
from compressor.tasks import DEFAULT_TASK

KIND = "kind"
SCALARS = (str, int, float, bool, type(None))


def param_name(kind: str, key: str) -> str:
    """A kind's own key gets its own parameter: `student.hidden` means different things to a
    BiLSTM and a CNN, and TPE should not pool them."""
    return f"{kind}:{key}"


def _suggest(trial: optuna.Trial, name: str, choices: list[Any]) -> Any:
    """Optuna takes scalar choices only; a list or mapping travels as its JSON text."""
    if all(isinstance(c, SCALARS) for c in choices):
        return trial.suggest_categorical(name, choices)
    return json.loads(trial.suggest_categorical(name, [json.dumps(c) for c in choices]))


def suggest(trial: optuna.Trial, cfg: SearchConfig) -> tuple[str, dict[str, Any]]:
    """The candidate's kind and its dotted settings: the kind's fixed ones, then its picks."""
    kind = trial.suggest_categorical(KIND, list(cfg.kind_spaces))
    space = cfg.kind_spaces[kind]
    settings: dict[str, Any] = {"student.kind": kind, **space.fixed}
    for key, choices in space.space.items():
        settings[key] = _suggest(trial, param_name(kind, key), choices)
    for key, choices in cfg.shared_space.items():
        settings[key] = _suggest(trial, key, choices)
    return kind, settings


def candidate_recipe(
    base: Recipe, settings: dict[str, Any], *, steps: int | None = None, eval_every: int = 0
) -> Recipe:
    """`base` with the candidate's settings; with `steps`, the search's short training (one
    evaluation every `eval_every` steps, where successive halving judges it; checkpoints
    as often as the recipe says, since saving optimizer state every rung costs more than
    a short candidate's retraining).
    Without, the recipe's own budget: how the chosen candidate is trained again."""
    tree = base.model_dump(mode="json")
    del tree["search"]
    for dotted, value in settings.items():
        set_dotted(tree, dotted, value)
    if steps is not None:
        tree["train"].update(max_steps=steps, eval_every=eval_every)
    try:
        return Recipe.model_validate(tree)
    except ValidationError as exc:
        raise UserError(validation_message(exc)) from None


def check_space(base: Recipe, task: str = DEFAULT_TASK) -> None:
    """Every choice of the space, one at a time on the recipe, before any trial runs: a typo
    found after an hour of search costs the hour, and so does a choice the data's task
    cannot run."""
    cfg = base.search
    for kind, space in cfg.kind_spaces.items():
        where = f"search.kinds.{kind}"
        fixed = {"student.kind": kind, **space.fixed}
        _check(base, fixed, f"{where}.fixed", task)
        for key, choices in [*space.space.items(), *cfg.shared_space.items()]:
            origin = f"{where}.space.{key}" if key in space.space else f"search.space.{key}"
            for choice in choices:
                _check(base, {**fixed, key: choice}, f"{origin} = {json.dumps(choice)}", task)


def _check(base: Recipe, settings: dict[str, Any], origin: str, task: str) -> None:
    try:
        candidate = candidate_recipe(base, settings)
    except UserError as exc:
        raise UserError(f"{origin}: {exc} — fix the search section of the recipe") from None
    keys = unsupported_for(candidate, task)
    if keys:
        raise UserError(
            f"{origin}: {task} data cannot run {', '.join(keys)} yet — fix the search section "
            "of the recipe"
        )


def space_size(cfg: SearchConfig) -> int:
    """Distinct candidates: the sum over kinds of the product of their choices."""
    shared = math.prod(len(c) for c in cfg.shared_space.values())
    return sum(
        math.prod(len(c) for c in k.space.values()) * shared for k in cfg.kind_spaces.values()
    )


def describe_space(cfg: SearchConfig) -> dict[str, str]:
    """One line per kind and one for the shared keys, for --dry-run."""
    lines = {
        f"kind {kind}": ", ".join(f"{key} {choices}" for key, choices in k.space.items())
        or "no choices"
        for kind, k in cfg.kind_spaces.items()
    }
    lines["every kind"] = ", ".join(f"{key} {choices}" for key, choices in cfg.shared_space.items())
    lines["candidates"] = f"{space_size(cfg)} distinct"
    return lines
