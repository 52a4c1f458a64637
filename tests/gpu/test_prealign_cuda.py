# SPDX-License-Identifier: MIT
"""Pre-alignment on a GPU (skipped without one): the canvases are built without waiting for the
GPU, and a pre-aligned in-between is the CPU's.

Run on the GPU machine: ``python -m pytest -m gpu tests/gpu -q``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ldmvfi_core.interpolate import Interpolator
from ldmvfi_core.prealign import aligned_canvases, crop_canvas
from tests.conftest import TINY
from tests.textures import value_noise

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_canvases_are_queued_without_waiting_for_the_gpu() -> None:
    """The retimer builds them on the thread that feeds the GPU (retime/render.py)."""
    x0, x1 = torch.rand(1, 4, 90, 160, device="cuda"), torch.rand(1, 4, 90, 160, device="cuda")
    aligned_canvases(x0, x1, (-6, 3), (6, 3), from_partner=True)  # warm: kernels loaded
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for from_partner in (False, True):
            c0, c1 = aligned_canvases(x0, x1, (-6, 3), (6, 3), from_partner=from_partner)
            window = crop_canvas(c0, (6, 3), (90, 160))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(window[..., 3:, :-6], x0[..., :-3, 6:])
    assert c1.shape == (1, 4, 96, 172)


def test_a_pre_aligned_in_between_on_the_gpu_is_the_cpus() -> None:
    rng = np.random.default_rng(5)
    scene = value_noise(rng, 160, 300, cell=8).astype(np.float32)
    f0, f1 = scene[:, :256], scene[:, 24:280]  # a 24-px pan: pre-aligned by 12 px each
    on_cpu = Interpolator.load(TINY / "weights.safetensors", prealign=True).interpolate(f0, f1, steps=2)
    on_gpu = Interpolator.load(TINY / "weights.safetensors", device="cuda", prealign=True).interpolate(f0, f1, steps=2)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-3)
