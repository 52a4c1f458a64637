# SPDX-License-Identifier: MIT
"""Where do the in-betweens miss? Error of our model and of the flow baseline by motion size.

    python tools/error_by_motion.py ../shared/data/eval/middlebury_other [--names Urban2 Grove3]

For each triplet: the motion of every pixel (|DIS flow frame0 -> frame2|, in pixels of the
stored frames) sorts the pixels into bins, and per bin the 8-bit RGB error of each method is
summed. The summary says which motions hold the error, and where our model loses to flow: a
training decision (the training cache is downscaled to a short side of 288, so its motions are
2-2.5x smaller than the footage's). A 24-pixel frame border is its own bin (pixels entering or
leaving the frame). The eval's conventions: 8-bit RGB, rounded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldmvfi_core.eval.baselines import dis_flows, flow_baseline
from ldmvfi_core.eval.run import find_triplets, load_triplet, to_uint8

BINS = (0.0, 4.0, 10.0, 20.0, float("inf"))  # motion frame0 -> frame2, pixels
BORDER = 24


def bin_labels(bins: Sequence[float] = BINS, border: int = BORDER) -> list[str]:
    return [f"{lo:g}-{hi:g} px" if np.isfinite(hi) else f">= {lo:g} px" for lo, hi in itertools.pairwise(bins)] + [
        f"border {border} px"]


def bin_masks(motion: np.ndarray, bins: Sequence[float] = BINS, border: int = BORDER) -> list[np.ndarray]:
    """Disjoint masks covering every pixel: one per motion bin (inside the border), then the border."""
    edge = np.zeros(motion.shape, bool)
    edge[:border], edge[-border:], edge[:, :border], edge[:, -border:] = True, True, True, True
    masks = [(motion >= lo) & (motion < hi) & ~edge for lo, hi in itertools.pairwise(bins)]
    return [*masks, edge]


def squared_error_by_bin(pred_u8: np.ndarray, gt_u8: np.ndarray, masks: Sequence[np.ndarray]) -> list[float]:
    """Sum of squared 8-bit errors (over RGB) inside each mask."""
    err = (pred_u8.astype(np.float64) - gt_u8.astype(np.float64)) ** 2
    per_pixel = err.sum(axis=2)
    return [float(per_pixel[m].sum()) for m in masks]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="a folder of triplets (frame0/1/2.png), e.g. ../shared/data/eval/middlebury_other")
    p.add_argument("--names", nargs="*", help="only these triplets")
    p.add_argument("--model", help="weights (default: the shipped model)")
    p.add_argument("--steps", type=int, default=0, help="DDIM steps (0: the model's own)")
    p.add_argument("--ensemble", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the per-triplet figures here")
    args = p.parse_args(argv)

    from ldmvfi_core.interpolate import Interpolator

    interp = Interpolator.load(args.model, ensemble=args.ensemble)
    labels = bin_labels()
    totals = {"ours": np.zeros(len(labels)), "flow": np.zeros(len(labels))}
    area = np.zeros(len(labels))
    rows = []
    for triplet in find_triplets(args.folder):
        if args.names and triplet.name not in args.names:
            continue
        f0, gt, f2 = load_triplet(triplet)  # uint8 RGB
        a, b = f0.astype(np.float32) / 255.0, f2.astype(np.float32) / 255.0
        forward, _ = dis_flows(f0, f2)
        masks = bin_masks(np.linalg.norm(forward, axis=2))
        ours = interp.interpolate(a, b, steps=args.steps or None, seed=0)
        preds = {"ours": to_uint8(ours, gt, "ours", triplet), "flow": flow_baseline(f0, f2)}
        row: dict[str, object] = {"name": triplet.name, "pixels": int(gt.shape[0] * gt.shape[1])}
        for method, pred in preds.items():
            sums = squared_error_by_bin(pred, gt, masks)
            totals[method] += sums
            row[method] = dict(zip(labels, sums, strict=True))
        area += [m.sum() for m in masks]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| motion frame0 -> frame2 | share of pixels | ours: share of squared error | ours RMSE | "
          "flow RMSE | ours - flow, squared error (share of the total gap) |")
    print("|---|---|---|---|---|---|")
    gap = totals["ours"].sum() - totals["flow"].sum()
    for i, label in enumerate(labels):
        n = max(area[i], 1) * 3
        print(f"| {label} | {area[i] / area.sum():.3f} | {totals['ours'][i] / totals['ours'].sum():.2f} | "
              f"{np.sqrt(totals['ours'][i] / n):.2f} | {np.sqrt(totals['flow'][i] / n):.2f} | "
              f"{(totals['ours'][i] - totals['flow'][i]) / gap if gap else 0:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"labels": labels, "triplets": rows}, indent=1))


if __name__ == "__main__":
    main()
