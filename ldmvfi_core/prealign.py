# SPDX-License-Identifier: MIT
"""Pre-align a pair on its camera move, so the model bridges only what the move leaves.

The shipped model is weakest where motion is large: its whole deficit against optical flow on
Middlebury is at >= 20 px between the inputs (bench/RESULTS.md, "Error by motion"), and even a
2-px move is bridged less exactly than none. In a pan or a tilt most of the picture moves by one
amount. Moving frame 0 forward by half of it and frame 1 back by half, in whole pixels (a copy, no
resampling: nothing is softened), puts both where the middle frame has them; the model then sees
only the residual motion, and its output is already in the middle frame's place. Both frames sit on
a canvas larger by the shift, so no pixel of either is cut off, and the middle frame's window is
cropped out of the result; what a shift uncovers is filled as ``aligned_canvases`` says.

A shift is right only for what moves with the camera: a subject the camera follows, or a layer at
another depth, is moved the wrong way. So the pair is interpolated both as it is and pre-aligned,
and ``fuse_candidates`` keeps, pixel by pixel, the in-between whose inputs agree better around that
pixel (twice the work for a moving pair, none more for a still one).

The move is the peak of the phase correlation of the two frames' luminance (Kuglin and Hines,
1975), measured on a copy at most ``ESTIMATE_WIDTH`` px wide. It is used only when

* it is at least ``MIN_MOTION`` px between the two inputs (below it, the whole-pixel shifts are
  zero); and
* shifting makes the frames alike: the mean difference of the shifted frames (blurred luminance,
  over their overlap) is at most ``MAX_MISFIT`` times the unshifted one. A zoom, a spurious peak,
  a small object moving over a still background, or a camera that turns more than it pans
  (a shift that explains almost nothing: shifted ~ unshifted) fail this test.

The limits and the fusion were chosen on footage outside the eval sets (bench/RESULTS.md,
"Pre-alignment" and "Fused pre-alignment", which also say what they do on the eval sets).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

MIN_MOTION = 2.0  # px between the two inputs, at the frames' own resolution: a whole-px shift each
MAX_MISFIT = 0.9  # shifted / unshifted mean difference: the move must explain a tenth of it
EXACT_MISFIT = 0.1  # at or below it the move explains the pair: uncovered strips take the other frame
FUSE_SIGMA = 12.0  # px: the neighbourhood (Gaussian sigma) over which a candidate's inputs must agree
FUSE_FLOOR = 2e-3  # model units (RGB in [-1, 1]): agreement closer than ~a quarter of a code value ties
ESTIMATE_WIDTH = 1024  # px: the estimate's copy is box-filtered down to at most this wide

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)  # Rec.709


@dataclass(frozen=True)
class CameraMove:
    """How far the picture moves from frame 0 to frame 1, in px (x right, y down)."""

    dx: float
    dy: float
    misfit: float = 1.0  # ``misfit`` of the frames shifted by the move: near 0 when it explains them

    @property
    def length(self) -> float:
        return math.hypot(self.dx, self.dy)

    def half_shift(self, span: float = 1.0) -> tuple[int, int]:
        """Whole-pixel (x, y) shift for each frame of a pair ``span`` of this move apart (1: the
        source pair; 0.5: a pair from a source frame to the middle): frame 0 moves by +shift,
        frame 1 by -shift."""
        return round(self.dx * span / 2.0), round(self.dy * span / 2.0)


def alignment_grey(frame: np.ndarray, encode: Callable[[np.ndarray], np.ndarray] | None = None,
                   rgb: tuple[int, int, int] = (0, 1, 2)) -> np.ndarray:
    """(H, W, C) frame whose channels ``rgb`` are R, G, B -> float32 luminance, box-filtered by a whole factor
    (``alignment_scale``) to at most ``ESTIMATE_WIDTH`` wide, then passed through ``encode`` (a
    transfer for RGB arrays, given the grey as three equal channels). Luminance first: on
    scene-linear values it commutes with the box filter, and it is a third of the pixels to shrink
    (a 1080p frame in ~25 ms on this project's 2-core development machine)."""
    r, g, b = (frame[..., c] for c in rgb)  # views: a plate's frame is not copied
    grey = (r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2]).astype(np.float32)
    factor = alignment_scale(grey.shape[1])
    if factor > 1:
        h, w = (grey.shape[0] // factor) * factor, (grey.shape[1] // factor) * factor
        grey = grey[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    grey = np.nan_to_num(grey, nan=0.0, posinf=0.0, neginf=0.0)  # a plate's NaN/Inf must not steer the move
    return grey if encode is None else _through_table(grey, encode)


def _through_table(values: np.ndarray, encode: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``encode`` (an elementwise RGB transfer) applied to ``values`` through a table of ~2,300
    samples of it and linear interpolation: the transfers are exact and slow (float64, ~0.2 s for a
    shrunk 1080p frame on one core), and the estimate needs only their shape."""
    low, high = float(values.min()), float(values.max())
    samples = np.linspace(min(low, 0.0), min(max(high, 0.0), 1.0), 2049)
    if high > 1.0:  # HDR values: spaced by ratio, as the transfers roll off logarithmically
        samples = np.concatenate([samples, np.geomspace(1.0, high, 257)[1:]])
    encoded = np.asarray(encode(np.repeat(samples[:, None, None], 3, axis=-1)), dtype=np.float64)[:, 0, 0]
    return np.interp(values, samples, encoded).astype(np.float32)


def alignment_scale(width: int) -> int:
    """The whole factor ``alignment_grey`` shrinks a frame of this width by."""
    return max(1, math.ceil(width / ESTIMATE_WIDTH))


def phase_correlation(grey0: np.ndarray, grey1: np.ndarray) -> tuple[float, float]:
    """(dx, dy) in px that moves ``grey0``'s content onto ``grey1``'s: the peak of their
    normalised cross-power spectrum (Hann-windowed), refined to sub-pixel by the centroid of the
    3x3 samples around it."""
    if grey0.shape != grey1.shape or grey0.ndim != 2:
        raise ValueError(f"phase correlation needs two 2-D images of one size, got {grey0.shape} and {grey1.shape}")
    h, w = grey0.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    spectra = [np.fft.rfft2((g - g.mean()) * window) for g in (grey0.astype(np.float64), grey1.astype(np.float64))]
    cross = np.conj(spectra[0]) * spectra[1]
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-12), s=(h, w))
    py, px = np.unravel_index(int(np.argmax(surface)), surface.shape)
    rows, cols = (py + np.arange(-1, 2)) % h, (px + np.arange(-1, 2)) % w
    patch = np.clip(surface[np.ix_(rows, cols)], 0.0, None)
    total = patch.sum()
    offsets = np.arange(-1, 2)
    fy = py + (float((patch.sum(axis=1) * offsets).sum() / total) if total > 0 else 0.0)
    fx = px + (float((patch.sum(axis=0) * offsets).sum() / total) if total > 0 else 0.0)
    # the surface wraps: peaks past the middle are negative moves
    return (fx - w if fx > w / 2 else fx), (fy - h if fy > h / 2 else fy)


def misfit(grey0: np.ndarray, grey1: np.ndarray, tx: int, ty: int) -> float:
    """Mean difference of the two images with ``grey0`` moved by (tx, ty) whole px, over their
    overlap, divided by the unshifted mean difference (both on a [1, 2, 1] blur, so a few grey
    levels of noise do not decide). 1: the shift explains nothing; inf: nothing overlaps."""
    a, b = _blur(grey0), _blur(grey1)
    h, w = a.shape
    if abs(tx) >= w or abs(ty) >= h:
        return math.inf
    a_part = a[max(0, -ty) : h - max(0, ty), max(0, -tx) : w - max(0, tx)]
    b_part = b[max(0, ty) : h - max(0, -ty), max(0, tx) : w - max(0, -tx)]
    unshifted = float(np.abs(a - b).mean())
    shifted = float(np.abs(a_part - b_part).mean())
    return shifted / unshifted if unshifted > 0 else (1.0 if shifted == 0 else math.inf)


def _blur(grey: np.ndarray) -> np.ndarray:
    padded = np.pad(grey, 1, mode="edge")
    rows = (padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4.0
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) / 4.0


def camera_move(frame0: np.ndarray, frame1: np.ndarray, *, encode: Callable[[np.ndarray], np.ndarray] | None = None,
                min_motion: float = MIN_MOTION, max_misfit: float = MAX_MISFIT) -> CameraMove | None:
    """The pair's camera move at the frames' resolution, or None where pre-aligning would not
    help (see the module's notes). Frames: (H, W, C) RGB first, any float or uint8; ``encode``
    maps scene-linear RGB to display-referred (applied after shrinking, so it touches few pixels);
    without it the frames are taken as display-referred."""
    if frame0.shape[:2] != frame1.shape[:2]:
        raise ValueError(f"frames of different sizes: {frame0.shape[:2]} and {frame1.shape[:2]}")
    return move_between(alignment_grey(frame0, encode), alignment_grey(frame1, encode),
                        alignment_scale(frame0.shape[1]), min_motion=min_motion, max_misfit=max_misfit)


def move_between(grey0: np.ndarray, grey1: np.ndarray, scale: int, *, min_motion: float = MIN_MOTION,
                 max_misfit: float = MAX_MISFIT) -> CameraMove | None:
    """``camera_move`` from two ``alignment_grey`` images shrunk by ``scale``."""
    dx, dy = phase_correlation(grey0, grey1)
    move = CameraMove(float(dx) * scale, float(dy) * scale)
    if move.length < min_motion:
        return None
    tx, ty = (2 * s for s in move.half_shift())
    # judged on the estimate's copy: the shift in its pixels
    fit = misfit(grey0, grey1, round(tx / scale), round(ty / scale))
    return CameraMove(move.dx, move.dy, fit) if fit <= max_misfit else None


def prealigned_pair(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """Two (B, C, H, W) batches (RGB first; display-referred, in [0, 1] or the model's [-1, 1]: the
    measure does not care about an affine change of units) on canvases where each item's pair is
    pre-aligned on its camera move (``aligned_canvases``), and the canvases' margin (x, y) for
    ``crop_canvas``. Items without a usable move sit unshifted on the same canvas."""
    host0, host1 = (x[:, :3].detach().permute(0, 2, 3, 1).cpu().numpy() for x in (x0, x1))
    moves = [camera_move(a, b) for a, b in zip(host0, host1, strict=True)]
    shifts = [m.half_shift() if m is not None else (0, 0) for m in moves]
    margin = (max(abs(s[0]) for s in shifts), max(abs(s[1]) for s in shifts))
    if margin == (0, 0):
        return x0, x1, margin
    pairs = [aligned_canvases(x0[i : i + 1], x1[i : i + 1], shift, margin, fills_from_partner(move))
             for i, (shift, move) in enumerate(zip(shifts, moves, strict=True))]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]), margin


def fills_from_partner(move: CameraMove | None) -> bool:
    """Whether the move explains the pair so well (``EXACT_MISFIT``) that the strip one frame's
    shift uncovers is best filled with the other frame's pixels (see ``aligned_canvases``)."""
    return move is not None and move.misfit <= EXACT_MISFIT


def aligned_canvases(x0: Tensor, x1: Tensor, shift: tuple[int, int], margin: tuple[int, int],
                     from_partner: bool = False) -> tuple[Tensor, Tensor]:
    """``x0`` moved by ``shift`` and ``x1`` by minus it, each on a canvas ``margin`` larger.

    The strip a frame's shift uncovers is filled by repeating its edge pixels; with
    ``from_partner``, with the other frame's pixels where it has some (in the middle frame's
    window it always does). Why (RESULTS, "Pre-alignment"): repeated edges beat mirrored ones (the
    model's own padding) on every pair tried, mirrored ones most of all on a clean pan, where the
    model blends the mirror into the strip; the other frame's pixels are exact for a clean pan, but
    where the move explains the frames only roughly (parallax, rotation) the model copies them
    instead of bridging the rest of the motion, and does worse there and inside the frame."""
    canvas0, canvas1 = shifted_canvas(x0, shift, margin), shifted_canvas(x1, (-shift[0], -shift[1]), margin)
    if not from_partner:
        return canvas0, canvas1
    own0 = _content_mask(x0.shape[-2:], shift, margin, x0.device)
    own1 = _content_mask(x1.shape[-2:], (-shift[0], -shift[1]), margin, x1.device)
    return torch.where(own0 | ~own1, canvas0, canvas1), torch.where(own1 | ~own0, canvas1, canvas0)


def shifted_canvas(x: Tensor, shift: tuple[int, int], margin: tuple[int, int]) -> Tensor:
    """``x`` (..., H, W) on a canvas ``margin`` (x, y) px larger on every side, its content moved by
    ``shift`` (x, y) (|shift| <= margin), the rest its edge pixels repeated. A copy by index: on a
    GPU it queues work and never waits for it."""
    (sx, sy), (mx, my) = shift, margin
    if abs(sx) > mx or abs(sy) > my:
        raise ValueError(f"shift {shift} does not fit a margin of {margin}")
    h, w = x.shape[-2:]
    rows = (torch.arange(h + 2 * my, device=x.device) - (my + sy)).clamp(0, h - 1)
    cols = (torch.arange(w + 2 * mx, device=x.device) - (mx + sx)).clamp(0, w - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def _content_mask(size: torch.Size, shift: tuple[int, int], margin: tuple[int, int], device: torch.device) -> Tensor:
    """(H', W') bool: where a canvas made with ``shift`` and ``margin`` holds the frame's own pixels."""
    (h, w), (sx, sy), (mx, my) = size, shift, margin
    rows = torch.arange(h + 2 * my, device=device) - (my + sy)
    cols = torch.arange(w + 2 * mx, device=device) - (mx + sx)
    return ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]


def crop_canvas(x: Tensor, margin: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """The (H, W) = ``size`` window of a canvas made with ``margin`` (x, y)."""
    (mx, my), (h, w) = margin, size
    return x[..., my : my + h, mx : mx + w]


def pair_disagreement(frame0: Tensor, frame1: Tensor) -> Tensor:
    """(B, 1, H, W): how far a candidate's two inputs (B, C, H, W, RGB first, model units) differ
    at each pixel, the mean absolute difference of their RGB."""
    return (frame0[:, :3] - frame1[:, :3]).abs().mean(dim=1, keepdim=True)


def fuse_candidates(plain: Tensor, aligned: Tensor, plain_disagreement: Tensor,
                    aligned_disagreement: Tensor) -> Tensor:
    """The in-between made from the unshifted pair and the one from the pre-aligned pair, blended
    pixel by pixel towards the candidate whose inputs agree better around that pixel.

    Why: a shift explains the parts of the picture that move with the camera and nothing else (a
    subject the camera follows, a layer at another depth). Where it explains the neighbourhood, the
    pre-aligned inputs agree there and the model only bridges what is left; where it does not, the
    unshifted inputs agree better and the plain candidate is kept. The weight of each is the
    inverse square of its disagreement, Gaussian-blurred over ``FUSE_SIGMA`` px (about the
    model's reach at 1/32 scale and a little less than an object's size in a typical plate), so the
    seams follow what moves rather than single pixels. Judged on footage outside the eval sets
    (bench/RESULTS.md, "Fused pre-alignment"): the fusion loses far less than the pre-aligned
    candidate alone where the move is wrong for the subject, and keeps most of its gain where it
    is right (a clean pan keeps the pre-aligned pixels: its inputs agree exactly)."""
    weight_plain = (_gaussian_blur(plain_disagreement, FUSE_SIGMA) + FUSE_FLOOR) ** -2
    weight_aligned = (_gaussian_blur(aligned_disagreement, FUSE_SIGMA) + FUSE_FLOOR) ** -2
    return (weight_plain * plain + weight_aligned * aligned) / (weight_plain + weight_aligned)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, 1, H, W), edges repeated."""
    radius = max(1, round(3 * sigma))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma * sigma))
    kernel = (kernel / kernel.sum()).to(x.dtype)
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1))
