"""The registries fill themselves from their package on first lookup, so a name can be
checked from the bottom layer without importing the implementations, and listings do not
depend on import order."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from compressor.errors import UserError
from compressor.registry import Registry


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package `toy_plugins` with two implementation modules and one private helper."""
    package = tmp_path / "toy_plugins"
    package.mkdir()
    (package / "__init__.py").write_text("from compressor.registry import Registry\n"
                                         "TOYS = Registry('toy', 'toy_plugins')\n")  # fmt: skip
    for name in ("zebra", "apple"):
        (package / f"{name}.py").write_text(
            f"from toy_plugins import TOYS\n\n@TOYS.register('{name}')\nclass Toy:\n"
            f"    size = {len(name)}\n"
        )
    (package / "_helper.py").write_text("raise RuntimeError('helpers are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toy_plugins"
    for module in [m for m in sys.modules if m.startswith("toy_plugins")]:
        del sys.modules[module]


def test_implementations_load_on_first_lookup_sorted(plugins: str) -> None:
    toys = __import__(plugins).TOYS
    assert f"{plugins}.zebra" not in sys.modules  # nothing imported before a lookup
    assert toys.names() == ["apple", "zebra"]
    assert toys["zebra"].size == 5 and toys.get("apple").size == 5
    assert "apple" in toys and "pear" not in toys
    assert [name for name, _ in toys.items()] == ["apple", "zebra"]


def test_import_order_does_not_change_the_listing(plugins: str) -> None:
    __import__(f"{plugins}.zebra")  # registered before the registry scans its package
    toys = __import__(plugins).TOYS
    assert toys.names() == ["apple", "zebra"]


def test_unknown_names_say_which_exist(plugins: str) -> None:
    toys = __import__(plugins).TOYS
    with pytest.raises(UserError, match=r"^unknown toy 'pear' — known: apple, zebra$"):
        toys.get("pear")
    with pytest.raises(ValueError, match=r"^unknown toy 'pear'; known: apple, zebra$"):
        toys.check("pear")
    assert toys.check("apple") == "apple"


def test_a_name_registered_twice_is_refused() -> None:
    registry: Registry[object] = Registry("thing", "compressor.errors")
    registry.register("a")(int)
    assert registry.register("a")(int) is int  # the same object again is harmless
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        registry.register("a")(str)


def test_a_plain_module_is_imported_alone() -> None:
    """IMPORTANCE names a module, not a package: its classes register when it is imported."""
    from compressor.registry import IMPORTANCE

    assert IMPORTANCE.names() == ["platon", "sensitivity"]
