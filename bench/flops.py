# SPDX-License-Identifier: MIT
"""Arithmetic of one in-between, per part, and what throughput a latency target asks for.

    python bench/flops.py --config released --sizes 1920x1080 --steps 10 --target-ms 60

Counts floating-point operations (a multiply-add is 2) with ``torch.utils.flop_counter`` on the
``meta`` device: no weights, no memory, a second or two on any CPU. Counted: convolutions and
matrix products (attention included); not counted: normalisation, activations and the warp, which
are memory-bound and small in operations. Comparing these counts with measured times
(bench/RESULTS.md) says how far each part runs from the card's tensor-core peak.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.speed import config_named
from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.ops.padding import plan_padding


@dataclass(frozen=True)
class FrameArithmetic:
    """GFLOP of each part of one in-between of a ``width`` x ``height`` frame."""

    size: str
    padded: str
    encode_gflop: float  # one source frame
    unet_step_gflop: float
    decode_gflop: float  # with the decoder's last layers on the picture only, as Interpolator runs it
    heads_gflop: float  # the ten synthesis heads, part of decode

    def per_frame_gflop(self, steps: int, encodes: float) -> float:
        """An in-between with ``encodes`` source encodes (2 alone, 1 along a shot) and ``steps`` DDIM steps."""
        return encodes * self.encode_gflop + steps * self.unet_step_gflop + self.decode_gflop


def _gflop(counter: FlopCounterMode) -> float:
    return counter.get_total_flops() / 1e9


def count_frame(config: LDMVFIConfig, width: int, height: int) -> FrameArithmetic:
    """Count one in-between's operations for ``config`` at ``width`` x ``height`` (minimal padding)."""
    padding = plan_padding(height, width, "minimal", config.latent_multiple)
    with torch.device("meta"):
        model = LatentDiffusionVFI(config).eval()
        frame = torch.empty(1, 3, *padding.padded_size)
        t = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        with FlopCounterMode(display=False) as encode:
            encoded = model.encode(frame)
        z = encoded.latent
        with FlopCounterMode(display=False) as step:
            model.unet(z, t, torch.cat([z, z], 1))
        with FlopCounterMode(display=False, depth=2) as decode:
            model.decode(z, encoded, encoded, valid=padding.size)
    # Keys are module paths; a head's convolutions are counted in the head and again in its children.
    heads = sum(total for name, counts in decode.get_flop_counts().items()
                if name.startswith("Decoder.module") and name.count(".") == 1 for total in counts.values())
    return FrameArithmetic(
        size=f"{width}x{height}", padded="x".join(map(str, padding.padded_size)),
        encode_gflop=_gflop(encode), unet_step_gflop=_gflop(step), decode_gflop=_gflop(decode),
        heads_gflop=heads / 1e9,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="released", help="released | small | a config file")
    parser.add_argument("--sizes", default="448x256,1920x1080,3840x2160")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--target-ms", type=float, default=0.0,
                        help="also print the TFLOP/s an in-between needs to take this long")
    args = parser.parse_args()
    config = config_named(args.config)
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        frame = count_frame(config, width, height)
        row: dict[str, object] = {k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(frame).items()}
        for label, encodes in (("alone", 2), ("along_a_shot", 1)):
            total = frame.per_frame_gflop(args.steps, encodes)
            row[f"per_frame_gflop_{label}"] = round(total, 1)
            if args.target_ms:
                row[f"tflops_needed_{label}"] = round(total / args.target_ms, 1)  # GFLOP per ms = TFLOP/s
        row["steps"] = args.steps
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
