"""Atomic writes: a crash or a full disk never leaves a half-written file under its real name.

Every output of a run goes through here (write to a temporary name in the same folder, then
`os.replace`, which is atomic on POSIX file systems).
"""

from __future__ import annotations

import contextlib
import json
import os
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


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path` whole.

    Used for model folders, which are several files that must appear together.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_disk_error(path, exc)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path: Path) -> Any:
    """Counterpart of write_json, so state files are read in one place."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
