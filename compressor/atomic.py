"""Atomic writes: a crash or a full disk never leaves a half-written file under its real name.

Every output of a run goes through here (write to a temporary name in the same folder, then
`os.replace`, which is atomic on POSIX file systems). A folder cannot be renamed onto a full
one, so `atomic_dir` moves the old folder aside first: at every instant the real name holds
the old folder or the new one, or it is missing with the old one aside, which `recover`
puts back before anything reads or replaces it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compressor.errors import UserError


def _raise_disk_error(path: Path, exc: OSError) -> None:
    if exc.errno == 28:  # ENOSPC
        raise UserError(
            f"no space left on the device while writing {path} — free disk space "
            "and rerun with --resume"
        ) from exc
    raise exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """mkstemp / mkdtemp create private (0600 / 0700) entries; outputs should get the same
    permissions as any file the user creates."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _publish_mode(Path(tmp), directory=False)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _raise_disk_error(path, exc)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) for a tool that writes a file by name;
    renamed onto `path` when the body succeeds, removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        _publish_mode(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


ASIDE_SUFFIX = ".aside"


def aside_path(path: Path) -> Path:
    """The hidden sibling a replaced folder waits in until its successor is in place."""
    return path.parent / f".{path.name}{ASIDE_SUFFIX}"


def _stale_temporaries(path: Path) -> list[Path]:
    """Temporary folders `atomic_dir` made for `path` (mkdtemp adds 8 characters) that a
    killed process left behind."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    if not path.parent.is_dir():
        return []
    return [p for p in path.parent.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]


def recover(path: Path) -> None:
    """Finish a folder swap that a crash interrupted: the old folder is put back when the
    real name is missing, and dropped when its successor made it in; temporary folders of an
    unfinished write are removed."""
    path = Path(path)
    aside = aside_path(path)
    if aside.is_dir():
        if path.exists():
            shutil.rmtree(aside)
        else:
            os.replace(aside, path)
    for tmp in _stale_temporaries(path):
        shutil.rmtree(tmp, ignore_errors=True)


def recover_under(folder: Path) -> None:
    """`recover` every folder under `folder` whose swap was interrupted, before a resumed run
    reads them (a stage recorded as done may own a folder that is still aside)."""
    for aside in sorted(Path(folder).rglob(f".*{ASIDE_SUFFIX}")):
        if aside.is_dir():
            recover(aside.parent / aside.name[1 : -len(ASIDE_SUFFIX)])


def _swap_in(tmp: Path, path: Path) -> None:
    """Two renames and a delete; `recover` completes them from any point a crash stops at,
    and puts the old folder back at once when the second rename fails."""
    aside = aside_path(path)
    if path.exists():
        os.replace(path, aside)
    try:
        os.replace(tmp, path)
    except BaseException:
        recover(path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path` whole.

    Used for model folders, which are several files that must appear together.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        _swap_in(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_disk_error(path, exc)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path: Path) -> Any:
    """Counterpart of write_json, so state files are read in one place."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
