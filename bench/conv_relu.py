# SPDX-License-Identifier: MIT
"""Does cuDNN's fused convolution + bias + ReLU beat a convolution followed by a ReLU pass for the
decoder's full-resolution synthesis-head layers? (issue 8, session 15)

    python3 bench/conv_relu.py --out conv_relu.json

Each shape is one head layer at 1080p after the padding skip (1088x1928), bf16, channels-last,
random weights. Arms: ``F.conv2d`` then ``F.relu`` (eager), the same compiled (what the decoder
runs: an extern convolution and a Triton ReLU), and ``torch.cudnn_convolution_relu`` (one cuDNN
call). CUDA events, medians; the largest difference to the eager arm is reported too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import median_ms

# (input channels, output channels): the heads' layers after padding to multiples of 8
SHAPES = ((64, 64), (64, 32), (32, 32), (32, 8), (40, 40))


def conv_then_relu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.relu(F.conv2d(x, w, b, padding=1))


def fused(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cudnn_convolution_relu(x, w, b, [1, 1], [1, 1], [1, 1], 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1928x1088", help="WxH of the feature map")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    compiled = torch.compile(conv_then_relu, dynamic=False)
    rows = []
    with torch.inference_mode():
        for cin, cout in SHAPES:
            x = torch.randn(1, cin, height, width, device="cuda", dtype=torch.bfloat16)
            x = x.contiguous(memory_format=torch.channels_last)
            w = (torch.randn(cout, cin, 3, 3, device="cuda", dtype=torch.bfloat16) / (3 * cin**0.5))
            w = w.contiguous(memory_format=torch.channels_last)
            b = torch.randn(cout, device="cuda", dtype=torch.bfloat16) * 0.1
            row: dict[str, object] = {"shape": f"{cin}->{cout}", "size": args.size}
            reference = conv_then_relu(x, w, b)
            for name, fn in (("eager", conv_then_relu), ("compiled", compiled), ("cudnn_fused", fused)):
                try:
                    y = fn(x, w, b)
                    call = lambda fn=fn, x=x, w=w, b=b: fn(x, w, b)  # noqa: E731
                    row[f"{name}_ms"] = round(median_ms(call, args.repeats, warmup=3), 4)
                    row[f"{name}_max_diff"] = float((y.float() - reference.float()).abs().max())
                    row[f"{name}_channels_last"] = y.is_contiguous(memory_format=torch.channels_last)
                except Exception as error:  # an arm cuDNN refuses is a result too
                    row[f"{name}_error"] = f"{type(error).__name__}: {str(error)[:200]}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"card": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version(), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
