"""The interface every stage of `compress` shares: its name (the run-state key it records
under), whether the recipe enables it, one plan line for `--dry-run`, and `run`."""

from __future__ import annotations

from abc import ABC, abstractmethod

from compressor.pipeline.context import RunContext


class Stage(ABC):
    """One step of the chain. A stage reads the run folder and the context and records its
    measurements under `key(ctx)`; the chain skips it when that key is already recorded."""

    name: str

    def enabled(self, ctx: RunContext) -> bool:
        return True

    def skipped_because(self, ctx: RunContext) -> str:
        """Why `enabled` is false, for the plan."""
        return "not enabled by the recipe"

    def status(self, ctx: RunContext) -> str | None:
        """A spinner line for stages that show no progress bar of their own."""
        return None

    def key(self, ctx: RunContext) -> str:
        return self.name

    def done(self, ctx: RunContext) -> bool:
        return ctx.folder.done(self.key(ctx))

    @abstractmethod
    def plan(self, ctx: RunContext) -> str:
        """What the stage would do, after the input checks it can make without training."""

    @abstractmethod
    def run(self, ctx: RunContext) -> None:
        """Do the work and record it with `ctx.folder.complete(self.key(ctx), ...)`."""
