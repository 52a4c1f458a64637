# SPDX-License-Identifier: MIT
"""Has the stage-1 autoencoder learned motion yet? Two quick probes for training decisions.

    # a checkpoint: translated images and the use of the middle-frame latent
    python tools/ae_probe.py check runs/s1/checkpoints/step_00004604.pt --data .carry/train_cache

    # a fresh autoencoder on random translations (L1 only): which learning rate learns motion
    python tools/ae_probe.py learn --data .carry/train_cache --lr 2e-4 --steps 500 --device cuda

``check`` prints, per shift d (pixels, horizontal and vertical, frame0 at -d, frame2 at +d), the
mean L1 of the decoded middle frame and of frame averaging on centre crops of the cache's middle
frames; and on the cache's real triplets the L1 of decoding with the true middle latent against
decoding with the mean of the two neighbour latents. A decoder that has learned to warp beats
averaging at every d > 0; one that uses its latent decodes better from the true latent.
``learn`` trains a fresh autoencoder of ``--config`` on random +-``--max-shift`` translations and
prints model and averaging L1 every 50 steps. L1 is in the model's [-1, 1] units.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldmvfi_core.model.checkpoint import AE_PREFIX
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.checkpoint import load_checkpoint
from ldmvfi_core.train.configs import model_config
from ldmvfi_core.train.data import TripletDataset
from ldmvfi_core.train.stage1 import Stage1Net, freeze_unused, init_autoencoder

MARGIN = 16  # reflection margin around a crop, so shifts up to this many pixels stay inside


def translated(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) middle frames -> (B, 3, 3, H, W) triplets: frame0 shifted by -d, frame2 by +d."""
    big = F.pad(images, (MARGIN,) * 4, mode="reflect")
    h, w = images.shape[-2:]
    out = []
    for k in range(images.shape[0]):
        y, x = int(dy[k]), int(dx[k])
        f1 = big[k, :, MARGIN:MARGIN + h, MARGIN:MARGIN + w]
        f0 = big[k, :, MARGIN - y:MARGIN - y + h, MARGIN - x:MARGIN - x + w]
        f2 = big[k, :, MARGIN + y:MARGIN + y + h, MARGIN + x:MARGIN + x + w]
        out.append(torch.stack([f0, f1, f2]))
    return torch.stack(out)


def _average_l1(frames: torch.Tensor) -> float:
    return float(((frames[:, 0] + frames[:, 2]) / 2 - frames[:, 1]).abs().mean())


def check(args: argparse.Namespace) -> None:
    state = load_checkpoint(Path(args.checkpoint))
    from ldmvfi_core.config import LDMVFIConfig

    model = LatentDiffusionVFI(LDMVFIConfig.from_official(state["config"]))
    ae = model.first_stage_model
    ae.load_state_dict({k[len(AE_PREFIX):]: v for k, v in state["model"].items() if k.startswith(AE_PREFIX)})
    ae.to(args.device).eval()
    net = Stage1Net(ae)
    data = TripletDataset(args.data, size=(args.crop, args.crop), train=False)
    picks = range(0, len(data), max(1, len(data) // args.count))
    triplets = torch.stack([data[i] for i in picks]).to(args.device)
    with torch.no_grad():
        for d in (0, 1, 2, 4, 8):
            n = triplets.shape[0]
            frames = translated(triplets[:, 1], torch.full((n,), d), torch.full((n,), d))
            rec = net(frames)[0]
            print(json.dumps({"probe": "shift", "d": d, "model_l1": round(float((rec - frames[:, 1]).abs().mean()), 4),
                              "average_l1": round(_average_l1(frames), 4)}), flush=True)
        f0, f1, f2 = triplets[:, 0], triplets[:, 1], triplets[:, 2]
        z0, phi0 = ae.encode(f0)
        z1, _ = ae.encode(f1)
        z2, phi2 = ae.encode(f2)
        decoded = ae.decode(z1, f0, f2, phi0, phi2)
        true_l1 = float((decoded - f1).abs().mean())
        mean_l1 = float((ae.decode((z0 + z2) / 2, f0, f2, phi0, phi2) - f1).abs().mean())
        codes = int(ae.quantize_latent(z1)[1].unique().numel())
        # Collapse check: how much the latent differs between frames at the same position, against
        # its spread over positions; and how much the decoded frame moves when the latent is zeroed.
        spread_frames = float(z1.std(dim=0).mean())
        spread_positions = float(z1.std(dim=(2, 3)).mean())
        zeroed = ae.decode(torch.zeros_like(z1), f0, f2, phi0, phi2)
        sensitivity = float((zeroed - decoded).abs().mean())
    print(json.dumps({"probe": "latent", "step": state["step"], "true_latent_l1": round(true_l1, 4),
                      "neighbour_mean_latent_l1": round(mean_l1, 4), "average_l1": round(_average_l1(triplets), 4),
                      "codes_used": codes, "latent_std_across_frames": round(spread_frames, 5),
                      "latent_std_across_positions": round(spread_positions, 5),
                      "decoded_change_when_latent_zeroed": round(sensitivity, 5),
                      "triplets": triplets.shape[0]}), flush=True)


def decode_eval(args: argparse.Namespace) -> None:
    """PSNR/SSIM on eval triplets of the autoencoder alone: decoding the true middle frame's latent
    (the best a perfect stage 2 could do) and the mean of the neighbours' latents, against frame
    averaging. Looks at the eval frames only; nothing is trained on them. ``--weights``: the
    weights export would write (the autoencoder's moving average where the run kept one), the
    last iterate (live), or both, one line per set and weights."""
    state = load_checkpoint(Path(args.checkpoint))
    for label, weights in _weight_sets(state, args.weights):
        for dataset, scores in _decode_scores(state, weights, args.eval_dir, args.device, args.latent,
                                              args.pad).items():
            print(json.dumps({"probe": "eval", "set": dataset, "step": state["step"], "weights": label,
                              **({"pad": args.pad} if args.pad else {}),
                              **{k: round(float(np.mean(v)), 4) for k, v in scores.items()}}), flush=True)


def _weight_sets(state: dict, choice: str) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """``(label, inference tensors)`` to score: "live" and/or "ema" (only where the run kept an average)."""
    from ldmvfi_core.train.ema import holds_shadow
    from ldmvfi_core.train.loop import checkpoint_inference_state

    live = ("live", state["model"])
    if not holds_shadow(state.get("ema"), AE_PREFIX):
        return [live]
    ema = ("ema", checkpoint_inference_state(state))
    return {"export": [ema], "live": [live], "both": [live, ema]}[choice]


def _reflect_pad(image: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad else image


def _decode_scores(state: dict, weights: dict[str, torch.Tensor], eval_dir: str, device: str,
                   latent: str = "both", pad: int = 0) -> dict[str, dict[str, list[float]]]:
    """``pad``: reflect the input frames by that many pixels on every side and crop the decoded
    frame back: the model then meets another attention geometry (its grid attention spreads over
    the whole input; session 24 scored 256-px UCF101 frames padded to 512)."""
    from ldmvfi_core.config import LDMVFIConfig
    from ldmvfi_core.eval.baselines import frame_average
    from ldmvfi_core.eval.metrics import psnr, ssim
    from ldmvfi_core.eval.run import find_triplets, load_triplet, to_uint8
    from ldmvfi_core.interpolate import Interpolator

    model = LatentDiffusionVFI(LDMVFIConfig.from_official(state["config"]))
    model.load_state_dict(weights, strict=False)  # the stage-1 checkpoint holds the autoencoder only
    interp = Interpolator(model.eval(), device=device)
    sums: dict[str, dict[str, list[float]]] = {}
    for triplet in find_triplets(eval_dir):
        f0, truth, f2 = load_triplet(triplet)
        p0, p2 = (interp.prepare(_reflect_pad(f, pad).astype(np.float32) / 255.0) for f in (f0, f2))
        preds: dict[str, np.ndarray] = {"average": frame_average(f0, f2)}  # rounded as ldmvfi eval rounds it
        latents = {}
        if latent in ("true", "both"):  # the truth is encoded only when its latent is decoded
            latents["true_latent"] = interp.prepare(_reflect_pad(truth, pad).astype(np.float32) / 255.0).encoded.latent
        if latent in ("neighbour_mean", "both"):
            latents["neighbour_mean_latent"] = (p0.encoded.latent + p2.encoded.latent) / 2
        with torch.no_grad():
            for name, z in latents.items():
                out = p0.padding.crop(model.decode(z, p0.encoded, p2.encoded))[0]
                pred = (out[:3].permute(1, 2, 0).float().cpu().numpy() + 1.0) / 2.0
                preds[name] = pred[pad:-pad, pad:-pad] if pad else pred
        scores = sums.setdefault(triplet.set_name, {})
        for name, pred in preds.items():
            u8 = to_uint8(pred, truth, name, triplet)
            scores.setdefault(f"{name}_psnr", []).append(psnr(u8, truth))
            scores.setdefault(f"{name}_ssim", []).append(ssim(u8, truth))
    return sums


def learn(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    data = TripletDataset(args.data, size=(args.crop, args.crop), train=True, seed=args.seed)
    images = torch.stack([data[i][1] for i in range(len(data))]).to(args.device)
    model = LatentDiffusionVFI(model_config(args.config))
    ae = model.first_stage_model
    init_autoencoder(ae)
    freeze_unused(ae)
    ae.to(args.device).train()
    net = Stage1Net(ae)
    opt = torch.optim.Adam([p for p in ae.parameters() if p.requires_grad], lr=args.lr, betas=(0.5, 0.9))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device.startswith("cuda"))
    gen = torch.Generator().manual_seed(args.seed)
    started, model_sum, average_sum = time.perf_counter(), 0.0, 0.0
    for step in range(1, args.steps + 1):
        pick = torch.randint(len(images), (args.batch_size,), generator=gen)
        dy, dx = (torch.randint(-args.max_shift, args.max_shift + 1, (args.batch_size,), generator=gen)
                  for _ in range(2))
        frames = translated(images[pick.to(images.device)], dy, dx)
        with autocast:
            rec = net(frames)[0]
        loss = (rec.float() - frames[:, 1]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        model_sum += float(loss.detach())
        average_sum += _average_l1(frames)
        if step % 50 == 0:
            print(json.dumps({"probe": "learn", "step": step, "lr": args.lr, "model_l1": round(model_sum / 50, 4),
                              "average_l1": round(average_sum / 50, 4),
                              "seconds": round(time.perf_counter() - started, 1)}), flush=True)
            model_sum = average_sum = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check")
    p.add_argument("checkpoint")
    p.add_argument("--count", type=int, default=24, help="triplets from the cache")
    p = sub.add_parser("learn")
    p.add_argument("--config", default="small")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-shift", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    for q in sub.choices.values():
        q.add_argument("--data", required=True, help="training cache folder")
        q.add_argument("--crop", type=int, default=256)
    p = sub.add_parser("eval")
    p.add_argument("checkpoint")
    p.add_argument("eval_dir", help="folder of triplets (frame0/1/2.png), e.g. ../shared/data/eval")
    p.add_argument("--weights", choices=("export", "live", "both"), default="export",
                   help="what export would write (the moving average where the run kept one), the last "
                        "iterate, or both (default %(default)s)")
    p.add_argument("--latent", choices=("true", "neighbour_mean", "both"), default="both",
                   help="decode the true middle frame's latent, the neighbours' mean (what a model that ignores "
                        "its latent gets at inference), or both (default %(default)s; one halves a CPU run)")
    p.add_argument("--pad", type=int, default=0,
                   help="reflect the input frames by this many pixels on every side, crop the result back "
                        "(another attention geometry; default %(default)s)")
    for q in sub.choices.values():
        q.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    {"check": check, "learn": learn, "eval": decode_eval}[args.command](args)


if __name__ == "__main__":
    main()
