# SPDX-License-Identifier: MIT
"""Run the runner subprocess: stream its progress, watch for cancel, collect its error line.

``drive`` blocks its caller. The GUI calls it from a worker thread with an ``is_cancelled``
callback (which hops to Nuke's main thread): a reader thread then empties stdout into a queue so
the loop can check for cancel a few times a second even while the runner is silent (a 200-step
frame can take minutes). Headless renders pass ``is_cancelled=None``: stdout is read in the
calling thread and no thread is started at all. stderr goes to a temporary file (it cannot fill
a pipe and stall the runner), whose last lines give the error. Cancel: terminate, wait, then
kill if the runner is still alive after ``terminate_timeout`` seconds.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from .progress import ProgressEvent, ProgressState, parse_line

POLL_SECONDS = 0.2
TERMINATE_TIMEOUT = 5.0
_EOF = object()


@dataclass
class Outcome:
    """How a run ended."""

    returncode: int | None
    cancelled: bool = False
    state: ProgressState = field(default_factory=ProgressState)
    stderr_tail: list[str] = field(default_factory=list)
    start_error: str | None = None  # the process could not be started at all

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled and self.start_error is None

    def error_line(self) -> str:
        """The one line to show when the run failed."""
        if self.start_error:
            return self.start_error
        # The runner prints a one-line error on stderr (exit 2); a crash ends with the exception line.
        for line in reversed(self.stderr_tail):
            if line.strip():
                return line.strip()
        if self.state.error:
            return self.state.error
        return f"the runner exited with code {self.returncode} without a message"


def _pump(stream: IO[str], sink: Callable[[object], None]) -> None:
    try:
        for line in stream:
            sink(line)
    except (OSError, ValueError):  # the pipe was closed under us after a kill
        pass
    finally:
        sink(_EOF)


def _tail(stream: IO[str], lines: int = 40) -> list[str]:
    stream.seek(0)
    return [line.rstrip("\n") for line in stream.read().splitlines()[-lines:]]


def _popen_flags() -> int:
    if sys.platform == "win32":
        return subprocess.CREATE_NO_WINDOW  # no console window flashing up over Nuke
    return 0


def stop(proc: subprocess.Popen[str], timeout: float) -> None:
    """Terminate ``proc``; kill it if it has not exited after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def drive(
    argv: Sequence[str],
    *,
    on_event: Callable[[ProgressEvent, ProgressState], None],
    is_cancelled: Callable[[], bool] | None,
    env: Mapping[str, str] | None = None,
    poll_seconds: float = POLL_SECONDS,
    terminate_timeout: float | None = None,
) -> Outcome:
    """Run ``argv`` to the end (or until ``is_cancelled()``) and report its progress events."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
        try:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                text=True, encoding="utf-8", errors="replace", bufsize=1,
                env=dict(env) if env is not None else None, creationflags=_popen_flags(),
            )
        except OSError as error:
            return Outcome(returncode=None,
                           start_error=f"cannot start the runner {argv[0]!r}: {error.strerror or error}")
        assert proc.stdout is not None
        state = ProgressState()
        cancelled = False

        def handle(line: str) -> None:
            event = parse_line(line)
            if event is not None:
                state.apply(event)
                on_event(event, state)

        if is_cancelled is None:
            for line in proc.stdout:
                handle(line)
        else:
            cancelled = _watch(proc, proc.stdout, handle, is_cancelled, poll_seconds,
                               TERMINATE_TIMEOUT if terminate_timeout is None else terminate_timeout)
        returncode = proc.wait()
        proc.stdout.close()
        return Outcome(returncode=returncode, cancelled=cancelled, state=state, stderr_tail=_tail(err))


def _watch(proc: subprocess.Popen[str], stdout: IO[str], handle: Callable[[str], None],
           is_cancelled: Callable[[], bool], poll_seconds: float, terminate_timeout: float) -> bool:
    """Read stdout through a reader thread, checking ``is_cancelled`` between lines and when idle."""
    lines: queue.Queue[object] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(stdout, lines.put), name="ldmvfi-stdout", daemon=True)
    reader.start()
    next_check = 0.0
    try:
        while True:
            try:
                item = lines.get(timeout=poll_seconds)
            except queue.Empty:
                item = None
            if item is _EOF:
                return False
            if isinstance(item, str):
                handle(item)
            now = time.monotonic()
            if now < next_check:
                continue
            next_check = now + poll_seconds  # a few checks a second, however chatty the runner
            if is_cancelled():
                stop(proc, terminate_timeout)
                return True
    finally:
        if proc.poll() is not None:
            reader.join(timeout=1.0)
