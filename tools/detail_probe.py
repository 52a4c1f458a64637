# SPDX-License-Identifier: MIT
"""Is the model's output blurred, or is its detail in the wrong place? Per triplet, against flow.

    python tools/detail_probe.py ../shared/data/eval/middlebury_other --names Venus,Urban2

For each triplet (frame0/frame1/frame2 PNGs, frame1 the truth), the model's in-between (``--model``,
default the shipped one, its own step count) and the DIS flow baseline are compared with the truth:

* ``detail``: the Laplacian energy of the grey image over the truth's (1 = as much fine detail
  as the truth; below 1 = softer);
* ``error_low`` / ``error_high``: the mean squared error split by a Gaussian low-pass (sigma 2 px)
  into a smooth part (colour, exposure, large misplacement) and the rest (fine detail: missing,
  or present but shifted).

Blur shows as low ``detail`` with a high ``error_high``; misplaced detail as ``detail`` at or above
flow's with a higher ``error_high`` (session 9's finding for the shipped model on Middlebury).

``placement`` (px) says where each method samples the neighbours, against DIS flow from the *true*
middle frame to each neighbour (the training's flow teacher, ``train/flow_teacher.py``, with its
confidence weights): for ours the tap-weighted centroid of each warp (``warp_centroid``), for the
flow baseline its flow to the middle. Mean L1 over both neighbours, weighted as the
``--flow-centroid`` training term weighs it. One JSON line per triplet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ldmvfi_core.eval.baselines import dis_flows, flow_baseline, require_opencv  # noqa: E402
from ldmvfi_core.eval.run import find_triplets, load_triplet  # noqa: E402
from ldmvfi_core.interpolate import Interpolator  # noqa: E402
from ldmvfi_core.train.flow_teacher import DisFlow, flow_centroid_loss, teacher_for  # noqa: E402


def detail_energy(image: np.ndarray) -> float:
    cv2 = require_opencv()
    grey = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY)
    return float((cv2.Laplacian(grey, cv2.CV_32F) ** 2).mean())


def error_split(image: np.ndarray, truth: np.ndarray, sigma: float = 2.0) -> tuple[float, float]:
    """Mean squared error of ``image`` against ``truth``: of its smooth part (Gaussian low-pass), of the rest."""
    cv2 = require_opencv()
    error = image.astype(np.float32) - truth.astype(np.float32)
    low = cv2.GaussianBlur(error, (0, 0), sigma)
    return float((low**2).mean()), float(((error - low) ** 2).mean())


def placement_px(model: Interpolator, frames: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(ours, flow baseline): weighted mean L1 (px) of where each samples the neighbours, against
    the flow teacher (DIS from the true middle frame)."""
    f0, _, f2 = frames
    teacher = torch.from_numpy(teacher_for(np.stack(frames), DisFlow()))[None]  # (1, 2, 3, H, W)
    height, width = f0.shape[:2]
    p0, p2 = model.prepare(f0), model.prepare(f2)
    with torch.inference_mode():
        z = model.sample_prepared(p0, p2, seed=0)
        heads = model.model.first_stage_model.predict_heads(
            model.model.first_stage_model.quantize_latent(z)[0], p0.encoded.pyramid, p2.encoded.pyramid)
        cropped = type(heads)(**{k: v[..., :height, :width].float().cpu() for k, v in heads.as_dict().items()})
        ours = float(flow_centroid_loss(cropped, teacher))
    f02, f20 = dis_flows(f0, f2)
    to_middle = (f20 - f02) * 0.25  # the flow baseline's flow from the middle to frame0, (x, y)
    errors = []
    for slot, flow in ((0, to_middle), (1, -to_middle)):
        t = teacher[0, slot].numpy()
        weight = t[2]
        error = np.abs(flow[..., 1] - t[0]) + np.abs(flow[..., 0] - t[1])
        errors.append(((error * weight).sum(), weight.sum()))
    return ours, float(sum(e for e, _ in errors) / max(sum(w for _, w in errors), 1.0))


def probe(name: str, frames: tuple[np.ndarray, np.ndarray, np.ndarray], model: Interpolator) -> dict[str, object]:
    """``frames``: frame0, truth, frame2 as uint8 RGB (``load_triplet``); compared as 8-bit values / 255."""
    f0, truth8, f2 = frames
    ours = np.rint(np.clip(model.interpolate(f0, f2, seed=0), 0.0, 1.0) * 255.0) / 255.0
    flow = flow_baseline(f0, f2).astype(np.float32) / 255.0
    truth = truth8.astype(np.float32) / 255.0
    row: dict[str, object] = {"triplet": name}
    for label, image in (("ours", ours), ("flow", flow)):
        low, high = error_split(image, truth)
        row[f"{label}_detail"] = round(detail_energy(image) / detail_energy(truth), 3)
        row[f"{label}_error_low"], row[f"{label}_error_high"] = float(f"{low:.3g}"), float(f"{high:.3g}")
    row["ours_placement_px"], row["flow_placement_px"] = (round(v, 3) for v in placement_px(model, frames))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder of triplet folders (one set of ../shared/data/eval)")
    parser.add_argument("--names", default="", help="comma-separated triplet names (default: all)")
    parser.add_argument("--model", default=None, help="weights (default: the shipped model)")
    args = parser.parse_args()
    model = Interpolator.load(args.model)
    wanted = {n for n in args.names.split(",") if n}
    for triplet in find_triplets(args.folder):
        if not wanted or triplet.name in wanted:
            print(json.dumps(probe(triplet.key, load_triplet(triplet), model)), flush=True)


if __name__ == "__main__":
    main()
