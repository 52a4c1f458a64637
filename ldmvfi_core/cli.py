# SPDX-License-Identifier: MIT
"""``ldmvfi`` command line: ``retime``, ``interpolate``, ``doctor``, ``info``, ``convert``.

Each subcommand is a small function over parsed arguments; nothing happens at import time.
Errors the user can fix (a missing file, a bad checkpoint) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ldmvfi_core.ensemble import ENSEMBLE_SIZES

# The model's own step count is a metadata field of our weights files (model/export.py).
STEPS_HELP = ("DDIM steps (default 0: the model's own, 10 for the shipped model, whose diffusion part does "
              "not change its pictures; 200, the paper's default, for the official checkpoint)")

EXIT_USER_ERROR = 2


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model",
                   help="weights: official .ckpt or our .safetensors (default: the shipped model)")
    p.add_argument("--weights", choices=("ema", "live"), default="ema",
                   help="U-Net weights of an official checkpoint (the official scripts use ema)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--padding", choices=("minimal", "reference"), default="minimal",
                   help="minimal: pad to the model's multiple (any size); reference: the official rule")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the U-Net, and on GPUs the encoder and decoder (the first frame of each "
                        "size compiles for a minute or two)")
    p.add_argument("--ensemble", type=int, choices=ENSEMBLE_SIZES, default=1,
                   help="each in-between is the mean of N views of its pair (time-reversed, mirrored, "
                        "transposed): closer to the truth, N times the work (default 1: the model alone)")
    p.add_argument("--prealign", action="store_true",
                   help="where a pan or tilt moves the picture 2 px or more between a pair, also interpolate the "
                        "pair shifted by half its camera move (whole pixels) and keep, pixel by pixel, the "
                        "in-between whose inputs agree better: sharper camera moves, up to twice the work on "
                        "moving pairs (off by default)")


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from ldmvfi_core.interpolate import Interpolator, dtype_named
    from ldmvfi_core.io.colour import decode_transfer, encode_transfer
    from ldmvfi_core.io.images import read_image, write_image

    frame0, frame1 = read_image(args.frame0), read_image(args.frame1)
    if frame0.shape != frame1.shape:
        raise ValueError(
            f"{args.frame1}: size/channels {frame1.shape} differ from {args.frame0} {frame0.shape}")
    transfer = args.transfer
    if transfer == "auto":
        transfer = "hdr" if Path(args.frame0).suffix.lower() == ".exr" else "none"
    interp = Interpolator.load(args.model, device=args.device, dtype=dtype_named(args.precision),
                               weights=args.weights, padding=args.padding, compile=args.compile,
                               ensemble=args.ensemble, prealign=args.prealign)
    middle = interp.interpolate(encode_transfer(frame0, transfer), encode_transfer(frame1, transfer),
                                steps=args.steps, eta=args.eta, seed=args.seed)
    write_image(args.output, decode_transfer(np.asarray(middle), transfer))
    print(f"wrote {args.output}")
    return 0


def _retime_options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ldmvfi_core.retime.runner import RetimeOptions
    from ldmvfi_core.retime.sources import ColourSettings

    return RetimeOptions(
        input=args.input, output=args.output, frames=args.frames, output_frames=args.output_frames,
        factor=args.factor, speed=args.speed, frame_map=args.frame_map, depth=args.depth,
        method=args.method, model=args.model, weights=args.weights, device=args.device,
        precision=args.precision, padding=args.padding, steps=args.steps, eta=args.eta, seed=args.seed,
        colour=ColourSettings(transfer=args.transfer, ocio_from=args.ocio_from, ocio_to=args.ocio_to,
                              ocio_config=args.ocio_config),
        channels=args.channels, other_channels=args.other_channels, detect_cuts=not args.no_cut_detection,
        nonfinite=args.nonfinite, skip_existing=args.skip_existing, dry_run=args.dry_run, compile=args.compile,
        batch=args.batch, ensemble=args.ensemble, prealign=args.prealign,
    )


def _cmd_retime(args: argparse.Namespace) -> int:
    from ldmvfi_core.retime.progress import make_progress
    from ldmvfi_core.retime.runner import run_retime

    if (args.ocio_from is None) != (args.ocio_to is None):
        raise ValueError("--ocio-from and --ocio-to go together")
    options = _retime_options(args)
    progress = make_progress(args.progress)
    if args.devices and not options.dry_run:
        from ldmvfi_core.retime.multi import parse_devices, run_on_devices

        devices = parse_devices(args.devices)
        if len(devices) > 1:
            run_on_devices(options, devices, progress)  # reports its own errors on the progress stream
            return 0
        options = replace(options, device=devices[0])
    try:
        result = run_retime(options, progress)
    except Exception as err:
        progress.error(str(err))
        raise
    if options.dry_run:
        _print_plan(result)
    return 0


def _print_plan(result) -> None:  # type: ignore[no-untyped-def]
    plan = result.plan
    print(f"input: {result.input_pattern} frames {result.source_frames}")
    print(f"output: {result.output_pattern}")
    print(f"plan: {len(plan.frames)} output frames, {len(plan.nodes())} model calls "
          f"(recursion depth {plan.depth})")
    for message in result.warnings:
        print(f"warning: {message}")
    for frame in plan.frames:
        print(frame.describe())


def _cmd_doctor(args: argparse.Namespace) -> int:
    from ldmvfi_core.doctor import run_doctor

    return run_doctor()


def _cmd_info(args: argparse.Namespace) -> int:
    from ldmvfi_core.interpolate import default_steps_of, default_weights_path, load_model

    model = load_model(args.model, weights=args.weights)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"model": str(args.model or default_weights_path()), "parameters": params,
                      "default_steps": default_steps_of(model),
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
    p.add_argument("--steps", type=int, default=0, help=STEPS_HELP)
    p.add_argument("--eta", type=float, default=1.0, help="DDIM eta (official default 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transfer", choices=("auto", "hdr", "srgb", "none"), default="auto",
                   help="how pixel values map to the model's display range (auto: hdr for EXR, none otherwise)")
    _add_model_options(p)
    p.set_defaults(run=_cmd_interpolate)

    p = sub.add_parser(
        "retime", help="retime an EXR sequence",
        description="Retime an image sequence with LDMVFI. INPUT and OUTPUT are sequence patterns: "
                    "plate.####.exr (Nuke), plate.%%04d.exr (printf) or plate.$F4.exr (Houdini).")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--frames", help="source frames, e.g. 1001-1100 or 1001-1100x2 (default: all on disk)")
    p.add_argument("--output-frames", help="render only these output frames (farm chunks)")
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--factor", type=int, help="output frames per source frame (default 2)")
    timing.add_argument("--speed", type=float, help="constant speed, e.g. 0.4 (slower) or 2 (faster)")
    timing.add_argument("--frame-map", help="output-frame -> source-frame curve file (two columns, or JSON)")
    p.add_argument("--depth", type=int, default=3,
                   help="recursive-midpoint depth: times snap to 1/2^depth of a frame (default 3)")
    p.add_argument("--method", choices=("ldmvfi", "blend", "nearest"), default="ldmvfi",
                   help="blend / nearest: quick previews without a model")
    p.add_argument("--steps", type=int, default=0, help=STEPS_HELP)
    p.add_argument("--eta", type=float, default=1.0, help="DDIM eta (official default 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transfer", choices=("hdr", "srgb", "none"), default="hdr",
                   help="plate values -> model display range: hdr (scene-linear, default), srgb, none")
    p.add_argument("--ocio-from", help="OCIO colourspace of the plate (with --ocio-to)")
    p.add_argument("--ocio-to", help="OCIO colourspace the model sees (display-referred), e.g. an sRGB space")
    p.add_argument("--ocio-config", help="OCIO config file (default: $OCIO or OpenImageIO's built-in)")
    p.add_argument("--channels", choices=("all", "rgba", "rgb"), default="all", help="channels to write")
    p.add_argument("--other-channels", choices=("warp", "nearest"), default="warp",
                   help="non-RGB channels: moved with the RGB motion (warp) or taken from the nearest frame")
    p.add_argument("--no-cut-detection", action="store_true", help="interpolate across detected scene cuts")
    p.add_argument("--nonfinite", choices=("error", "zero"), default="error",
                   help="NaN/Inf in a plate: stop (default) or replace with 0 / +-65504 and warn")
    p.add_argument("--skip-existing", action="store_true", help="keep output frames already written (resume)")
    p.add_argument("--devices", help="render on several devices at once, one worker process each: "
                   "cuda:0,cuda:1 or all (overrides --device); the frames are identical to a one-device run")
    p.add_argument("--batch", type=int, default=1,
                   help="in-betweens per model call (faster on GPUs, most at small frame sizes; memory grows "
                        "with it). The pixels depend on N: keep N the same for every chunk of a shot")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="json: one JSON object per line on stdout, for programs")
    _add_model_options(p)
    p.set_defaults(run=_cmd_retime)

    from ldmvfi_core.eval.run import add_eval_arguments, run_eval

    p = sub.add_parser("eval", help="PSNR/SSIM on a folder of frame triplets, vs frame averaging and optical flow")
    add_eval_arguments(p)
    p.set_defaults(run=run_eval)

    sub.add_parser("farm", help="render-farm job bundles (ldmvfi farm bundle|validate|template --help)")
    sub.add_parser("train", help="train the two stages on frame triplets (ldmvfi train --help)")

    p = sub.add_parser("doctor", help="what this machine can run, and how to fix what is missing")
    p.set_defaults(run=_cmd_doctor)

    p = sub.add_parser("info", help="print a weights file's architecture and default step count")
    p.add_argument("model", nargs="?", help="a weights file (default: the model shipped with ldmvfi)")
    p.add_argument("--weights", choices=("ema", "live"), default="ema")
    p.set_defaults(run=_cmd_info)

    p = sub.add_parser("convert", help="official .ckpt -> our .safetensors (inference weights only)")
    p.add_argument("checkpoint")
    p.add_argument("output")
    p.add_argument("--weights", choices=("ema", "live"), default="ema")
    p.set_defaults(run=_cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["farm"]:  # the farm commands parse their own options (they extend retime's)
        from ldmvfi_core.farm.cli import main_farm

        return main_farm(argv[1:])
    if argv[:1] == ["train"]:
        from ldmvfi_core.train.command import main_train

        return main_train(argv[1:])
    args = build_parser().parse_args(argv)
    from ldmvfi_core.io.images import ImageError
    from ldmvfi_core.model.checkpoint import CheckpointError
    from ldmvfi_core.retime.multi import WorkerFailed

    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"ldmvfi {args.command}: interrupted (finished frames are kept; rerun with --skip-existing)",
              file=sys.stderr)
        return 130
    except (CheckpointError, ImageError, ValueError, FileNotFoundError, ImportError) as err:
        print(f"ldmvfi {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except WorkerFailed as err:
        print(f"ldmvfi {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
