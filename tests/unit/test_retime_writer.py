# SPDX-License-Identifier: MIT
"""``retime/writer.OrderedWriter``: writes on one background thread, reports on the caller's
thread in submission order once each write is done, errors raised to the caller, work already
handed over finished when the caller stops; and ``run_retime`` renders the next frame while the
previous one is being written."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ldmvfi_core.retime import runner as runner_module
from ldmvfi_core.retime.writer import OrderedWriter
from tests.unit.test_retime import _options, plate  # noqa: F401  (plate is a fixture)


def test_reports_come_in_order_on_the_callers_thread_after_each_write() -> None:
    caller = threading.get_ident()
    on_disk: list[int] = []
    reports: list[tuple[str, int]] = []

    def write(n: int, delay: float) -> None:
        time.sleep(delay)
        assert threading.get_ident() != caller  # written in the background
        on_disk.append(n)

    def report(kind: str, n: int) -> None:
        assert threading.get_ident() == caller
        assert kind == "skip" or n in on_disk  # a frame is reported only once it is written
        reports.append((kind, n))

    with OrderedWriter(max_pending=2) as writer:
        writer.submit(lambda: write(1, 0.05), lambda: report("frame", 1))
        writer.after(lambda: report("skip", 2))  # must still come after frame 1
        writer.submit(lambda: write(3, 0.0), lambda: report("frame", 3))
        writer.submit(lambda: write(4, 0.02), lambda: report("frame", 4))
    assert reports == [("frame", 1), ("skip", 2), ("frame", 3), ("frame", 4)]
    assert on_disk == [1, 3, 4]


def test_the_caller_blocks_once_more_than_max_pending_writes_wait() -> None:
    release = threading.Event()
    with OrderedWriter(max_pending=1) as writer:
        writer.submit(release.wait, lambda: None)  # one waiting write: the caller goes on
        started = time.monotonic()
        threading.Timer(0.2, release.set).start()
        writer.submit(lambda: None, lambda: None)  # a second: the caller waits for the first
        assert time.monotonic() - started >= 0.15


def test_a_write_error_reaches_the_caller_and_later_writes_still_finish() -> None:
    written: list[int] = []

    def fail() -> None:
        time.sleep(0.1)  # still running when the second write is handed over
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), OrderedWriter(max_pending=1) as writer:
        writer.submit(fail, lambda: None)
        writer.submit(lambda: written.append(2), lambda: None)
        writer.submit(lambda: written.append(3), lambda: None)
    assert written == [2]  # handed over before the error surfaced: finished; nothing after it


def test_frames_handed_over_before_an_interrupt_are_written() -> None:
    written: list[int] = []
    with pytest.raises(KeyboardInterrupt), OrderedWriter(max_pending=2) as writer:
        writer.submit(lambda: (time.sleep(0.05), written.append(1)), lambda: None)  # type: ignore[func-returns-value]
        writer.submit(lambda: written.append(2), lambda: None)
        raise KeyboardInterrupt
    assert written == [1, 2]


def test_max_pending_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OrderedWriter(max_pending=0)


def test_a_retime_renders_the_next_frame_while_the_last_one_is_written(
        plate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """With slow writes, some frame starts rendering while an earlier one is being written (in
    line, none could), and every frame still lands, reported in plan order."""
    renders: list[float] = []
    writes: list[tuple[float, float]] = []
    real_render, real_subset = runner_module._render_planned, runner_module._write_subset

    def render(*args: object, **kw: object) -> object:
        renders.append(time.monotonic())
        return real_render(*args, **kw)  # type: ignore[arg-type]

    def slow_write(*args: object, **kw: object) -> None:
        began = time.monotonic()
        time.sleep(0.3)  # an EXR write at 1080p takes about this long
        real_subset(*args, **kw)  # type: ignore[arg-type]
        writes.append((began, time.monotonic()))

    monkeypatch.setattr(runner_module, "_render_planned", render)
    monkeypatch.setattr(runner_module, "_write_subset", slow_write)
    result = runner_module.run_retime(_options(plate, tmp_path / "out", frames="1001-1003", channels="rgba"))
    assert result.written == [1001, 1002, 1003, 1004, 1005]
    assert all((tmp_path / "out" / f"rt.{f}.exr").is_file() for f in result.written)
    assert len(writes) == 5
    assert any(began < r < ended for r in renders for began, ended in writes)


def test_in_line_writes_report_the_same_way() -> None:
    """``background=False`` (the benchmark's other arm) writes inside ``submit``, same reports."""
    caller = threading.get_ident()
    events: list[str] = []
    with OrderedWriter(background=False) as writer:
        writer.submit(lambda: events.append(f"write 1 {threading.get_ident() == caller}"),
                      lambda: events.append("report 1"))
        writer.after(lambda: events.append("skip 2"))
        writer.submit(lambda: events.append("write 3"), lambda: events.append("report 3"))
    assert events == ["write 1 True", "report 1", "skip 2", "write 3", "report 3"]
