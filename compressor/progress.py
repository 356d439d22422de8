"""Progress bars that also reach logs.

On a terminal rich draws a live bar. Without one (CI, `nohup`, output sent to a file) the
bar shows nothing until it ends, and an hour of training looked like a hung process. So
`LoggedProgress` is rich's Progress that, when its console is not a terminal, also prints a
plain line per running task whenever `COMPRESSOR_LOG_EVERY_S` seconds (default 30) have
passed since its last line: on an update, or from a timer when one unit of work takes
longer than that. A line reads `distilling: step 120/600, loss 0.4132, 850 samples/s, ETA
0:01:10`.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rich.progress import Progress, ProgressColumn, Task, TaskID

from compressor.errors import UserError

LOG_EVERY_ENV = "COMPRESSOR_LOG_EVERY_S"
DEFAULT_LOG_EVERY_S = 30.0
IDLE_CHECK_S = 1.0  # how often the timer looks again when no task was running


def log_every_s() -> float:
    """Seconds between log lines: COMPRESSOR_LOG_EVERY_S, else 30 (0 logs every update)."""
    raw = os.environ.get(LOG_EVERY_ENV, "").strip()
    if not raw:
        return DEFAULT_LOG_EVERY_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0:  # also refuses nan
        raise UserError(
            f"{LOG_EVERY_ENV}={raw!r} is not a number of seconds — set it to e.g. 30, or unset it"
        )
    return seconds


@dataclass(frozen=True)
class LogLine:
    """How one task reads in a log line: `unit` before the count ("step 12/60"), the task
    fields named in `fields` as "name value", and the rate in `items` per second, one unit
    of progress being `items_per_unit` of them (a training step is a batch of samples)."""

    unit: str = ""
    fields: tuple[str, ...] = ()
    items: str = "items"
    items_per_unit: float = 1.0


def _count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _rate(per_s: float) -> str:
    return f"{per_s:.0f}" if per_s >= 100 else f"{per_s:.1f}" if per_s >= 10 else f"{per_s:.2f}"


class LoggedProgress(Progress):
    """rich's Progress plus plain log lines when the console is not a terminal (the bar's
    final frame, wrapped at 80 columns, is then left out: the last line says the same).

    `every_s` defaults to `log_every_s()`. Tasks take a `log` (a `LogLine`) in `add_task`.
    """

    def __init__(
        self, *columns: str | ProgressColumn, every_s: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*columns, **kwargs)
        self.every_s = log_every_s() if every_s is None else every_s
        self.logs_lines = not self.disable and not self.console.is_terminal
        if self.logs_lines:
            self.live.transient = True
        self._formats: dict[TaskID, LogLine] = {}
        self._origins: dict[TaskID, tuple[float, float]] = {}
        self._logged: dict[TaskID, float] = {}
        self._last_line = self.get_time()
        self._line_lock = threading.Lock()
        self._stopped = threading.Event()
        self._timer: threading.Thread | None = None

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        *,
        log: LogLine | None = None,
        **fields: Any,
    ) -> TaskID:
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        self._formats[task_id] = log or LogLine()
        self._origins[task_id] = (self.get_time(), float(completed))
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._log_due_lines()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log_due_lines()

    def start(self) -> None:
        super().start()
        if self.logs_lines and self.every_s > 0 and self._timer is None:
            self._stopped.clear()
            self._timer = threading.Thread(target=self._log_on_time, daemon=True)
            self._timer.start()

    def stop(self) -> None:
        """End the display; each task whose latest count has not been logged gets its line."""
        if self._timer is not None:
            self._stopped.set()
            self._timer.join()
            self._timer = None
        if not self.logs_lines:
            super().stop()
            return
        self.live.stop()  # rich's stop adds a blank line on such consoles
        with self._line_lock:
            lines = [
                self.line(t)
                for t in self.tasks
                if t.visible and t.started and self._logged.get(t.id) != t.completed
            ]
            self._mark_logged(lines)
        self._print(lines)

    def line(self, task: Task) -> str:
        """The task's progress as one plain line."""
        fmt = self._formats.get(task.id, LogLine())
        count = _count(task.completed) + ("" if task.total is None else f"/{_count(task.total)}")
        parts = [f"{fmt.unit} {count}".strip()]
        parts += [f"{name} {task.fields[name]}" for name in fmt.fields if name in task.fields]
        speed = task.speed or self._average_speed(task)
        if speed:
            parts.append(f"{_rate(speed * fmt.items_per_unit)} {fmt.items}/s")
        if task.total is not None:
            remaining = max(task.total - task.completed, 0)
            if not remaining:
                parts.append(f"ETA {timedelta(0)}")
            else:
                parts.append(f"ETA {timedelta(seconds=round(remaining / speed)) if speed else '?'}")
        return f"{task.description}: {', '.join(parts)}"

    def _average_speed(self, task: Task) -> float | None:
        """Units per second since the task was added: rich's own estimate needs two updates
        within its window, which a slow unit of work (a latency run) does not give."""
        started, completed = self._origins.get(task.id, (self.get_time(), task.completed))
        elapsed = self.get_time() - started
        done = task.completed - completed
        return done / elapsed if elapsed > 0 and done > 0 else None

    def _log_due_lines(self) -> None:
        if not self.logs_lines:
            return
        with self._line_lock:
            if self.get_time() - self._last_line < self.every_s:
                return
            lines = [
                self.line(t)
                for t in self.tasks
                if t.visible
                and t.started
                and (not t.finished or self._logged.get(t.id) != t.completed)
            ]
            self._mark_logged(lines)
        self._print(lines)

    def _mark_logged(self, lines: list[str]) -> None:
        """Called under the line lock with the lines about to be printed."""
        if not lines:
            return
        self._last_line = self.get_time()
        for task in self.tasks:
            self._logged[task.id] = task.completed

    def _print(self, lines: list[str]) -> None:
        for text in lines:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _log_on_time(self) -> None:
        """The timer thread: a line every `every_s` even when no update comes."""
        while True:
            wait = self._last_line + self.every_s - self.get_time()
            if self._stopped.wait(max(wait, min(self.every_s, IDLE_CHECK_S))):
                return
            self._log_due_lines()
