# SPDX-License-Identifier: MIT
"""How far is the fast path from the float32 reference path? (issue 8: "within bf16 rounding")

    python3 bench/fast_path_accuracy.py --config released --device cuda --out accuracy.json

Reference: ``Interpolator(dtype=float32, cuda_graphs=False)`` (the path that reproduces the
official vectors). Compared: float32 with CUDA graphs, and bfloat16 with CUDA graphs (pre-cast
weights, channels-last U-Net); with ``--compile`` also bfloat16 with CUDA graphs and
``torch.compile`` (the U-Net, and on a GPU the encoder and decoder). Same seeded random weights,
same seed, 2 frame pairs: a smooth random texture shifted by 8 px, and the bundled Big Buck Bunny
plate (frames 1001 and 1003, through the default hdr transfer). Reports max and mean absolute
error of the decoded frame (RGB in [0, 1]) and of the final latent, for 10 DDIM steps (eta 1:
the noise path is exercised).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.speed import config_named
from ldmvfi_core.interpolate import Interpolator
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI

SAMPLE = Path(__file__).resolve().parents[1] / "ldmvfi_core" / "samples" / "bbb"


def frame_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    coarse = rng.random((40, 70, 3)).astype(np.float32)
    smooth = np.kron(coarse, np.ones((8, 8, 1), np.float32))  # 320x560
    pairs = {"random_texture_shift8": (smooth[:, :448], smooth[:, 8:456])}
    try:
        from ldmvfi_core.io.colour import encode_transfer
        from ldmvfi_core.io.exr import read_exr

        a, b = (read_exr(SAMPLE / f"bbb.{f}.exr").pixels[..., :3] for f in (1001, 1003))
        pairs["bbb_1001_1003"] = (encode_transfer(a, "hdr"), encode_transfer(b, "hdr"))
    except ImportError:  # no OpenImageIO on this machine: the texture pair only
        pass
    return pairs


def run(interp: Interpolator, a: np.ndarray, b: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    latents: list[torch.Tensor] = []

    def keep_latent(step) -> None:  # type: ignore[no-untyped-def]
        if step.index == step.total - 1:
            latents.append(step.x.detach().float().cpu())

    frame = interp.interpolate(a, b, steps=steps, eta=1.0, seed=0, callback=keep_latent)
    return np.asarray(frame, np.float32), latents[-1].numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="released")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also the compiled bfloat16 path")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    variants = {"float32_graphs": (torch.float32, True, False), "bfloat16_graphs": (torch.bfloat16, True, False)}
    if args.compile:
        variants["bfloat16_graphs_compiled"] = (torch.bfloat16, True, True)
    rows = []
    for name, (a, b) in frame_pairs().items():
        torch.manual_seed(0)
        weights = LatentDiffusionVFI(config_named(args.config)).eval().state_dict()

        def build(dtype: torch.dtype, graphs: bool, compiled: bool = False) -> Interpolator:
            model = LatentDiffusionVFI(config_named(args.config)).eval()
            model.load_state_dict(weights)  # noqa: B023 (built and used within this iteration)
            return Interpolator(model, device=args.device, dtype=dtype, cuda_graphs=graphs, compile=compiled)

        ref_frame, ref_latent = run(build(torch.float32, False), a, b, args.steps)
        for variant, (dtype, graphs, compiled) in variants.items():
            frame, latent = run(build(dtype, graphs, compiled), a, b, args.steps)
            row = {"pair": name, "size": f"{a.shape[1]}x{a.shape[0]}", "variant": variant,
                   "frame_max_abs": float(np.abs(frame - ref_frame).max()),
                   "frame_mean_abs": float(np.abs(frame - ref_frame).mean()),
                   "latent_max_abs": float(np.abs(latent - ref_latent).max()),
                   "latent_mean_abs": float(np.abs(latent - ref_latent).mean()),
                   "latent_rms": float(np.sqrt((ref_latent ** 2).mean()))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"config": args.config, "steps": args.steps, "device": args.device,
                                              "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
