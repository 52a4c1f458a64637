# SPDX-License-Identifier: MIT
"""``ldmvfi`` command line: ``interpolate``, ``info``, ``convert``.

Each subcommand is a small function over parsed arguments; nothing happens at import time.
Errors the user can fix (a missing file, a bad checkpoint) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

EXIT_USER_ERROR = 2


def _dtype(name: str):  # type: ignore[no-untyped-def]
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model",
                   help="weights: official .ckpt or our .safetensors (default: the shipped model)")
    p.add_argument("--weights", choices=("ema", "live"), default="ema",
                   help="U-Net weights of an official checkpoint (the official scripts use ema)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--padding", choices=("minimal", "reference"), default="minimal",
                   help="minimal: pad to the model's multiple (any size); reference: the official rule")


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from ldmvfi_core.interpolate import Interpolator
    from ldmvfi_core.io.colour import decode_transfer, encode_transfer
    from ldmvfi_core.io.images import read_image, write_image

    frame0, frame1 = read_image(args.frame0), read_image(args.frame1)
    if frame0.shape != frame1.shape:
        raise ValueError(
            f"{args.frame1}: size/channels {frame1.shape} differ from {args.frame0} {frame0.shape}")
    transfer = args.transfer
    if transfer == "auto":
        transfer = "srgb" if Path(args.frame0).suffix.lower() == ".exr" else "none"
    interp = Interpolator.load(args.model, device=args.device, dtype=_dtype(args.precision),
                               weights=args.weights, padding=args.padding)
    middle = interp.interpolate(encode_transfer(frame0, transfer), encode_transfer(frame1, transfer),
                                steps=args.steps, eta=args.eta, seed=args.seed)
    write_image(args.output, decode_transfer(np.asarray(middle), transfer))
    print(f"wrote {args.output}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ldmvfi_core.interpolate import load_model

    model = load_model(args.model, weights=args.weights)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"model": str(args.model), "parameters": params,
                      "config": model.config.as_dict()}, indent=1))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from ldmvfi_core.interpolate import load_model
    from ldmvfi_core.model.export import save_safetensors

    model = load_model(args.checkpoint, weights=args.weights)
    save_safetensors(model, args.output)
    print(f"wrote {args.output} ({args.weights} U-Net weights + autoencoder, float32)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ldmvfi", description="LDMVFI diffusion frame interpolation")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("interpolate", help="the frame half-way between two images")
    p.add_argument("frame0")
    p.add_argument("frame1")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--steps", type=int, default=200, help="DDIM steps (official default 200)")
    p.add_argument("--eta", type=float, default=1.0, help="DDIM eta (official default 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transfer", choices=("auto", "none", "srgb"), default="auto",
                   help="how pixel values map to the model's display range (auto: srgb for EXR)")
    _add_model_options(p)
    p.set_defaults(run=_cmd_interpolate)

    p = sub.add_parser("info", help="print a weights file's architecture")
    p.add_argument("model")
    p.add_argument("--weights", choices=("ema", "live"), default="ema")
    p.set_defaults(run=_cmd_info)

    p = sub.add_parser("convert", help="official .ckpt -> our .safetensors (inference weights only)")
    p.add_argument("checkpoint")
    p.add_argument("output")
    p.add_argument("--weights", choices=("ema", "live"), default="ema")
    p.set_defaults(run=_cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ldmvfi_core.io.images import ImageError
    from ldmvfi_core.model.checkpoint import CheckpointError

    try:
        return int(args.run(args))
    except (CheckpointError, ImageError, ValueError, FileNotFoundError) as err:
        print(f"ldmvfi {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
