# SPDX-License-Identifier: MIT
"""Pre-alignment on the camera move: the estimate against known moves, the gate, the canvas, and
the shipped model on an exact pan, where pre-aligning must bring the in-betweens nearer the truth."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ldmvfi_core.interpolate import Interpolator
from ldmvfi_core.io.colour import encode_transfer
from ldmvfi_core.io.exr import read_exr
from ldmvfi_core.io.sequence import parse_pattern
from ldmvfi_core.prealign import (
    MIN_MOTION,
    CameraMove,
    aligned_canvases,
    camera_move,
    crop_canvas,
    fills_from_partner,
    fuse_candidates,
    misfit,
    pair_disagreement,
    phase_correlation,
    shifted_canvas,
)
from ldmvfi_core.retime.moves import PairMoves
from ldmvfi_core.retime.runner import RetimeOptions, run_retime
from ldmvfi_core.retime.sources import ColourSettings, SourcePlate
from tests.conftest import TINY
from tests.textures import value_noise
from tests.unit.test_retime import write_plate_frame

SAMPLE = Path(__file__).resolve().parents[2] / "ldmvfi_core" / "samples" / "bbb"


def _scene(seed: int = 0) -> np.ndarray:
    """A wide textured picture (float in [0, 1]) to cut frames out of."""
    rng = np.random.default_rng(seed)
    return (0.6 * value_noise(rng, 240, 400, cell=8) + 0.4 * value_noise(rng, 240, 400, cell=32)).astype(np.float32)


def _cut(scene: np.ndarray, x: int, y: int, w: int = 256, h: int = 160) -> np.ndarray:
    return scene[y : y + h, x : x + w]


def test_phase_correlation_finds_a_known_move() -> None:
    scene = _scene()
    grey = scene.mean(axis=-1)
    # the camera moves right by 12 and up by 7: the picture moves left by 12 and down by 7
    dx, dy = phase_correlation(_cut(grey, 60, 40), _cut(grey, 72, 33))
    assert abs(dx - (-12)) < 0.1 and abs(dy - 7) < 0.1, (dx, dy)


def test_camera_move_is_kept_only_for_a_clear_move_of_min_motion_or_more() -> None:
    scene = _scene()
    still = camera_move(_cut(scene, 60, 40), _cut(scene, 60, 40))
    small = camera_move(_cut(scene, 60, 40), _cut(scene, 61, 40))
    slow = camera_move(_cut(scene, 60, 40), _cut(scene, 63, 40))
    pan = camera_move(_cut(scene, 60, 40), _cut(scene, 84, 40))
    assert still is None and small is None and 1 < MIN_MOTION <= 3
    assert slow is not None and slow.half_shift() == (-1, 0)  # 3 px: 1 each, the model bridges the rest
    assert pan is not None and abs(pan.dx + 24) < 0.1 and abs(pan.dy) < 0.1
    assert pan.half_shift() == (-12, 0) and pan.half_shift(0.5) == (-6, 0)


def test_a_zoom_a_turn_or_a_small_object_on_a_still_background_is_not_pre_aligned() -> None:
    scene = torch.from_numpy(_scene()).permute(2, 0, 1)[None]
    frame = _cut(_scene(), 60, 40)
    # a 25% zoom about the centre: no one move explains it
    zoomed = F.interpolate(scene[..., 40:200, 60:316], scale_factor=1.25, mode="bilinear", align_corners=False)
    top, left = (zoomed.shape[-2] - 160) // 2, (zoomed.shape[-1] - 256) // 2
    zoom = zoomed[0, :, top : top + 160, left : left + 256].permute(1, 2, 0).numpy()
    assert camera_move(frame, zoom) is None
    # a pan with a 4-degree turn: the best shift explains almost nothing (misfit ~1.1)
    turn = math.radians(4)
    theta = torch.tensor([[[math.cos(turn), -math.sin(turn), 0.1], [math.sin(turn), math.cos(turn), 0.0]]])
    turned = F.grid_sample(scene, F.affine_grid(theta, list(scene.shape), align_corners=False), align_corners=False,
                           padding_mode="border")
    assert camera_move(frame, turned[0, :, 40:200, 60:316].permute(1, 2, 0).numpy()) is None
    # a 40x40 patch moves 30 px over a still frame: the still background wins
    moved = frame.copy()
    moved[60:100, 130:170] = frame[60:100, 100:140]
    assert camera_move(frame, moved) is None


def test_misfit_is_one_unshifted_and_near_zero_for_the_true_shift() -> None:
    grey = _scene().mean(axis=-1)
    a, b = _cut(grey, 60, 40), _cut(grey, 80, 40)
    assert misfit(a, b, 0, 0) == pytest.approx(1.0)
    assert misfit(a, b, -20, 0) < 0.01
    assert misfit(a, b, 20, 0) > 1.0


def test_canvas_repeats_the_edges_and_crops_back_to_the_moved_frame() -> None:
    x = torch.rand(2, 3, 20, 30)
    assert torch.equal(shifted_canvas(x, (0, 0), (4, 3)), F.pad(x, (4, 4, 3, 3), mode="replicate"))
    canvas = shifted_canvas(x, (2, -1), (4, 3))
    assert canvas.shape == (2, 3, 26, 38)
    window = crop_canvas(canvas, (4, 3), (20, 30))
    # content moved right by 2 and up by 1
    assert torch.equal(window[..., :-1, 2:], x[..., 1:, :-2])
    with pytest.raises(ValueError, match="does not fit"):
        shifted_canvas(x, (5, 0), (4, 3))


def test_uncovered_strips_take_the_partners_pixels_only_for_a_move_that_explains_the_pair() -> None:
    scene = torch.from_numpy(_scene()).permute(2, 0, 1)[None]
    left, right = scene[..., 40:200, 60:316], scene[..., 40:200, 84:340]  # a clean 24-px pan
    middle = scene[..., 40:200, 72:328]
    repeated = aligned_canvases(left, right, (-12, 0), (12, 0))
    filled = aligned_canvases(left, right, (-12, 0), (12, 0), from_partner=True)
    window = [crop_canvas(c, (12, 0), (160, 256)) for c in (*repeated, *filled)]
    assert torch.equal(window[2], middle) and torch.equal(window[3], middle)
    # without the fill, each frame's uncovered strip repeats its own edge column
    assert torch.equal(window[0][..., :-12], middle[..., :-12])
    assert torch.equal(window[0][..., -12:], left[..., -1:].expand(-1, -1, -1, 12))
    pan = camera_move(_cut(_scene(), 60, 40), _cut(_scene(), 84, 40))
    assert pan is not None and pan.misfit < 0.01 and fills_from_partner(pan)
    rough = CameraMove(-24.0, 0.0, misfit=0.5)
    assert not fills_from_partner(rough) and not fills_from_partner(None)


def test_fusion_keeps_each_candidate_where_its_own_inputs_agree() -> None:
    """Left half: the pre-aligned inputs agree (the move explains it) and the unshifted ones do
    not; right half: the other way round. Far from the seam each half must be its own candidate's,
    and where both agree equally the fusion is their mean."""
    h, w = 64, 160
    plain, aligned = torch.zeros(1, 3, h, w), torch.ones(1, 3, h, w)
    unexplained = torch.zeros(1, 1, h, w)
    unexplained[..., : w // 2] = 0.5
    fused = fuse_candidates(plain, aligned, unexplained, unexplained.flip(-1))
    assert torch.all(fused[..., :24] > 0.999) and torch.all(fused[..., -24:] < 0.001)
    assert torch.all(fused[..., 1:] <= fused[..., :-1] + 1e-6)  # one seam, no ringing
    tied = fuse_candidates(plain, aligned, torch.full((1, 1, h, w), 0.2), torch.full((1, 1, h, w), 0.2))
    torch.testing.assert_close(tied, torch.full_like(tied, 0.5))
    pair = torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8)
    torch.testing.assert_close(pair_disagreement(*pair), (pair[0][:, :3] - pair[1][:, :3]).abs().mean(1, keepdim=True))


def test_interpolator_leaves_a_still_pair_alone_and_keeps_a_moving_pairs_size() -> None:
    scene = _scene()
    plain = Interpolator.load(TINY / "weights.safetensors")
    aligned = Interpolator.load(TINY / "weights.safetensors", prealign=True)
    f0, f1 = _cut(scene, 60, 40), _cut(scene, 61, 40)
    assert np.array_equal(plain.interpolate(f0, f1, steps=2), aligned.interpolate(f0, f1, steps=2))
    f1 = _cut(scene, 90, 40)
    seen: list[int] = []
    moved = aligned.interpolate(f0, f1, steps=2, callback=lambda step: seen.append(step.index))
    assert moved.shape == f0.shape and seen == [0, 1, 0, 1]  # the unshifted pass, then the pre-aligned one
    assert np.abs(moved - plain.interpolate(f0, f1, steps=2)).max() > 1e-3


def _sample_pan(folder: Path, step: int, count: int) -> Path:
    """A pan of ``step`` px a frame (the picture moves left) cut from the bundled sample's first
    frame, 256x180, scene-linear; returns the pattern."""
    source = read_exr(SAMPLE / "bbb.1001.exr").pixels[..., :3]
    folder.mkdir()
    for i in range(count):
        rgb = source[:, i * step : i * step + 256]
        write_plate_frame(folder / f"pan.{1001 + i}.exr", rgb, size=(256, 180))
    return folder / "pan.####.exr"


def test_shipped_model_retimes_an_exact_pan_nearer_the_truth_when_pre_aligned(tmp_path: Path) -> None:
    """Two source frames 24 px apart, three in-betweens: the true ones are the cuts at 6, 12 and
    18 px. Pre-aligned, every recursion level gets its share of the move (12 px for the middle,
    6 for the quarters), both inputs show the picture where the in-between has it, and the strips
    a shift uncovers take the other frame's pixels (the move explains this pair exactly): each
    in-between must come out far closer to the truth than the model does bridging the whole move.
    The fusion with the unshifted candidate must keep that: the pre-aligned inputs agree exactly."""
    source = read_exr(SAMPLE / "bbb.1001.exr").pixels[..., :3]
    pattern = _sample_pan(tmp_path / "pan", 24, 2)
    errors: dict[bool, list[float]] = {}
    for prealign in (False, True):
        out = tmp_path / f"out_{prealign}"
        run_retime(RetimeOptions(input=str(pattern), output=str(out / "rt.####.exr"), frames="1001-1002",
                                 factor=4, prealign=prealign))
        errors[prealign] = []
        for k, frame in enumerate((1002, 1003, 1004), start=1):
            made = read_exr(out / f"rt.{frame}.exr")
            truth = source[:, 6 * k : 6 * k + 256]
            errors[prealign].append(float(np.mean((made.pixels[..., :3] - truth) ** 2)))
        assert {name: value for name, _, value in made.attributes}["ldmvfi:prealign"] == int(prealign)
    for plain, aligned in zip(errors[False], errors[True], strict=True):
        assert aligned < 0.1 * plain, errors
    assert not [t for t in threading.enumerate() if t.name.startswith("ldmvfi-moves")]  # the run closed it


def test_a_pre_aligned_retime_is_the_same_in_any_chunking_and_batched(tmp_path: Path) -> None:
    """Pre-alignment is decided from the source pair alone, and a batch's items share one canvas:
    farm chunks must render the very frames a whole run does, and batching must stay close."""
    scene = _scene(3)
    folder = tmp_path / "pan"
    folder.mkdir()
    for i in range(3):  # 16 px a frame: pre-aligned, with shares of 8 and 4 px deeper down
        write_plate_frame(folder / f"pan.{1001 + i}.exr", scene[:160, 16 * i : 16 * i + 256], size=(256, 160))
    opts: dict[str, object] = dict(input=str(folder / "pan.####.exr"), model=str(TINY / "weights.safetensors"),
                                   steps=2, frames="1001-1003", factor=4, depth=2, prealign=True)

    def run(name: str, **more: object) -> Path:
        out = tmp_path / name
        run_retime(RetimeOptions(output=str(out / "rt.####.exr"), **opts, **more))  # type: ignore[arg-type]
        return out

    pan = camera_move(scene[:160, :256], scene[:160, 16:272])
    assert pan is not None and pan.half_shift() == (-8, 0) and pan.half_shift(0.5) == (-4, 0)

    whole = run("whole")
    chunked = tmp_path / "chunked"
    run_retime(RetimeOptions(output=str(chunked / "rt.####.exr"), output_frames="1006-1009", **opts))  # type: ignore[arg-type]
    run_retime(RetimeOptions(output=str(chunked / "rt.####.exr"), output_frames="1001-1005", **opts))  # type: ignore[arg-type]
    batched = run("batched", batch=2)
    for frame in range(1001, 1010):
        made = read_exr(whole / f"rt.{frame}.exr").pixels
        assert np.array_equal(made, read_exr(chunked / f"rt.{frame}.exr").pixels), frame
        # half-float frames: a tiny random model makes some values of ~100, where a half step is 0.06
        np.testing.assert_allclose(made, read_exr(batched / f"rt.{frame}.exr").pixels, atol=2e-3, rtol=2e-3)


def test_pair_moves_are_measured_ahead_on_their_own_thread_and_match_the_direct_measure(tmp_path: Path) -> None:
    """``PairMoves`` gives what ``camera_move`` gives on the plate's display-encoded frames, starts
    the next pairs when one is asked for, and its thread ends with ``close``."""
    scene = _scene(4)
    folder = tmp_path / "pan"
    folder.mkdir()
    for i in range(4):
        write_plate_frame(folder / f"pan.{1001 + i}.exr", scene[:160, 12 * i : 12 * i + 256], size=(256, 160))
    plate = SourcePlate(parse_pattern(str(folder / "pan.####.exr")), [1001, 1002, 1003, 1004],
                        colour=ColourSettings(transfer="hdr"))
    moves = PairMoves(plate, ahead=2)
    try:
        got = moves.move(1001, 1002)
        assert set(moves._moves) == {(1001, 1002), (1002, 1003), (1003, 1004)}
        stored = [read_exr(folder / f"pan.{1001 + i}.exr").pixels for i in range(4)]

        def direct(a: int, b: int) -> CameraMove | None:
            return camera_move(stored[a], stored[b], encode=lambda rgb: np.asarray(encode_transfer(rgb, "hdr")))

        assert got == direct(0, 1) and got is not None and abs(got.dx + 12) < 0.1
        assert moves.move(1003, 1004) == direct(2, 3)
        with pytest.raises(ValueError, match="frame 999 is not one of this plate's source frames"):
            plate.stored_later(999)
    finally:
        moves.close()
        plate.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ldmvfi-moves")]
