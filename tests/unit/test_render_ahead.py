# SPDX-License-Identifier: MIT
"""The retime renderer starts the next in-between's sampling before it decodes the current one
(``FrameRenderer.render(node, upcoming)``), and the frames stay the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ldmvfi_core.interpolate import Interpolator, SampledLatents
from ldmvfi_core.io.exr import read_exr
from ldmvfi_core.retime import runner as runner_module
from ldmvfi_core.retime.runner import run_retime
from tests.unit.test_retime import _options, plate  # noqa: F401  (plate is a fixture)

Event = tuple[str, tuple[int, ...]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """Every start_sampling and finish_decoding, in order, named by the batch's seeds."""
    events: list[Event] = []
    seeds_of: dict[int, tuple[int, ...]] = {}
    start, finish = Interpolator.start_sampling, Interpolator.finish_decoding

    def spy_start(self: Interpolator, *args: object, **kwargs: object) -> SampledLatents:
        sampled = start(self, *args, **kwargs)  # type: ignore[arg-type]
        seeds = tuple(kwargs["seed"])  # type: ignore[arg-type]
        seeds_of[id(sampled)] = seeds
        events.append(("start", seeds))
        return sampled

    def spy_finish(self: Interpolator, sampled: SampledLatents, *args: object) -> object:
        events.append(("finish", seeds_of[id(sampled)]))
        return finish(self, sampled, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Interpolator, "start_sampling", spy_start)
    monkeypatch.setattr(Interpolator, "finish_decoding", spy_finish)
    return events


def _without_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "_next_nodes", lambda plan, done: [None] * len(plan.frames))


def _same_frames(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and names
    for name in names:
        assert np.array_equal(read_exr(a / name).pixels, read_exr(b / name).pixels), name


def test_next_in_between_samples_before_this_one_decodes(plate: Path, tmp_path: Path,  # noqa: F811
                                                         calls: list[Event], monkeypatch: pytest.MonkeyPatch) -> None:
    run_retime(_options(plate, tmp_path / "ahead"))  # 2x over 1001-1004: three in-betweens
    n1, n2, n3 = (seeds for kind, seeds in calls if kind == "start")
    assert calls == [("start", n1), ("start", n2), ("finish", n1), ("start", n3), ("finish", n2), ("finish", n3)]
    calls.clear()
    _without_hints(monkeypatch)
    run_retime(_options(plate, tmp_path / "serial"))
    assert calls == [("start", n1), ("finish", n1), ("start", n2), ("finish", n2), ("start", n3), ("finish", n3)]
    _same_frames(tmp_path / "ahead", tmp_path / "serial")


@pytest.mark.parametrize("batch", [1, 2])
def test_recursive_in_betweens_wait_for_their_parents_and_match(plate: Path, tmp_path: Path,  # noqa: F811
                                                                calls: list[Event], batch: int,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """4x (t = 1/4 needs the decoded 1/2, so the next pair's 1/2 starts ahead instead): every
    queued sampling is decoded exactly once, one at a time some start ahead, and the frames equal
    the unhinted run's."""
    opts = dict(factor=4, depth=2, eta=1.0, batch=batch, frames="1001-1003")  # two pairs: 7 frames
    run_retime(_options(plate, tmp_path / "ahead", **opts))
    starts = [seeds for kind, seeds in calls if kind == "start"]
    finishes = [seeds for kind, seeds in calls if kind == "finish"]
    assert sorted(starts) == sorted(finishes) and len(set(starts)) == len(starts)
    if batch == 1:  # (in batches of 2 the next group is decoded with this one: nothing to start)
        ahead = [i for i, (kind, _) in enumerate(calls[1:], 1) if kind == "start" and calls[i - 1][0] == "start"]
        assert ahead, "no sampling was started ahead of a decode"
    _without_hints(monkeypatch)
    run_retime(_options(plate, tmp_path / "serial", **opts))
    _same_frames(tmp_path / "ahead", tmp_path / "serial")


def test_each_in_between_is_awaited_on_the_writer_thread(plate: Path, tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread that feeds the model only queues an in-between's download
    (``FrameRenderer.render_later``); the wait for it runs on the writer's thread, so on a GPU the
    next in-between is queued while this one decodes (session 18)."""
    import threading

    from ldmvfi_core.ops.upload import Download

    waited_on: list[str] = []
    result = Download.result

    def spy_result(self: Download) -> object:
        waited_on.append(threading.current_thread().name)
        return result(self)

    monkeypatch.setattr(Download, "result", spy_result)
    run_retime(_options(plate, tmp_path / "out"))  # 2x over 1001-1004: three in-betweens
    assert len(waited_on) == 3 and all(name.startswith("ldmvfi-write") for name in waited_on)
