# SPDX-License-Identifier: MIT
"""The runner's JSON progress lines -> state and messages."""

from __future__ import annotations

import io
import json

from ldmvfi_nuke.progress import ProgressState, parse_line

from ldmvfi_core.retime.progress import JsonProgress


def test_parse_line_accepts_events_only() -> None:
    event = parse_line('{"event": "frame", "frame": 1003, "done": 3, "total": 20, "eta": 12.5, "action": "x"}\n')
    assert event is not None and event.kind == "frame" and event.number("eta") == 12.5
    for noise in ("", "loading weights...", "{not json", "[1, 2]", '{"event": "other"}', '{"frame": 3}'):
        assert parse_line(noise) is None


def test_state_follows_a_run() -> None:
    state = ProgressState()
    assert state.message() == "starting the runner (loading the model)" and state.percent == 0
    lines = [
        {"event": "start", "total": 4, "input": "i", "output": "o", "frames": "1-4"},
        {"event": "warning", "message": "scene cut between 1002 and 1003: holding the nearest frame there"},
        {"event": "skip", "frame": 1001, "done": 1, "total": 4, "reason": "exists"},
        {"event": "frame", "frame": 1002, "done": 2, "total": 4, "eta": 130.0, "action": "interpolate"},
    ]
    for line in lines:
        event = parse_line(json.dumps(line))
        assert event is not None
        state.apply(event)
    assert state.percent == 50
    assert state.message() == "2/4 frames, frame 1002, 2 min left"
    assert state.warnings == ["scene cut between 1002 and 1003: holding the nearest frame there"]
    state.apply(parse_line('{"event": "done", "written": 3, "skipped": 1, "seconds": 41.2}'))
    assert state.percent == 100 and state.message() == "done: 3 frames written, 1 already there in 41 s"


def test_error_event_is_kept() -> None:
    state = ProgressState()
    state.apply(parse_line('{"event": "error", "message": "plate.1002.exr: NaN in R"}'))
    assert state.error == "plate.1002.exr: NaN in R"


def test_reads_what_the_real_runner_writes() -> None:
    stream = io.StringIO()
    progress = JsonProgress(stream)
    progress.start(2, input="i", output="o", frames="1-2")
    progress.frame(1, "copy source 1")
    progress.skip(2, "exists")
    progress.finish()
    state = ProgressState()
    for line in stream.getvalue().splitlines():
        event = parse_line(line)
        assert event is not None
        state.apply(event)
    assert (state.total, state.done, state.written, state.skipped, state.finished) == (2, 2, 1, 1, True)
