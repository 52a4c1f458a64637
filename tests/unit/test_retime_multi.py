# SPDX-License-Identifier: MIT
"""``ldmvfi retime --devices``: worker processes, dealt frames, merged progress, failures, resume.

Run here with CPU workers (``cpu,cpu``): the process layout is the one used with GPUs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from ldmvfi_core.cli import main
from ldmvfi_core.retime.multi import (
    WorkerFailed,
    deal,
    options_from_json,
    options_to_json,
    parse_devices,
    run_on_devices,
)
from ldmvfi_core.retime.progress import JsonProgress
from ldmvfi_core.retime.runner import run_retime
from ldmvfi_core.retime.sources import ColourSettings
from tests.unit.test_retime import _options, _pixels, plate  # noqa: F401  (plate is a fixture)

OPTS = dict(frames="1001-1003", factor=4, depth=2, eta=1.0)  # 9 output frames, 4 model nodes per gap


def test_deal_gives_contiguous_balanced_runs() -> None:
    frames = list(range(1001, 1012))
    runs = deal(frames, 3)
    assert runs == [list(range(1001, 1005)), list(range(1005, 1009)), list(range(1009, 1012))]
    assert deal([5, 6], 4) == [[5], [6]]  # never an empty worker
    assert [f for run in deal(frames, 5) for f in run] == frames
    with pytest.raises(ValueError):
        deal(frames, 0)


def test_parse_devices() -> None:
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    for bad in ("", "gpu0", "cuda:x", "cpu:1"):
        with pytest.raises(ValueError):
            parse_devices(bad)


def test_options_round_trip_through_json(plate: Path, tmp_path: Path) -> None:  # noqa: F811
    options = _options(plate, tmp_path, colour=ColourSettings(transfer="srgb"), **OPTS)
    assert options_from_json(options_to_json(options)) == options


def test_two_workers_match_one_process_and_merge_progress(plate: Path, tmp_path: Path) -> None:  # noqa: F811
    single, multi = tmp_path / "single", tmp_path / "multi"
    run_retime(_options(plate, single, **OPTS))
    stream = io.StringIO()
    written = run_on_devices(_options(plate, multi, **OPTS), ["cpu", "cpu"], JsonProgress(stream))
    assert written == list(range(1001, 1010))
    for frame in written:
        assert np.array_equal(_pixels(single / f"rt.{frame}.exr"), _pixels(multi / f"rt.{frame}.exr")), frame
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert events[0]["event"] == "start" and events[0]["total"] == 9
    frames = [e for e in events if e["event"] == "frame"]
    assert sorted(e["frame"] for e in frames) == written
    assert [e["done"] for e in frames] == list(range(1, 10))  # one count across both workers
    assert events[-1]["event"] == "done" and events[-1]["written"] == 9


def test_failed_worker_names_its_frames_and_resume_finishes(plate: Path, tmp_path: Path,  # noqa: F811
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    reference, out = tmp_path / "ref", tmp_path / "out"
    run_retime(_options(plate, reference, **OPTS))
    with pytest.raises(WorkerFailed) as failure:
        run_on_devices(_options(plate, out, **OPTS), ["cpu", "cuda:7"])  # no such GPU here
    message = str(failure.value)
    assert "cuda:7 stopped" in message and "frames 1006-1009 not written" in message
    assert "--skip-existing" in message and "\n" not in message
    assert sorted(p.name for p in out.iterdir()) == [f"rt.{f}.exr" for f in range(1001, 1006)]

    args = ["retime", str(plate), str(out / "rt.####.exr"), "--model", _options(plate, out).model or "",
            "--steps", "2", "--frames", "1001-1003", "--factor", "4", "--depth", "2", "--devices", "cpu,cpu",
            "--skip-existing", "--progress", "json"]
    assert main(args) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["total"] == 4  # only the missing frames were dealt out
    for frame in range(1001, 1010):
        assert np.array_equal(_pixels(reference / f"rt.{frame}.exr"), _pixels(out / f"rt.{frame}.exr")), frame
