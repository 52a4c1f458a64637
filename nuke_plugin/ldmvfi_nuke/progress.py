# SPDX-License-Identifier: MIT
"""The runner's ``--progress json`` lines -> progress state and messages for people.

Events (one JSON object per stdout line; see ``ldmvfi_core.retime.progress``):
``start`` (total), ``frame`` (frame, done, total, eta, action), ``skip`` (frame, done, total,
reason), ``warning`` (message), ``done`` (written, skipped, seconds), ``error`` (message).
Lines that are not JSON objects with an ``event`` (a library printing to stdout) are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

EVENTS = frozenset({"start", "frame", "skip", "warning", "done", "error"})


@dataclass(frozen=True)
class ProgressEvent:
    kind: str
    data: dict[str, Any]

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)


def parse_line(line: str) -> ProgressEvent | None:
    """One stdout line -> an event, or None for anything that is not one."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("event") not in EVENTS:
        return None
    return ProgressEvent(kind=str(data["event"]), data=data)


def _seconds(value: float) -> str:
    value = max(0.0, value)
    if value < 90:
        return f"{value:.0f} s"
    if value < 5400:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


@dataclass
class ProgressState:
    """What the runner said so far."""

    total: int = 0
    done: int = 0
    frame: int | None = None
    eta: float | None = None
    written: int = 0
    skipped: int = 0
    seconds: float | None = None
    finished: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def apply(self, event: ProgressEvent) -> None:
        if event.kind == "start":
            self.total = int(event.number("total") or 0)
        elif event.kind in ("frame", "skip"):
            frame, done, total = event.number("frame"), event.number("done"), event.number("total")
            self.frame = int(frame) if frame is not None else self.frame
            self.done = int(done) if done is not None else self.done + 1
            self.total = int(total) if total is not None else self.total
            if event.kind == "frame":
                self.eta = event.number("eta")
        elif event.kind == "warning":
            self.warnings.append(str(event.data.get("message", "")))
        elif event.kind == "done":
            self.finished = True
            self.written = int(event.number("written") or 0)
            self.skipped = int(event.number("skipped") or 0)
            self.seconds = event.number("seconds")
        elif event.kind == "error":
            self.error = str(event.data.get("message", "")) or "the runner reported an error"

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        if self.total <= 0:
            return 0
        return max(0, min(100, round(100 * self.done / self.total)))

    def message(self) -> str:
        """One line for the progress bar and the status knob."""
        if self.finished:
            took = f" in {_seconds(self.seconds)}" if self.seconds is not None else ""
            kept = f", {self.skipped} already there" if self.skipped else ""
            return f"done: {self.written} frames written{kept}{took}"
        if not self.total:
            return "starting the runner (loading the model)"
        text = f"{self.done}/{self.total} frames"
        if self.frame is not None:
            text += f", frame {self.frame}"
        if self.eta is not None:
            text += f", {_seconds(self.eta)} left"
        return text
