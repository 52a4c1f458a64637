# SPDX-License-Identifier: MIT
"""Tiled decoding for large frames: the decoder heads are predicted tile by tile and feathered.

The decoder's full-resolution layers (64-channel features, ten conv heads) dominate memory at
4K. Here the latent is cut into overlapping tiles (with the matching windows of both feature
pyramids); each tile's kernels, offsets, visibility mask and residual are predicted on its own
and blended into full-frame maps with weights that ramp linearly across every overlap, so no
tile edge shows. The warp itself then runs once on the whole frame, so motion that crosses a
tile border samples the real neighbouring pixels.

Tiles are whole MaxViT windows in latent units, so each tile is a valid decoder input. The
result differs slightly from an untiled decode (the decoder's grid attention sees the tile, not
the frame; the model was trained on 256-px crops, far smaller than a tile).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ldmvfi_core.model.autoencoder import VQFIGAN, DecoderHeads


@dataclass(frozen=True)
class TileSettings:
    """Tile and overlap sizes in latent pixels (multiples of the autoencoder window)."""

    tile: int = 32  # 1024 frame pixels for the released model
    overlap: int = 8  # 256 frame pixels


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Overlapping ``[start, end)`` spans covering ``[0, length)``; the last one ends flush."""
    if length <= tile:
        return [(0, length)]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    stride = tile - overlap
    starts = [*list(range(0, length - tile, stride)), length - tile]
    return [(s, s + tile) for s in starts]


def _ramp(size: int, rise_start: int, rise_end: int, device: torch.device) -> Tensor:
    """1 inside, linear ramps of ``rise_*`` samples at the two ends (0 -> no ramp there)."""
    w = torch.ones(size, device=device)
    if rise_start:
        w[:rise_start] = (torch.arange(rise_start, device=device) + 0.5) / rise_start
    if rise_end:
        w[size - rise_end:] = torch.minimum(
            w[size - rise_end:], (torch.arange(rise_end, 0, -1, device=device) - 0.5) / rise_end
        )
    return w


def _overlaps(spans: list[tuple[int, int]], index: int) -> tuple[int, int]:
    """Latent samples shared with the previous and the next span."""
    start, end = spans[index]
    before = spans[index - 1][1] - start if index > 0 else 0
    after = end - spans[index + 1][0] if index + 1 < len(spans) else 0
    return max(before, 0), max(after, 0)


def predict_heads_tiled(
    autoencoder: VQFIGAN, z_quant: Tensor, phi0: list[Tensor], phi1: list[Tensor], settings: TileSettings,
    valid: tuple[int, int] | None = None,
) -> DecoderHeads:
    """``autoencoder.predict_heads`` tile by tile; ``feature`` is left empty (never assembled).

    ``valid``: the frame's size before its bottom/right padding; each tile's last layers then
    skip the padding it holds (``Decoder.forward``), and the heads there are zero.
    """
    window = autoencoder.cfg.window
    if settings.tile % window or settings.overlap % window:
        raise ValueError(f"tile {settings.tile} and overlap {settings.overlap} must be multiples of {window}")
    h, w = z_quant.shape[-2:]
    ys, xs = tile_spans(h, settings.tile, settings.overlap), tile_spans(w, settings.tile, settings.overlap)
    down = autoencoder.cfg.downscale
    sums: dict[str, Tensor] = {}
    total = torch.zeros(1, 1, h * down, w * down, device=z_quant.device)
    for iy, (y0, y1) in enumerate(ys):
        for ix, (x0, x1) in enumerate(xs):
            tile_phi0 = [_crop_level(p, y0, y1, x0, x1, (h, w)) for p in phi0]
            tile_phi1 = [_crop_level(p, y0, y1, x0, x1, (h, w)) for p in phi1]
            # At least one row and column: a small tile may lie wholly in the padding.
            tile_valid = None if valid is None else (max(1, min((y1 - y0) * down, valid[0] - y0 * down)),
                                                     max(1, min((x1 - x0) * down, valid[1] - x0 * down)))
            heads = autoencoder.predict_heads(z_quant[..., y0:y1, x0:x1], tile_phi0, tile_phi1, tile_valid)
            oy, ox = _overlaps(ys, iy), _overlaps(xs, ix)
            weight = (_ramp((y1 - y0) * down, oy[0] * down, oy[1] * down, z_quant.device)[:, None]
                      * _ramp((x1 - x0) * down, ox[0] * down, ox[1] * down, z_quant.device)[None, :])
            region = (..., slice(y0 * down, y1 * down), slice(x0 * down, x1 * down))
            total[region] += weight
            for name, value in heads.as_dict().items():
                if name == "feature":
                    continue
                if name not in sums:
                    sums[name] = torch.zeros(*value.shape[:2], h * down, w * down, device=value.device)
                sums[name][region] += value.float() * weight
            del heads
    blended = {name: value / total for name, value in sums.items()}
    empty = torch.empty(z_quant.shape[0], 0, h * down, w * down, device=z_quant.device)
    names = [f.name for f in fields(DecoderHeads) if f.name != "feature"]
    return DecoderHeads(feature=empty, **{name: blended[name] for name in names})


def _crop_level(level: Tensor, y0: int, y1: int, x0: int, x1: int, latent_hw: tuple[int, int]) -> Tensor:
    """The window of a pyramid level matching latent rows y0:y1 and columns x0:x1."""
    sy, sx = level.shape[-2] // latent_hw[0], level.shape[-1] // latent_hw[1]  # level px per latent px
    return level[..., y0 * sy:y1 * sy, x0 * sx:x1 * sx]
