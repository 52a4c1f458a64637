# SPDX-License-Identifier: MIT
"""Does the sampler of one in-between overlap the decode of the previous one on two CUDA streams?

Along a shot the pipeline is bound by GPU work (bench/RESULTS.md, twelfth round): encode, ten
U-Net steps and the decode run one after the other on one stream. Kernels that do not fill the
card (the U-Net's on a 34x60 latent, the decode's low-resolution levels) could share it with the
other stage's. This measures, on random weights, the released config at one size:

- ``sample_ms``, ``decode_ms``: each stage alone;
- ``both_ms``: one sampling on the Interpolator's sampling stream and one decode on the main
  stream, launched together;
- ``serial_ms`` / ``overlapped_ms``: per in-between along a shot of ``--sequence`` in-betweens,
  one stream (``speed.py --sequence --no-overlap``) against two (k+1 samples while k decodes),
  and the largest difference between their frames (the same kernels run, so it should be 0).

    python3 bench/overlap.py --sizes 1920x1080 --steps 10 --sequence 8 --compile
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.speed import config_named
from bench.timing import median_ms
from ldmvfi_core.interpolate import Interpolator, dtype_named
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI


def shot(interp: Interpolator, sources: list[np.ndarray], steps: int, overlap: bool) -> list[Tensor]:
    """A 2x retime's in-betweens as the retimer renders them: each source frame encoded once, the
    next in-between's sampling queued before this one decodes; on the Interpolator's sampling
    stream with ``overlap``, else all on one stream."""
    interp.overlap_sampling = overlap
    prepared = [interp.prepare(sources[0]), interp.prepare(sources[1])]
    queued = interp.start_sampling(prepared[0], prepared[1], steps=steps, eta=1.0, seed=1)
    frames = []
    for k in range(1, len(sources)):
        following = None
        if k + 1 < len(sources):
            prepared.append(interp.prepare(sources[k + 1]))
            following = interp.start_sampling(prepared[k], prepared[k + 1], steps=steps, eta=1.0, seed=k + 1)
        frames.append(interp.finish_decoding(queued, prepared[k - 1], prepared[k]).cpu())
        if following is not None:
            queued = following
    return frames


def bench(interp: Interpolator, width: int, height: int, steps: int, sequence: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    a = rng.random((height, width, 3), dtype=np.float32)
    sources = [np.roll(a, 8 * k, axis=1) for k in range(sequence + 1)]
    with torch.inference_mode():
        f0, f1 = interp.prepare(sources[0]), interp.prepare(sources[1])
        on_gpu = torch.from_numpy(a).to(interp.device)
        encode_ms = median_ms(lambda: interp.prepare(a), repeats, warmup=3)
        encode_gpu_ms = median_ms(lambda: interp.prepare(on_gpu), repeats, warmup=3)
        upload_ms = median_ms(lambda: torch.from_numpy(a).to(interp.device), repeats, warmup=3)
        z = interp.sample_prepared(f0, f1, steps=steps, eta=1.0, seed=0)
        sample_ms = median_ms(lambda: interp.sample_prepared(f0, f1, steps=steps, eta=1.0, seed=0), repeats, 2)
        decode_ms = median_ms(lambda: interp.decode_prepared(z, f0, f1), repeats, 2)

        def both() -> None:
            interp.overlap_sampling = True
            sampled = interp.start_sampling(f0, f1, steps=steps, eta=1.0, seed=0)
            interp.decode_prepared(z, f0, f1)
            if sampled.ready is not None:
                torch.cuda.current_stream().wait_event(sampled.ready)

        both_ms = median_ms(both, repeats, 2)
        serial_ms = median_ms(lambda: shot(interp, sources, steps, overlap=False), repeats, 1) / sequence
        overlapped_ms = median_ms(lambda: shot(interp, sources, steps, overlap=True), repeats, 1) / sequence
        serial = shot(interp, sources, steps, overlap=False)
        overlapped = shot(interp, sources, steps, overlap=True)
        diff = max(float((s - o).abs().max()) for s, o in zip(serial, overlapped, strict=True))
    return {"size": f"{width}x{height}", "steps": steps, "sequence": sequence,
            "encode_one_ms": round(encode_ms, 2), "encode_one_from_gpu_ms": round(encode_gpu_ms, 2),
            "upload_one_ms": round(upload_ms, 2), "sample_ms": round(sample_ms, 2),
            "decode_ms": round(decode_ms, 2), "both_ms": round(both_ms, 2), "serial_ms": round(serial_ms, 2),
            "overlapped_ms": round(overlapped_ms, 2), "max_abs_diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="released")
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--sizes", default="1920x1080")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sequence", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    interp = Interpolator(LatentDiffusionVFI(config_named(args.config)).eval(), device="cuda",
                          dtype=dtype_named(args.precision), cuda_graphs=True, compile=args.compile)
    rows = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        rows.append(bench(interp, width, height, args.steps, args.sequence, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"card": torch.cuda.get_device_name(), "torch": torch.__version__,
                                        "command": " ".join(["python3", *sys.argv]), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
