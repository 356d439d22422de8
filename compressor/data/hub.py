"""Data sets from the Hugging Face hub (`hf:<name>[:<config>]`), read by both readers: texts
with labels and tagged words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressor.data.split import DEV_NAMES
from compressor.errors import UserError

HubLoader = Callable[[], tuple[Any, str | None]]
"""`load_hub` of the recipe's source, bound and cached: called only by a reader that needs
the set, and at most once."""


def load_hub(spec: str) -> tuple[Any, str | None]:
    """The `datasets.DatasetDict` a spec names and the name of its dev split (None when it
    has none); a set that cannot be loaded is one line naming what to check."""
    from datasets import load_dataset

    name, _, config = spec.removeprefix("hf:").partition(":")
    try:
        ds = load_dataset(name, config or None)
    except Exception as exc:
        raise UserError(
            f"could not load data set {name!r} from the hub ({type(exc).__name__}) — check the "
            "name, your network, or pass a local folder with --data"
        ) from exc
    return ds, next((n for n in DEV_NAMES if n in ds), None)
