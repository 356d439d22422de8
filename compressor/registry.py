"""Named implementations that a recipe picks by name: losses, importance criteria,
architectures, student kinds, quantization modes, benchmark targets, tasks.

A registry names the package that holds its implementations, one module each, and imports
that package's modules on the first lookup. So the recipe (bottom layer) can check a name
without importing the layers above it, and adding an implementation is one new module in
that package: it registers itself with `@REGISTRY.register("name")`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from compressor.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """name -> implementation, filled by the modules of `package` when first asked (a plain
    module instead of a package is imported alone)."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator for a class or function: `@LOSSES.register("hidden_mse")`."""

        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        """Sorted, so listings and messages do not depend on which module was imported
        first."""
        self._load()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The implementation, or a UserError that lists the known names."""
        self._load()
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r} — known: {', '.join(self.names())}")
        return self._entries[name]

    def check(self, name: str) -> str:
        """For pydantic validators: the name when it is known, else a ValueError that lists
        the known names (the recipe loader turns it into one line with the key's path)."""
        self._load()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return name

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]


# Every registry of the project, in one place; each names the package of its implementations.
LOSSES: Registry[type] = Registry("intermediate loss", "compressor.distill.losses")
IMPORTANCE: Registry[type] = Registry("importance criterion", "compressor.prune.importance")
ARCHITECTURES: Registry[object] = Registry("architecture", "compressor.archs")
STUDENT_KINDS: Registry[object] = Registry("student kind", "compressor.students")
QUANT_MODES: Registry[object] = Registry("quantization mode", "exporters.quant")
TARGETS: Registry[object] = Registry("benchmark target", "benchmarks.targets")
TASKS: Registry[object] = Registry("task", "compressor.tasks")
