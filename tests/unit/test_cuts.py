# SPDX-License-Identifier: MIT
"""Scene-cut detection on synthetic frames (the calibration on real footage is bench/cut_detection.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ldmvfi_core.retime.cuts import (
    CUT_THRESHOLD,
    cut_score,
    is_cut,
    thumbnail,
    thumbnail_cut_score,
    thumbnails_are_cut,
)
from tests.textures import value_noise


def _texture(seed: int, height: int = 360, width: int = 640) -> np.ndarray:
    """A natural-looking random RGB texture: bilinear value noise, octaves 128..16 px, in [0, 1]."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3))
    for cell, amplitude in ((128, 0.5), (64, 0.25), (32, 0.15), (16, 0.1)):
        image += amplitude * value_noise(rng, height, width, cell)
    image = (image - image.min()) / (image.max() - image.min())
    return image.astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_unrelated_textures_are_a_cut(seed: int) -> None:
    a, b = _texture(2 * seed), _texture(2 * seed + 1)
    assert cut_score(a, b) > 1.3 * CUT_THRESHOLD
    assert is_cut(a, b)


@pytest.mark.parametrize("seed", range(4))
def test_a_30px_pan_is_not_a_cut(seed: int) -> None:
    wide = _texture(100 + seed, 390, 700)
    a, b = wide[:360, :640], wide[12:372, 30:670]  # the camera moves 30 px right, 12 px down
    assert cut_score(a, b) < 0.5 * CUT_THRESHOLD
    assert not is_cut(a, b)


@pytest.mark.parametrize("seed", range(4))
def test_an_exposure_change_is_not_a_cut(seed: int) -> None:
    a = _texture(200 + seed)
    assert cut_score(a, np.clip(a * 1.3, 0.0, 1.0)) < 0.5 * CUT_THRESHOLD  # brighter, highlights clip
    assert cut_score(a, a * 0.5) < 1e-9  # darker by a stop: no clipping, exactly the same shot
    assert not is_cut(a, np.clip(a * 1.3, 0.0, 1.0))


def test_an_object_crossing_part_of_the_frame_is_not_a_cut() -> None:
    a = _texture(300)
    b = a.copy()
    b[100:260, 150:420] = _texture(301)[100:260, 150:420]  # a new object over 19% of the frame
    assert not is_cut(a, b)


def test_identical_frames_score_zero() -> None:
    a = _texture(400)
    assert cut_score(a, a) == 0.0
    assert cut_score(a, a.copy()) == 0.0
    flat = np.full((10, 10, 3), 0.5, np.float32)
    assert cut_score(flat, flat) == 0.0
    black = np.zeros((10, 10, 3), np.float32)
    assert cut_score(black, black) == 0.0


def test_score_is_symmetric_and_bounded() -> None:
    a, b = _texture(500), _texture(501)
    pan = _texture(502, 380, 700)
    for x, y in ((a, b), (pan[:360, :640], pan[20:, 60:])):
        assert cut_score(x, y) == pytest.approx(cut_score(y, x), rel=1e-12, abs=1e-15)
        assert 0.0 <= cut_score(x, y) <= 1.0


def test_a_cut_to_black_is_a_cut() -> None:
    a = _texture(600)
    assert is_cut(a, np.zeros_like(a))


def test_one_pixel_frames() -> None:
    grey = np.full((1, 1, 3), 0.5, np.float32)
    red = np.array([[[1.0, 0.0, 0.0]]], np.float32)
    assert cut_score(grey, grey) == 0.0
    score = cut_score(grey, red)
    assert np.isfinite(score) and 0.0 <= score <= 1.0
    assert cut_score(red, grey) == score


def test_tiny_and_odd_sized_frames() -> None:
    a, b = _texture(700, 3, 5), _texture(701, 3, 5)
    assert np.isfinite(cut_score(a, b))
    a, b = _texture(702, 7, 1001), _texture(703, 7, 1001)
    assert np.isfinite(cut_score(a, b))


def test_only_rgb_is_used() -> None:
    rng = np.random.default_rng(8)
    a, b = _texture(800), _texture(801)
    a5 = np.concatenate([a, rng.random((*a.shape[:2], 2), dtype=np.float32)], axis=-1)
    b5 = np.concatenate([b, rng.random((*b.shape[:2], 2), dtype=np.float32)], axis=-1)
    assert cut_score(a5, b5) == cut_score(a, b)
    a4 = np.concatenate([a, np.ones_like(a[..., :1])], axis=-1)
    a4b = np.concatenate([a, np.zeros_like(a[..., :1])], axis=-1)
    assert cut_score(a4, a4b) == 0.0  # alpha differs, RGB the same


def test_float16_and_out_of_range_values() -> None:
    a = _texture(900)
    assert cut_score(a.astype(np.float16), a) == pytest.approx(0.0, abs=1e-3)
    b = a.copy()
    b[0, 0] = [np.nan, np.inf, -0.01]  # stray values only spoil their own thumbnail cell
    assert cut_score(a, b) < 0.1 * CUT_THRESHOLD


def test_bad_inputs() -> None:
    a = _texture(1000, 20, 30)
    with pytest.raises(ValueError, match="differ in size"):
        cut_score(a, a[:10])
    with pytest.raises(ValueError, match="H x W x >=3"):
        cut_score(a[..., :2], a[..., :2])
    with pytest.raises(TypeError, match="float"):
        cut_score((a * 255).astype(np.uint8), (a * 255).astype(np.uint8))


@pytest.mark.parametrize("size", [(72, 128), (90, 161), (37, 300), (5, 7)])
def test_a_thumbnail_made_from_a_tensor_is_the_numpy_thumbnail(size: tuple[int, int]) -> None:
    # The retimer scans for cuts with thumbnails made on the model's device (session 16); the
    # threshold was calibrated on the numpy ones. Band edges, NaN/Inf cells, extra channels alike.
    rng = np.random.default_rng(size[0])
    a = rng.random((*size, 5), dtype=np.float32) * 1.2 - 0.1
    a[0, 0, 0], a[-1, -1, 1] = np.nan, np.inf
    b = np.roll(a, 3, axis=1)
    b[size[0] // 2:] = 1.0 - b[size[0] // 2:]
    for frame in (a, b):
        np.testing.assert_allclose(thumbnail(torch.from_numpy(frame)), thumbnail(frame), rtol=1e-12, atol=1e-15)
    assert thumbnail_cut_score(thumbnail(torch.from_numpy(a)), thumbnail(torch.from_numpy(b))) == pytest.approx(
        cut_score(a, b), rel=1e-9)
    for first, second in ((a, b), (a, a)):
        assert thumbnails_are_cut(thumbnail(first), thumbnail(second)) == is_cut(first, second)
