# SPDX-License-Identifier: MIT
"""``ldmvfi train``: its options, and the command that runs a slice or converts a checkpoint.
(Also ``torchrun ... -m ldmvfi_core.train.loop``, which calls ``main_train``.)"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from ldmvfi_core.interpolate import dtype_named
from ldmvfi_core.train.checkpoint import TrainCheckpointError, latest_checkpoint
from ldmvfi_core.train.configs import STAGE1_OPTIM, STAGE2_OPTIM, Stage1Loss
from ldmvfi_core.train.loop import TrainOptions, export_checkpoint, run_training
from ldmvfi_core.train.synthetic import RESAMPLE_CHOICES


def build_parser() -> argparse.ArgumentParser:
    d = TrainOptions(stage=1, out="")
    loss = Stage1Loss()
    p = argparse.ArgumentParser(
        prog="ldmvfi train",
        description="Train LDMVFI in resumable slices: stage 1 = VQ-FIGAN autoencoder, stage 2 = U-Net.",
    )
    p.add_argument("--stage", type=int, choices=(1, 2), required=True)
    p.add_argument("--config", help="tiny | small | released | official YAML/JSON (default: the checkpoint's, "
                   "else small)")
    p.add_argument("--data", help="training cache folder (ldmvfi_core.train.data.TripletDataset)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/, train_log.jsonl")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process (default %(default)s)")
    p.add_argument("--crop", type=int, default=d.crop,
                   help="side of the square training crops (default %(default)s): a multiple of the config's "
                        "frame multiple (256 for small), no larger than any stored triplet (checked at start)")
    p.add_argument("--quarter-every", type=int, default=d.quarter_every, metavar="N",
                   help="every Nth step trains on each crop's four quadrants (4x the batch at half the size): "
                        "both attention geometries from one data stream; --crop must then be a multiple of "
                        "twice the frame multiple (default %(default)s: off)")
    p.add_argument("--lr", type=float, help="absolute learning rate (default: base lr x batch x processes)")
    p.add_argument("--base-lr", type=float,
                   help=f"per-sample learning rate (default {STAGE1_OPTIM.base_lr} stage 1, "
                        f"{STAGE2_OPTIM.base_lr} stage 2, as the official configs)")
    p.add_argument("--steps", "--max-steps", dest="steps", type=int, default=d.steps,
                   help="total optimiser steps to reach (default %(default)s)")
    p.add_argument("--time-limit", type=float, help="seconds: stop (with a checkpoint) before this much time")
    p.add_argument("--resume", nargs="?", const="auto",
                   help="continue from the newest checkpoint in --out (start fresh if none), or from PATH")
    p.add_argument("--init-from", help="starting weights: a stage-1 checkpoint for stage 2, or a "
                   ".safetensors/.ckpt model")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--precision", choices=("bf16", "fp32"), default=d.precision)
    p.add_argument("--export", help="write the inference weights (.safetensors) at the end")
    p.add_argument("--export-only", action="store_true", help="only convert the checkpoint to --export")
    p.add_argument("--unet-from", help="with --export-only of a stage-1 checkpoint: take the U-Net from "
                   "this weights file (e.g. the shipped one) instead of leaving it untrained")
    p.add_argument("--export-dtype", choices=("float32", "float16"), default="float32",
                   help="storage type of the exported parameters (float16 halves the file; buffers stay float32)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--keep", type=int, default=d.keep, help="checkpoints kept (0: all)")
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help="max gradient norm (0: off)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="stage 2: decay of the U-Net's average")
    p.add_argument("--ae-ema", type=float, default=d.ae_ema, metavar="DECAY",
                   help="stage 1: keep a moving average of the autoencoder's weights with this decay (e.g. "
                        "0.998: about the last 500 steps) and export and score it instead of the last iterate, "
                        "which swings with each step (0: off; default: as the resumed checkpoint, else off)")
    p.add_argument("--disc-start", type=int, default=loss.disc_start, help="stage 1")
    p.add_argument("--disc-weight", type=float, default=loss.disc_weight, help="stage 1")
    p.add_argument("--perceptual-weight", type=float, default=loss.perceptual_weight, help="stage 1")
    p.add_argument("--codebook-weight", type=float, default=loss.codebook_weight, help="stage 1")
    p.add_argument("--codebook-restart", type=int, default=loss.codebook_restart_every,
                   help="stage 1: move unused codes onto batch latents every N steps (0: off; default %(default)s)")
    p.add_argument("--flow-teacher", type=float, default=loss.flow_teacher_weight,
                   help="stage 1: weight (per px) pulling the decoder's offsets towards DIS flow (0: off, "
                        "the official loss; needs OpenCV)")
    p.add_argument("--flow-teacher-until", type=int, default=loss.flow_teacher_until,
                   help="stage 1: drop the flow-teacher term from this step on (0: never)")
    p.add_argument("--flow-centroid", type=float, default=loss.flow_centroid_weight,
                   help="stage 1: weight (per px) pulling where each warp samples on average (its tap-weighted "
                        "centroid) towards DIS flow (0: off, the official loss; needs OpenCV)")
    p.add_argument("--context-dropout", type=float, default=loss.context_dropout,
                   help="stage 1: share of samples decoded with another sample's neighbour features, so "
                        "they decode well only through their own latent (0: off, the official training)")
    p.add_argument("--offset-smoothness", type=float, default=loss.offset_smoothness_weight,
                   help="stage 1: weight of an edge-aware smoothness term on the decoder's tap offsets "
                        "(px per px; 0: off, the official loss)")
    p.add_argument("--ssim-weight", type=float, default=loss.ssim_weight,
                   help="stage 1: weight of 1 - SSIM (the eval's SSIM) beside L1 and the perceptual term "
                        "(0: off, the official loss)")
    p.add_argument("--view-consistency", type=float, default=loss.view_consistency_weight,
                   help="stage 1: weight of the L1 between each reconstruction and the same triplet's in a random "
                        "mirrored / transposed / time-reversed view, turned back; the turned copy trains too, so a "
                        "step does twice the work (0: off, the official loss)")
    p.add_argument("--perceptual", choices=("auto", "on", "off"), default=d.perceptual,
                   help="stage 1 EfficientNet-Lite0 term: auto = if installed")
    p.add_argument("--compile", nargs="?", const="inductor", default=d.compile, metavar="BACKEND",
                   help="torch.compile the networks being trained (default backend inductor; the first "
                        "steps compile, a minute or more on a GPU)")
    p.add_argument("--rewarm-steps", type=int, default=d.rewarm_steps,
                   help="after resuming from a checkpoint without optimiser state (a carried one), ramp the "
                        "learning rate up linearly over this many steps (0: off)")
    p.add_argument("--lr-decay", type=int, nargs=2, metavar=("START", "END"), default=d.lr_decay,
                   help="decay the learning rate linearly from step START to --lr-final at step END "
                        "(global steps: slices that resume in between continue it)")
    p.add_argument("--lr-final", type=float, default=d.lr_final, help="the rate at the end of --lr-decay")
    p.add_argument("--mattes", type=float, default=d.mattes,
                   help="share of training triplets given black letterbox or pillarbox bars, so that "
                        "in-betweens keep such bars at 0 (e.g. 0.1; 0: off)")
    p.add_argument("--synthetic-resample", choices=RESAMPLE_CHOICES, default=d.synthetic_resample,
                   help="how synthetic triplets sample their stills: bilinear (the shipped model's data) "
                        "blurs each frame by its sub-pixel offset, so a pan's three frames differ in "
                        "sharpness; lanczos keeps them equally sharp (needs OpenCV)")
    p.add_argument("--channels-last", action="store_true", default=d.channels_last,
                   help="store the networks channels-last (NHWC): cuDNN's bf16 convolutions then need no "
                        "layout transposes (faster on GPUs; same values up to summation order)")
    return p


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    loss = replace(Stage1Loss(), disc_start=args.disc_start, disc_weight=args.disc_weight,
                   perceptual_weight=args.perceptual_weight, codebook_weight=args.codebook_weight,
                   codebook_restart_every=args.codebook_restart, flow_teacher_weight=args.flow_teacher,
                   flow_teacher_until=args.flow_teacher_until, flow_centroid_weight=args.flow_centroid,
                   context_dropout=args.context_dropout,
                   offset_smoothness_weight=args.offset_smoothness, ssim_weight=args.ssim_weight,
                   view_consistency_weight=args.view_consistency)
    return TrainOptions(
        stage=args.stage, out=args.out, config=args.config, data=args.data, batch_size=args.batch_size,
        crop=args.crop, lr=args.lr, base_lr=args.base_lr, steps=args.steps, time_limit=args.time_limit,
        resume=args.resume, init_from=args.init_from, device=args.device, precision=args.precision,
        export=args.export, export_dtype=args.export_dtype, seed=args.seed, num_workers=args.num_workers,
        ckpt_every=args.ckpt_every,
        log_every=args.log_every, keep=args.keep, grad_clip=args.grad_clip, ema_decay=args.ema_decay,
        ae_ema=args.ae_ema,
        loss=loss, perceptual=args.perceptual, compile=args.compile, channels_last=args.channels_last,
        rewarm_steps=args.rewarm_steps, mattes=args.mattes, synthetic_resample=args.synthetic_resample,
        quarter_every=args.quarter_every,
        lr_decay=tuple(args.lr_decay) if args.lr_decay else None, lr_final=args.lr_final,
    )


def main_train(argv: list[str] | None = None) -> int:
    """``ldmvfi train ...``: returns the exit status (2 for errors the user can fix)."""
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.unet_from and not args.export_only:
            raise ValueError("--unet-from goes with --export-only (training starts from --init-from)")
        if args.export_only:
            if not args.export:
                raise ValueError("--export-only needs --export PATH.safetensors")
            ckpt = Path(args.resume) if args.resume not in (None, "auto") else latest_checkpoint(args.out)
            if ckpt is None:
                raise ValueError(f"no checkpoint in {args.out}")
            written = export_checkpoint(ckpt, args.export, weights_dtype=dtype_named(args.export_dtype),
                                        unet_from=args.unet_from)
            print(f"wrote {written} from {ckpt}")
            return 0
        result = run_training(options_from_args(args), started=started)
    except (ValueError, TrainCheckpointError, FileNotFoundError, ImportError) as err:
        print(f"ldmvfi train: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))
    return 0
