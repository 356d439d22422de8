"""Folders replaced whole: a crash at any instant leaves the old or the new folder under the
real name (or the old one aside, put back before anything reads it), never neither."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from compressor import atomic
from compressor.runfolder import RunFolder

ROOT = Path(__file__).resolve().parents[1]


class Crash(Exception):
    """Stands for the process dying at the patched call."""


def _folder(path: Path, **files: str) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _contents(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def _write_new(path: Path) -> None:
    with atomic.atomic_dir(path) as tmp:
        (tmp / "weights").write_text("new")


def test_a_folder_is_replaced_whole(tmp_path: Path) -> None:
    model = _folder(tmp_path / "model", weights="old", stale="only in the old folder")
    _write_new(model)
    assert _contents(model) == {"weights": "new"}
    assert _siblings(model) == ["model"]


def test_a_failed_second_rename_leaves_the_old_folder_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _folder(tmp_path / "model", weights="old")
    real_replace = os.replace
    calls: list[tuple[str, str]] = []

    def replace(src: str, dst: str) -> None:
        calls.append((Path(src).name, Path(dst).name))
        if Path(src).name.endswith(".tmp") and Path(dst) == model:  # the new folder moving in
            raise Crash
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Crash):
        _write_new(model)
    monkeypatch.undo()
    assert _contents(model) == {"weights": "old"}
    assert _siblings(model) == ["model"]  # no aside folder, no temporary folder
    assert len(calls) == 3  # old aside, new in (crashed), old back
    assert calls[0] == ("model", ".model.aside") and calls[2] == (".model.aside", "model")


def _crash_between_the_renames(model: Path) -> subprocess.CompletedProcess:
    """A process that dies (os._exit: no handler runs) while the old folder is aside."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from compressor import atomic

        real_replace = os.replace

        def replace(src, dst):
            if str(src).endswith(".tmp"):
                os._exit(3)
            real_replace(src, dst)

        os.replace = replace
        with atomic.atomic_dir(Path({str(model)!r})) as tmp:
            (tmp / "weights").write_text("new")
        """
    )
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60)


def test_the_next_write_recovers_from_a_crash_between_the_renames(tmp_path: Path) -> None:
    model = _folder(tmp_path / "model", weights="old")
    assert _crash_between_the_renames(model).returncode == 3
    assert not model.exists()
    assert _contents(tmp_path / ".model.aside") == {"weights": "old"}
    assert len([n for n in _siblings(model) if n.endswith(".tmp")]) == 1

    with atomic.atomic_dir(model) as tmp:
        assert _contents(model) == {"weights": "old"}  # put back before the new one is made
        assert _siblings(model) == sorted(["model", tmp.name])  # the dead write's folder too
        (tmp / "weights").write_text("new")
    assert _contents(model) == {"weights": "new"}
    assert _siblings(model) == ["model"]


def test_opening_a_run_puts_back_a_folder_left_aside(tmp_path: Path) -> None:
    run = tmp_path / "run"
    model = _folder(run / "model", weights="old")
    atomic.write_json(run / "state.json", {"kind": "compress", "stages": {"distill": {}}})
    assert _crash_between_the_renames(model).returncode == 3
    assert not model.exists()

    opened = RunFolder.open(run)
    assert opened.done("distill")
    assert _contents(model) == {"weights": "old"}
    assert sorted(p.name for p in run.iterdir()) == ["model", "state.json"]


def test_an_aside_folder_left_after_the_swap_is_dropped(tmp_path: Path) -> None:
    model = _folder(tmp_path / "model", weights="new")
    _folder(tmp_path / ".model.aside", weights="old")  # died before deleting the old one
    atomic.recover(model)
    assert _contents(model) == {"weights": "new"}
    assert _siblings(model) == ["model"]


def test_a_crash_while_writing_leaves_the_old_folder_and_no_temporary(tmp_path: Path) -> None:
    model = _folder(tmp_path / "model", weights="old")
    with pytest.raises(Crash), atomic.atomic_dir(model) as tmp:
        (tmp / "weights").write_text("half")
        raise Crash
    assert _contents(model) == {"weights": "old"}
    assert _siblings(model) == ["model"]
