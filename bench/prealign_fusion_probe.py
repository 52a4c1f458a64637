# SPDX-License-Identifier: MIT
"""Probe (session 27): the in-between of each triplet's pair as it is ("plain") and pre-aligned on
its measured camera move whatever the gate says ("aligned"), and ways to combine the two per pixel.

    python bench/prealign_fusion_probe.py .carry/eval/middlebury_other runs/small_moves > probe.jsonl

One JSON line per triplet: the move and its misfit (``ldmvfi_core.prealign``), PSNR (8-bit, as
``ldmvfi eval``) of plain, aligned, the per-pixel oracle, the candidate whose inputs agree better
over a Gaussian neighbourhood of sigma 4 or 12 px (``hard``) or both weighted by the inverse square
of that disagreement (``soft``: what ``fuse_candidates`` does at 12), their plain mean
(``blend``), and how well the plain pair's disagreement follows the plain in-between's error
(``corr_plain``). The shipped model on the CPU, its own step count. bench/RESULTS.md, "Fused
pre-alignment", has what it found. (Its first version scored the decoder's warp disagreement
``|dsepconv(I0) - dsepconv(I1)|`` instead: it does not follow the error, correlation ~0.)"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import torch

from ldmvfi_core.eval.metrics import psnr
from ldmvfi_core.eval.run import find_triplets, load_triplet
from ldmvfi_core.interpolate import Interpolator
from ldmvfi_core.prealign import _gaussian_blur as blur  # the fusion's own blur
from ldmvfi_core.prealign import aligned_canvases, camera_move, crop_canvas

interp = Interpolator.load(None, device="cpu")


def run(x0: torch.Tensor, x1: torch.Tensor, shift: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(middle in [0,1] (1,3,H,W), the inputs' disagreement (1,1,H,W)) with the pair shifted by +-shift."""
    h, w = x0.shape[-2:]
    margin = (abs(shift[0]), abs(shift[1]))
    a, b = (x0, x1) if margin == (0, 0) else aligned_canvases(x0, x1, shift, margin, False)
    f0, f1 = (interp.prepare_model_units(interp.to_model_units(x)) for x in (a, b))
    out = interp.interpolate_prepared(f0, f1, steps=None, eta=1.0, seed=0)
    out = crop_canvas(out, margin, (h, w))
    fit = (crop_canvas(a, margin, (h, w))[:, :3] - crop_canvas(b, margin, (h, w))[:, :3]).abs().mean(1, keepdim=True)
    return ((out[:, :3] + 1) / 2).clamp(0, 1), fit


def u8(x: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint(x[0].permute(1, 2, 0).numpy() * 255), 0, 255).astype(np.uint8)


rows = []
for root in sys.argv[1:]:
    for t in find_triplets(root):
        f0, gt, f2 = load_triplet(t)
        x0, x1 = (torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in (f0, f2))
        move = camera_move(f0, f2, min_motion=0.0, max_misfit=math.inf)  # whatever the gate would say
        assert move is not None
        dx, dy, fit, shift = move.dx, move.dy, move.misfit, move.half_shift()
        with torch.inference_mode():
            p, dp = run(x0, x1, (0, 0))
            if shift == (0, 0):
                a, da = p, dp
            else:
                a, da = run(x0, x1, shift)
        truth = torch.from_numpy(gt).permute(2, 0, 1)[None].float() / 255
        ep, ea = ((p - truth) ** 2).mean(1, keepdim=True), ((a - truth) ** 2).mean(1, keepdim=True)
        row = {"set": t.set_name, "name": t.key,
               "move": [round(dx, 1), round(dy, 1)], "misfit": round(fit, 3),
               "plain": psnr(u8(p), gt), "aligned": psnr(u8(a), gt),
               "oracle": psnr(u8(torch.where(ep <= ea, p, a)), gt)}
        for sigma in (4.0, 12.0):
            bp, ba = blur(dp, sigma), blur(da, sigma)
            row[f"hard{sigma:g}"] = psnr(u8(torch.where(bp <= ba, p, a)), gt)
            wp = 1 / (bp + 1e-3) ** 2
            wa = 1 / (ba + 1e-3) ** 2
            row[f"soft{sigma:g}"] = psnr(u8((wp * p + wa * a) / (wp + wa)), gt)
        row["blend"] = psnr(u8((p + a) / 2), gt)
        # how well disagreement predicts error within the plain output
        row["corr_plain"] = float(np.corrcoef(blur(dp, 4).flatten().numpy(), blur(ep, 4).flatten().numpy())[0, 1])
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

keys = [k for k in rows[0] if k not in ("set", "name", "move", "misfit")]
print("MEAN", {k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys})
