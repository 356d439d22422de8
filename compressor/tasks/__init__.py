"""Tasks: what a model predicts and how it is scored.

Each task is one module of this package registered in `TASKS` (`sequence-classification`,
`token-classification`). Data says which task it holds (`compressor.data`), a saved model
says it through its config's `architectures` (`task_of_config`); everything else asks the
task for its head, inputs, collator and metric instead of assuming one label per text.
"""

from __future__ import annotations

from typing import Any

from compressor.registry import TASKS
from compressor.tasks._task import IGNORED, NO_PREDICTION, Task

__all__ = ["DEFAULT_TASK", "IGNORED", "NO_PREDICTION", "Task", "task_named", "task_of_config"]

DEFAULT_TASK = "sequence-classification"


def task_named(name: str) -> Task:
    """The registered task, or a UserError listing the known ones."""
    return TASKS.get(name)


def task_of_config(config: dict[str, Any]) -> Task:
    """The task of a saved model, from the class names in its config's `architectures`; a
    config without a head class it knows (a bare backbone, a custom student) is the
    default task, which is what every model saved before tasks existed was."""
    for _name, task in TASKS.items():
        heads = config.get("architectures") or []
        if any(str(head).endswith(task.head_suffix) for head in heads):
            return task
    return TASKS.get(DEFAULT_TASK)
