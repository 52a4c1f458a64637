# SPDX-License-Identifier: MIT
"""``SourcePlate.prefetch``: source frames read on a background thread, handed over by ``read``
with the same checks; and ``run_retime`` reads the next frame's sources ahead."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from ldmvfi_core.io import exr as exr_module
from ldmvfi_core.io.images import ImageError
from ldmvfi_core.io.sequence import parse_pattern
from ldmvfi_core.retime import runner as runner_module
from ldmvfi_core.retime import sources as sources_module
from ldmvfi_core.retime.sources import ColourSettings, SourcePlate
from tests.unit.test_retime import _options, _pixels, plate  # noqa: F401  (plate is a fixture)


def _recording_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Record (file name, read on the calling thread?) for every EXR the plate reads."""
    caller = threading.get_ident()
    reads: list[tuple[str, bool]] = []

    def read(path: object) -> object:
        reads.append((Path(str(path)).name, threading.get_ident() == caller))
        return exr_module.read_exr(path)  # type: ignore[arg-type]

    monkeypatch.setattr(sources_module, "read_exr", read)
    return reads


def test_a_prefetched_frame_is_read_in_the_background_and_is_the_same_frame(
        plate: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    reads = _recording_reads(monkeypatch)
    source = SourcePlate(parse_pattern(str(plate)), [1001, 1002, 1003, 1004], colour=ColourSettings())
    try:
        source.prefetch([1002, 1003])
        source.prefetch([1002, 1999])  # already on its way / not a frame of the plate: nothing new
        second = source.read(1002)
        assert np.array_equal(second.pixels, exr_module.read_exr(plate.parent / "plate.1002.exr").pixels)
        assert source.read(1002) is second  # cached from now on
        source.read(1001)  # not prefetched: read here
        source.read(1003)  # waits for the background read (close() would cancel a read not yet begun)
    finally:
        source.close()
    assert sorted(reads) == [("plate.1001.exr", True), ("plate.1002.exr", False), ("plate.1003.exr", False)]


def test_a_bad_prefetched_frame_fails_when_it_is_read(plate: Path) -> None:  # noqa: F811
    (plate.parent / "plate.1003.exr").write_bytes(b"not an exr")
    source = SourcePlate(parse_pattern(str(plate)), [1001, 1002, 1003], colour=ColourSettings())
    try:
        source.prefetch([1003])
        with pytest.raises(ImageError, match=r"plate\.1003\.exr"):
            source.read(1003)
    finally:
        source.close()


def test_a_retime_reads_the_next_frames_sources_ahead_and_writes_the_same_pixels(
        plate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    with monkeypatch.context() as m:  # "before": every source read in line, when it is needed
        m.setattr(SourcePlate, "prefetch", lambda self, frames: None)
        before = runner_module.run_retime(_options(plate, tmp_path / "before", frames="1001-1004",
                                                   detect_cuts=False, channels="rgba"))
    reads = _recording_reads(monkeypatch)
    after = runner_module.run_retime(_options(plate, tmp_path / "after", frames="1001-1004", detect_cuts=False,
                                              channels="rgba"))
    assert after.written == before.written == list(range(1001, 1008))
    assert any(not on_caller for _, on_caller in reads)  # some sources came from the read-ahead thread
    assert len(reads) == len({name for name, _ in reads}) == 4  # each source read once
    for frame in after.written:
        assert np.array_equal(_pixels(tmp_path / "after" / f"rt.{frame}.exr"),
                              _pixels(tmp_path / "before" / f"rt.{frame}.exr")), frame


def test_the_read_ahead_always_has_the_next_new_source_frame_on_its_way() -> None:
    from ldmvfi_core.retime.plan import plan_retime
    from ldmvfi_core.retime.timing import by_factor

    frames = [1001, 1002, 1003]
    options = _options(Path("plate.####.exr"), Path("out"), channels="rgba")
    # 2x: copy 1001, 1001|1002, copy 1002, 1002|1003, copy 1003. A copy's successor (the in-between)
    # brings the new frame; an in-between looks past the copy of a frame it already has.
    plan = plan_retime(by_factor(1001, 1003, 2), frames)
    ahead = runner_module._next_sources(plan, [False] * len(plan.frames), options)
    assert ahead == [(1001, 1002), (1002, 1003), (1002, 1003), (1003,), ()]
    # 4x: three in-betweens share each pair; each one already asks for the next pair's new frame.
    plan = plan_retime(by_factor(1001, 1003, 4), frames)
    ahead = runner_module._next_sources(plan, [False] * len(plan.frames), options)
    assert ahead == [(1001, 1002), (1001, 1002, 1003), (1001, 1002, 1003), (1002, 1003), (1002, 1003),
                     (1002, 1003), (1002, 1003), (1003,), ()]
    # frames already on disk read nothing: the read-ahead skips past them
    done = [False, True, True, True, True, False, False, False, False]
    ahead = runner_module._next_sources(plan, done, options)
    assert ahead[0] == (1002, 1003)
