"""The shape of the code, checked: packaging that matches the tree, no reaching into another
module's private names, modules of a readable size, no citations of files outside the
repository. The layer contract itself is `lint-imports` (make lint)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compressor", "exporters", "benchmarks")
LONG = 400


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_declared_package_data_exists() -> None:
    """Every package-data pattern of pyproject.toml matches a file: a pattern that matches
    nothing is a file the wheel silently lacks."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = config["tool"]["setuptools"]["package-data"]
    assert declared
    for package, patterns in declared.items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern} matches nothing"


def test_no_module_imports_private_names_of_another() -> None:
    """`from x import _y` across modules couples to what x may change at will; what is
    shared must be public. (Within a package, `_`-prefixed modules are its own helpers.)"""
    offenders = []
    for path in _modules():
        here = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                continue
            if not node.module.startswith(PACKAGES):
                continue
            package = node.module.rsplit(".", 1)[0]
            own = here == package or here.startswith(package + ".")
            private_module = any(part.startswith("_") for part in node.module.split("."))
            if private_module and not own:
                offenders.append(f"{here}: from {node.module}")
            offenders += [
                f"{here}: {node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and node.module != here
            ]
    assert offenders == []


def test_long_modules_say_why() -> None:
    """A module over ~400 lines holds more than one idea unless its docstring says why not."""
    long = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > LONG and "Over 400 lines" not in doc:
            long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert long == []


def test_code_cites_no_files_outside_the_repository() -> None:
    """Facts from the shared notes are restated with the command that measures them here;
    a reader of the repository cannot open a file that is not in it."""
    pattern = re.compile(r"\bFINDINGS\b|\.\./shared/(?!data)")
    files = [*_modules(), *(ROOT / "benchmarks" / "profiles").glob("*.yaml")]
    cited = [str(p.relative_to(ROOT)) for p in files if pattern.search(p.read_text("utf-8"))]
    assert cited == []


def test_private_name_check_catches_a_private_import(tmp_path: Path) -> None:
    """The scan above is not vacuous: the pattern it looks for is what these lines contain."""
    tree = ast.parse("from compressor.pipeline.distill import _secret\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert node.module == "compressor.pipeline.distill"
    assert [alias.name for alias in node.names if alias.name.startswith("_")] == ["_secret"]
