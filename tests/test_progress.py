"""Progress in logs: without a terminal a running task prints a plain line every
COMPRESSOR_LOG_EVERY_S seconds, whether or not updates come."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from compressor.errors import UserError
from compressor.progress import LoggedProgress, LogLine, log_every_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80), out


def test_a_line_when_the_interval_has_passed_with_count_fields_rate_and_eta() -> None:
    console, out = _log_console()
    clock = Clock()
    progress = LoggedProgress(console=console, get_time=clock, every_s=30)
    log = LogLine(unit="step", fields=("loss",), items="samples", items_per_unit=32)
    task = progress.add_task("distilling", total=100, log=log, loss="0.7000")
    clock.now += 10
    progress.update(task, completed=10, loss="0.6500")
    assert out.getvalue() == ""  # 10 s since the start: not yet
    clock.now += 25
    progress.update(task, completed=35, loss="0.5000")
    # 35 steps in 35 s: 1 step/s of 32 samples; 65 steps left
    assert out.getvalue() == "distilling: step 35/100, loss 0.5000, 32.0 samples/s, ETA 0:01:05\n"
    clock.now += 5
    progress.advance(task, 5)
    assert out.getvalue().count("\n") == 1  # 5 s since the last line


def test_the_timer_logs_a_task_that_gets_no_update() -> None:
    """One latency run or one dev pass can outlast the interval: the line still comes."""
    console, out = _log_console()
    with LoggedProgress(console=console, every_s=0.1) as progress:
        progress.add_task("latency", total=4, log=LogLine(items="runs"))
        time.sleep(0.5)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(line == "latency: 0/4, ETA ?" for line in lines)


def test_stopping_logs_the_final_count_once_and_a_terminal_gets_no_lines() -> None:
    console, out = _log_console()
    with LoggedProgress(console=console, every_s=3600) as progress:
        task = progress.add_task("teacher labels", total=3, log=LogLine(items="examples"))
        progress.advance(task, 3)
    assert out.getvalue().startswith("teacher labels: 3/3, ")
    assert out.getvalue().endswith(" examples/s, ETA 0:00:00\n")
    assert out.getvalue().count("\n") == 1

    terminal = Console(file=io.StringIO(), force_terminal=True)
    with LoggedProgress(console=terminal, every_s=0) as progress:
        task = progress.add_task("teacher labels", total=3)
        progress.advance(task, 3)
    assert not progress.logs_lines
    assert "teacher labels: 3/3," not in terminal.file.getvalue()


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPRESSOR_LOG_EVERY_S", raising=False)
    assert log_every_s() == 30.0
    monkeypatch.setenv("COMPRESSOR_LOG_EVERY_S", "2.5")
    assert log_every_s() == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("COMPRESSOR_LOG_EVERY_S", bad)
        with pytest.raises(UserError, match=r"COMPRESSOR_LOG_EVERY_S=.* is not a number"):
            log_every_s()
