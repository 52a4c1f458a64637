# SPDX-License-Identifier: MIT
"""The node against the real ``ldmvfi retime`` (``--method nearest``: no model needed).

The fake Nuke's Write writes real EXRs (OpenImageIO) with overscan and Nuke's node hash, the
node starts the real runner with the configured Python, and the Read ends up on real frames.
"""

from __future__ import annotations

import sys
from pathlib import Path

import fake_nuke
import numpy as np
import pytest

oiio = pytest.importorskip("OpenImageIO")
ROOT = Path(__file__).resolve().parents[2]


def write_real_exr(path: Path, frame: int, node_hash: str, channels: str) -> None:
    spec = oiio.ImageSpec(6, 4, 4, oiio.HALF)
    spec.channelnames = ("R", "G", "B", "A")
    spec.x, spec.y = -2, -1  # data window outside the display window: overscan
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, 4, 2
    spec.attribute("nuke/node_hash", node_hash)
    spec.attribute("compression", "zip")
    pixels = np.full((4, 6, 4), (frame - 1000) / 10, dtype=np.float32)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    out.write_image(pixels)
    out.close()


@pytest.fixture
def real_runner(monkeypatch: pytest.MonkeyPatch) -> str:
    fake_nuke.state.exr_writer = write_real_exr
    monkeypatch.setenv("LDMVFI_PYTHONPATH", str(ROOT))
    return sys.executable


@pytest.mark.parametrize(("knobs", "frames"), [
    ({"method": "factor", "factor": 2}, (1001, 1005)),
    ({"method": "speed", "speed": -0.5}, (1001, 1005)),
    ({"method": "frame curve"}, (1001, 1003)),
])
def test_real_runner(make_node, real_runner: str, knobs: dict[str, object], frames: tuple[int, int]) -> None:
    from ldmvfi_nuke import bake

    node = make_node(1001, 1003, engine="nearest", device="cpu", runner_python=real_runner, **knobs)
    if knobs["method"] == "frame curve":
        node["frame"].set_fake_expression(lambda t: 1003 - (t - 1001))  # play it backwards
    job = bake.interpolate(node)
    assert job is not None
    fake_nuke.process_events(lambda: not job.thread.is_alive() and not bake._RUNNING, timeout=120)
    assert job.outcome is not None and job.outcome.ok, (job.outcome.error_line(), node["status"].value())
    read = node.node("baked_result")
    assert (read["first"].value(), read["last"].value()) == frames
    folder = Path(node["baked_dir"].value())
    for frame in range(frames[0], frames[1] + 1):
        image = oiio.ImageBuf(str(folder / f"ldmvfi.{frame:04d}.exr"))
        spec = image.spec()
        assert (spec.x, spec.y, spec.width, spec.height) == (-2, -1, 6, 4)  # the overscan survived
        assert (spec.full_width, spec.full_height) == (4, 2)
    if knobs["method"] == "frame curve":
        first = oiio.ImageBuf(str(folder / "ldmvfi.1001.exr")).get_pixels(oiio.FLOAT)
        assert np.allclose(first, 0.3, atol=1e-3)  # output 1001 shows source 1003
    assert node["status"].value().startswith(f"done: output {frames[0]}-{frames[1]}")
    assert fake_nuke.state.off_main_calls == []
