# SPDX-License-Identifier: MIT
"""``ldmvfi retime`` on a GPU (skipped without one; needs OpenImageIO)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ldmvfi_core.retime import runner as runner_module
from ldmvfi_core.retime.runner import run_retime
from tests.unit.test_render_ahead import _same_frames
from tests.unit.test_retime import _options, plate  # noqa: F401  (plate is a fixture)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("factor", [2, 4])
def test_sampling_ahead_on_its_own_stream_keeps_the_frames(plate: Path, tmp_path: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch, factor: int) -> None:
    """bf16 with CUDA graphs: the retime that samples the next in-between on a second stream
    while this one decodes writes the same pixels as one that does everything in turn on one
    stream."""
    opts = dict(factor=factor, depth=2, eta=1.0, device="cuda", precision="bfloat16")
    run_retime(_options(plate, tmp_path / "ahead", **opts))
    load = runner_module._load_interpolator

    def one_stream(options: runner_module.RetimeOptions):  # type: ignore[no-untyped-def]
        interpolator = load(options)
        interpolator.overlap_sampling = False
        return interpolator

    monkeypatch.setattr(runner_module, "_load_interpolator", one_stream)
    monkeypatch.setattr(runner_module, "_next_nodes", lambda plan, done: [None] * len(plan.frames))
    run_retime(_options(plate, tmp_path / "serial", **opts))
    _same_frames(tmp_path / "ahead", tmp_path / "serial")


@pytest.mark.parametrize("transfer", ["hdr", "srgb"])
def test_the_colour_transfer_on_the_gpu_matches_the_cpu(transfer: str) -> None:
    """The retimer encodes sources and decodes in-betweens on the model's device (session 16):
    both ways within one float32 step of the CPU, NaN and the half-float ends included."""
    import numpy as np

    from ldmvfi_core.io.colour import HALF_MAX, decode_transfer, encode_transfer

    rng = np.random.default_rng(4)
    pixels = (rng.standard_normal((270, 480, 4)) * 20).astype(np.float32)
    pixels[0, :5, 0] = [np.nan, np.inf, -np.inf, HALF_MAX, -0.0]
    for values, code in ((pixels, encode_transfer), (np.clip(pixels / 20, -1.1, 1.1), decode_transfer)):
        on_cpu = code(values, transfer)
        on_gpu = code(torch.from_numpy(values).cuda(), transfer)
        assert on_gpu.is_cuda and on_gpu.dtype == torch.float32
        np.testing.assert_allclose(on_gpu.cpu().numpy(), on_cpu, rtol=3e-7, atol=1e-30, equal_nan=True)


def test_a_thumbnail_made_on_the_gpu_is_the_numpy_thumbnail() -> None:
    """The cut scan averages frames down on the GPU (session 16): the same thumbnail as numpy's."""
    import numpy as np

    from ldmvfi_core.retime.cuts import thumbnail

    rng = np.random.default_rng(5)
    frame = rng.random((1080, 1920, 4), dtype=np.float32)
    frame[7, 9, 0] = np.nan
    np.testing.assert_allclose(thumbnail(torch.from_numpy(frame).cuda()), thumbnail(frame), rtol=1e-12, atol=1e-15)
