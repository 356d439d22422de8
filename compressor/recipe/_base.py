"""The base of every recipe section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are typos, so they are rejected rather than ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
