# SPDX-License-Identifier: MIT
"""The self-ensemble (``Interpolator(ensemble=N)``, ``--ensemble N``) against the same views
computed by hand with the plain model: reversal, mirrors, transposes, padding and batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ldmvfi_core.ensemble import ALL_VIEWS, check_ensemble, orient, orientations_for, unorient, views_for
from ldmvfi_core.interpolate import Interpolator, stack_prepared
from tests.conftest import TINY

WEIGHTS = TINY / "weights.safetensors"
STEPS = 4


def _pair(height: int = 40, width: int = 56) -> tuple[np.ndarray, np.ndarray]:
    """A textured frame and the same moved 3 px right and 1 px down: no symmetry anywhere, and a
    size the tiny model pads unevenly and differently once transposed (so a view that forgot the
    padding would show)."""
    rng = np.random.default_rng(7)
    a = rng.random((height, width, 3), dtype=np.float32)
    return a, np.roll(a, (1, 3), axis=(0, 1))


def _by_hand(a: np.ndarray, b: np.ndarray, size: int, seed: int = 5) -> np.ndarray:
    """The mean of the ensemble's views, each run through the plain model and undone by hand
    (averaged unclamped, in the model's units, as the ensemble does; then clamped once)."""
    plain = Interpolator.load(WEIGHTS)
    outs = []
    for view in views_for(size):
        how = view.orientation
        flip = tuple(axis for name, axis in (("y", 0), ("x", 1)) if name in how)  # H x W x C arrays

        def turn(f: np.ndarray, flip: tuple[int, ...] = flip, how: str = how) -> torch.Tensor:
            f = np.flip(f, flip)
            return torch.from_numpy(np.ascontiguousarray(f.transpose(1, 0, 2) if "t" in how else f))

        first, second = (turn(b), turn(a)) if view.reverse else (turn(a), turn(b))
        out = plain.interpolate_prepared(plain.prepare(first), plain.prepare(second), steps=STEPS, seed=seed)
        out = out[0].permute(1, 2, 0).numpy()
        outs.append(np.flip(out.transpose(1, 0, 2) if "t" in how else out, flip))
    return np.clip((np.mean(outs, axis=0) + 1.0) / 2.0, 0.0, 1.0)


def test_views_come_in_order_of_cost_and_bad_sizes_are_refused() -> None:
    assert views_for(1) == ALL_VIEWS[:1] and not views_for(1)[0].reverse
    assert [v.reverse for v in views_for(2)] == [False, True]  # reversal first: no extra encodes
    assert orientations_for(1) == orientations_for(2) == ()
    assert orientations_for(4) == ("x",)
    assert orientations_for(8) == ("x", "y", "xy")
    assert orientations_for(16) == ("x", "y", "xy", "t", "xt", "yt", "xyt")
    assert len(set(ALL_VIEWS)) == 16
    for bad in (0, 3, 32):
        with pytest.raises(ValueError, match="--ensemble must be one of 1, 2, 4, 8, 16"):
            check_ensemble(bad)


def test_orientations_are_the_eight_symmetries_of_the_grid_and_undo() -> None:
    x = torch.arange(24.0).reshape(1, 2, 3, 4)
    assert torch.equal(orient(x, ""), x)
    assert torch.equal(orient(x, "x")[..., 0], x[..., -1])
    assert torch.equal(orient(x, "y")[..., 0, :], x[..., -1, :])
    assert torch.equal(orient(x, "xy"), x.flip(-1).flip(-2))
    assert torch.equal(orient(x, "t"), x.transpose(-1, -2))
    assert torch.equal(orient(x, "xt"), torch.rot90(x, 1, (-2, -1)))  # mirror then transpose: a quarter turn
    turned = {tuple(orient(x, v.orientation).flatten().tolist()) for v in ALL_VIEWS}
    assert len(turned) == 8  # all different
    for view in ALL_VIEWS:
        assert torch.equal(unorient(orient(x, view.orientation), view.orientation), x)


@pytest.mark.parametrize("size", [2, 16])  # 16: every view; 4 and 8 are its prefixes
def test_an_ensemble_is_the_mean_of_its_views_run_one_by_one(size: int) -> None:
    a, b = _pair()
    ensemble = Interpolator.load(WEIGHTS, ensemble=size).interpolate(a, b, steps=STEPS, seed=5)
    np.testing.assert_allclose(ensemble, _by_hand(a, b, size), atol=2e-6, rtol=0)


def test_ensemble_one_is_the_model_alone_and_views_differ() -> None:
    a, b = _pair()
    plain = Interpolator.load(WEIGHTS).interpolate(a, b, steps=STEPS, seed=5)
    assert np.array_equal(Interpolator.load(WEIGHTS, ensemble=1).interpolate(a, b, steps=STEPS, seed=5), plain)
    # the views really are different estimates (else the ensemble would be a costly no-op)
    assert np.abs(_by_hand(a, b, 4) - plain).max() > 1e-3


def test_a_batch_of_prepared_frames_matches_each_item_alone() -> None:
    """As ``ldmvfi retime --batch`` calls it: frames prepared once (with their mirrored views),
    stacked, interpolated together, decoded one at a time (turned views sliced along)."""
    interp = Interpolator.load(WEIGHTS, ensemble=4)
    a, b = _pair()
    c = np.roll(b, 2, axis=1)
    pa, pb, pc = (interp.prepare(torch.from_numpy(f)) for f in (a, b, c))
    both = interp.interpolate_prepared(stack_prepared([pa, pb]), stack_prepared([pb, pc]), steps=STEPS, seed=[5, 6])
    for i, (left, right, seed) in enumerate([(pa, pb, 5), (pb, pc, 6)]):
        alone = interp.interpolate_prepared(left, right, steps=STEPS, seed=seed)
        np.testing.assert_allclose(both[i:i + 1].numpy(), alone.numpy(), atol=2e-5, rtol=0)


def test_a_frame_prepared_without_its_mirrors_is_refused_by_name() -> None:
    a, b = _pair()
    plain = Interpolator.load(WEIGHTS)
    pa, pb = plain.prepare(torch.from_numpy(a)), plain.prepare(torch.from_numpy(b))
    with pytest.raises(ValueError, match="prepared without its 'x' view"):
        Interpolator.load(WEIGHTS, ensemble=4).interpolate_prepared(pa, pb, steps=STEPS)


def test_extra_channels_are_averaged_with_the_views_too() -> None:
    """Alpha and AOVs go through every view and come back turned back: a constant channel stays
    constant, and a left-to-right ramp stays a left-to-right ramp."""
    a, b = _pair()
    ramp = np.broadcast_to(np.linspace(0.0, 5.0, a.shape[1], dtype=np.float32), a.shape[:2])
    a4 = np.dstack([a, np.full(a.shape[:2], 0.75, np.float32), ramp])
    b4 = np.dstack([b, np.full(b.shape[:2], 0.75, np.float32), ramp])
    out = Interpolator.load(WEIGHTS, ensemble=16).interpolate(a4, b4, steps=STEPS, seed=5)
    np.testing.assert_allclose(out[..., 3], 0.75, atol=1e-5)
    interior = out[8:-8, 8:-8, 4]
    assert np.all(np.diff(interior, axis=1) > 0)  # still increasing to the right
