# SPDX-License-Identifier: MIT
"""Driving a subprocess: events, errors, cancel, and no threads when headless."""

from __future__ import annotations

import sys
import threading

from ldmvfi_nuke import process

SCRIPT = """
import json, sys, time
print("some library chatter")
print(json.dumps({"event": "start", "total": 2}), flush=True)
print(json.dumps({"event": "frame", "frame": 1, "done": 1, "total": 2, "eta": 1.0, "action": "x"}), flush=True)
print(json.dumps({"event": "warning", "message": "careful"}), flush=True)
print(json.dumps({"event": "done", "written": 2, "skipped": 0, "seconds": 0.5}), flush=True)
print("Traceback (most recent call last):", file=sys.stderr)
print("ValueError: " + "x" * 70000, file=sys.stderr)  # far more than a pipe buffer holds
sys.exit(int(sys.argv[1]))
"""


def collect(code: int, *, headless: bool) -> tuple[process.Outcome, list[str]]:
    kinds: list[str] = []
    outcome = process.drive([sys.executable, "-c", SCRIPT, str(code)],
                            on_event=lambda event, state: kinds.append(event.kind),
                            is_cancelled=None if headless else (lambda: False))
    return outcome, kinds


def test_events_and_success() -> None:
    for headless in (True, False):
        outcome, kinds = collect(0, headless=headless)
        assert outcome.ok and kinds == ["start", "frame", "warning", "done"]
        assert outcome.state.warnings == ["careful"] and outcome.state.written == 2


def test_failure_gives_the_last_stderr_line() -> None:
    outcome, _ = collect(2, headless=True)
    assert not outcome.ok and outcome.returncode == 2
    assert outcome.error_line().startswith("ValueError: xxx")


def test_headless_starts_no_thread(monkeypatch) -> None:
    started: list[str] = []
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self.name))
    outcome, _ = collect(0, headless=True)
    assert outcome.ok and started == []


def test_an_unstartable_runner() -> None:
    outcome = process.drive(["/no/such/python"], on_event=lambda e, s: None, is_cancelled=None)
    assert not outcome.ok and outcome.returncode is None
    assert outcome.error_line().startswith("cannot start the runner '/no/such/python'")


def test_silent_failure_still_says_something() -> None:
    outcome = process.drive([sys.executable, "-c", "raise SystemExit(3)"], on_event=lambda e, s: None,
                            is_cancelled=None)
    assert outcome.error_line() == "the runner exited with code 3 without a message"


def test_cancel_is_checked_while_the_runner_is_silent() -> None:
    checks: list[int] = []

    def cancelled() -> bool:
        checks.append(1)
        return len(checks) >= 3

    outcome = process.drive([sys.executable, "-c", "import time; time.sleep(60)"], on_event=lambda e, s: None,
                            is_cancelled=cancelled, poll_seconds=0.05)
    assert outcome.cancelled and not outcome.ok and outcome.returncode is not None
