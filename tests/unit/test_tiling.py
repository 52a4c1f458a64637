# SPDX-License-Identifier: MIT
"""Tiled decoding: spans, exact reassembly, and no visible seams."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ldmvfi_core.config import AutoencoderConfig
from ldmvfi_core.interpolate import Interpolator
from ldmvfi_core.model.autoencoder import DecoderHeads
from ldmvfi_core.model.tiling import TileSettings, predict_heads_tiled, tile_spans
from tests.conftest import TINY


@given(length=st.integers(1, 40).map(lambda n: 8 * n), tile=st.integers(2, 6).map(lambda n: 8 * n),
       overlap=st.sampled_from([0, 8]))
def test_spans_cover_everything_with_the_requested_overlap(length: int, tile: int, overlap: int) -> None:
    spans = tile_spans(length, tile, overlap)
    covered = np.zeros(length, bool)
    for start, end in spans:
        assert start % 8 == 0 and end - start == min(tile, length)
        covered[start:end] = True
    assert covered.all() and spans[-1][1] == length
    for (_, e0), (s1, _) in itertools.pairwise(spans):
        assert e0 - s1 >= overlap


@dataclass
class _PositionalDecoder:
    """Stands in for VQFIGAN: every head is a smooth function of absolute position (via phi0[0])."""

    cfg: AutoencoderConfig

    def predict_heads(self, z: torch.Tensor, phi0: list[torch.Tensor], phi1: list[torch.Tensor],
                      valid: tuple[int, int] | None = None) -> DecoderHeads:
        base = F.interpolate(phi0[0][:, :1] + 2 * phi1[0][:, :1], scale_factor=2, mode="nearest")
        b, _, h, w = base.shape

        def maps(c: int, k: float) -> torch.Tensor:
            return base.expand(b, c, h, w) * k

        return DecoderHeads(feature=maps(4, 1.0), vertical1=maps(5, 0.1), horizontal1=maps(5, 0.2),
                            offset_x1=maps(25, 0.3), offset_y1=maps(25, 0.4), vertical2=maps(5, 0.5),
                            horizontal2=maps(5, 0.6), offset_x2=maps(25, 0.7), offset_y2=maps(25, 0.8),
                            mask=maps(25, 0.9), residual=maps(3, 1.1))


def test_tiles_reassemble_position_dependent_heads_exactly() -> None:
    cfg = AutoencoderConfig(ch=8, ch_mult=(1, 1, 1, 1, 1))
    fake = _PositionalDecoder(cfg)
    h, w = 24, 40  # latent
    ys, xs = torch.meshgrid(torch.arange(h * 16.0), torch.arange(w * 16.0), indexing="ij")
    phi0 = [torch.sin(ys / 37.0 + xs / 53.0)[None, None].repeat(1, 8, 1, 1) / (2**i) for i in range(1)]
    phi1 = [torch.cos(ys / 41.0 - xs / 29.0)[None, None].repeat(1, 8, 1, 1)]
    full = fake.predict_heads(torch.zeros(1, 3, h, w), phi0, phi1)
    tiled = predict_heads_tiled(fake, torch.zeros(1, 3, h, w), phi0, phi1, TileSettings(tile=16, overlap=8))  # type: ignore[arg-type]
    for name, value in full.as_dict().items():
        if name != "feature":
            torch.testing.assert_close(getattr(tiled, name), value, atol=1e-5, rtol=1e-5, msg=name)
    assert tiled.feature.shape[1] == 0


def _seam_ratio(image: np.ndarray, column: int) -> float:
    """Mean jump across ``column`` over the median jump between neighbouring columns."""
    jumps = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))
    return float(jumps[column - 1] / np.median(jumps))


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:256, 0:1024].astype(np.float32)
    a = np.stack([0.5 + 0.4 * np.sin(xx / 23 + yy / 31), 0.5 + 0.4 * np.cos(xx / 17), 0.5 + 0.3 * np.sin(yy / 13)], -1)
    b = np.roll(a, 6, axis=1)
    return a, b


def test_one_tile_is_identical_to_no_tiling(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = (x[:, :256] for x in pair)
    whole = Interpolator.load(TINY / "weights.safetensors", tile=None).interpolate(a, b, steps=2, seed=1)
    tiled = Interpolator.load(TINY / "weights.safetensors", tile=TileSettings(16, 8)).interpolate(a, b, steps=2, seed=1)
    assert np.array_equal(whole, tiled)


def test_feathered_tiles_show_no_seam(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair  # 256 x 1024: latent 8 x 32 -> tiles at x = 0-512, 256-768, 512-1024 px
    interp = Interpolator.load(TINY / "weights.safetensors", tile=TileSettings(tile=16, overlap=8))
    out = interp.interpolate(a, b, steps=2, eta=0.0, seed=3)
    hard = Interpolator.load(TINY / "weights.safetensors", tile=TileSettings(tile=16, overlap=0))
    hard_out = hard.interpolate(a, b, steps=2, eta=0.0, seed=3)
    whole = Interpolator.load(TINY / "weights.safetensors", tile=None).interpolate(a, b, steps=2, eta=0.0, seed=3)
    # Without overlap the tile edge at x = 512 is a visible jump; with feathering it is not.
    assert _seam_ratio(hard_out, 512) > 1.5 * _seam_ratio(out, 512)
    for column in (256, 512, 768):
        assert _seam_ratio(out, column) < 1.5
    # and the tiled frame stays close to the untiled one
    assert np.abs(out - whole).mean() < 0.1


@pytest.mark.parametrize(("size", "padding", "tiles"), [
    ((200, 700), "minimal", TileSettings(tile=16, overlap=8)),  # padded 256 x 768: two tiles across
    ((520, 300), "reference", TileSettings(tile=8, overlap=0)),  # padded 1024 x 512: the last tile row is all padding
])
def test_tiles_skip_the_padding_exactly(size: tuple[int, int], padding: str, tiles: TileSettings) -> None:
    """Tiled decoding with the picture's size gives the picture's pixels of the full tiled decode."""
    interp = Interpolator.load(TINY / "weights.safetensors", tile=tiles, padding=padding)  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    f0, f1 = (interp.prepare(rng.random((*size, 3), dtype=np.float32)) for _ in range(2))
    z = torch.randn(f0.encoded.latent.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = interp.model.decode(z, f0.encoded, f1.encoded, tiles=tiles)
        skipped = interp.model.decode(z, f0.encoded, f1.encoded, tiles=tiles, valid=size)
    h, w = size
    assert torch.isfinite(skipped).all()
    torch.testing.assert_close(skipped[..., :h, :w], full[..., :h, :w], atol=1e-5, rtol=0)  # float order only
