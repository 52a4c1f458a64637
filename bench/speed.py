# SPDX-License-Identifier: MIT
"""Per-frame latency of one in-between: encode x2, U-Net step, sampler, decode, end to end.

    python bench/speed.py --config released --precision float32 --out speed.json

Random weights (speed does not depend on them). CUDA events, warm-up first, medians of
``--repeats``. Prints one JSON line per (size, steps) and a markdown table at the end; with
``--results bench/RESULTS.md`` the table (card, torch, date, command) also goes into that file,
in a section of its own that a rerun with the same settings replaces (``bench/results_md.py``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_md import markdown_table, update_section
from bench.timing import median_ms
from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.interpolate import Interpolator, PreparedFrame, SampledLatents, dtype_named, stack_prepared
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.ops.upload import Download


def config_named(name: str) -> LDMVFIConfig:
    if name == "released":
        return LDMVFIConfig.released()
    if name == "small":
        from ldmvfi_core.train.configs import SMALL

        return SMALL
    return LDMVFIConfig.from_file(name)


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    """GPU memory allocated at peak since the last reset (None on a CPU dry run)."""
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def release_compile_workers() -> None:
    """Stop inductor's compile-worker processes once everything is compiled.

    Why: with a warm inductor cache, compiling takes seconds, and the worker pool (one process per
    core, each importing torch) is still starting when the timing begins; it took the host's CPUs
    from the isolated encode, which read 96-119 ms in every process after a machine's first and 23 ms
    with ``TORCHINDUCTOR_COMPILE_THREADS=1`` (session 15). A later compile starts a new pool."""
    try:
        from torch._inductor.async_compile import shutdown_compile_workers
    except ImportError:  # a torch without it has no pool to stop either
        return
    shutdown_compile_workers()


def decode_over_padding(interp: Interpolator) -> None:
    """Make ``interp`` run the decoder's last layers over the padding too, as before session 8
    (``--heads-on-padding``: the A/B of the padding skip)."""
    decode = interp.model.decode
    interp.model.decode = lambda z, e0, e1, tiles=None, valid=None: decode(z, e0, e1, tiles=tiles)  # type: ignore[method-assign]


def batch_per_frame_ms(interp: Interpolator, a: np.ndarray, steps: int, batch: int) -> float:
    """End to end for ``batch`` in-betweens computed together (one API call), per frame."""
    frames0 = np.stack([np.roll(a, k, axis=0) for k in range(batch)])
    frames1 = np.roll(frames0, 8, axis=2)
    call = lambda: interp.interpolate(frames0, frames1, steps=steps, eta=1.0, seed=0)  # noqa: E731
    return median_ms(call, 1, warmup=1) / batch


def sequence_per_frame_ms(interp: Interpolator, a: np.ndarray, steps: int, length: int, batch: int = 1,
                          deferred_downloads: bool = True) -> float:
    """Per in-between along a shot of ``length`` + 1 source frames, as ``ldmvfi retime --batch
    batch`` renders a 2x retime: each source frame is encoded once and shared by the two
    in-betweens beside it, ``batch`` in-betweens per model call (the last call padded to
    ``batch``), the next call's sampling queued before this one decodes (on its own stream unless
    ``interp.overlap_sampling`` is off), and every result is copied back to the host: queued, and
    awaited only after the next call's work is queued (``deferred_downloads``, as the retimer's
    writer thread does), or at once with ``.cpu()`` (off; the loop before session 18)."""
    sources = [np.roll(a, 8 * k, axis=1) for k in range(length + 1)]

    def shot() -> None:
        prepared = [interp.prepare(sources[0])]

        def start(first: int) -> tuple[PreparedFrame, PreparedFrame, SampledLatents] | None:
            if first > length:
                return None
            pairs = list(range(first, min(first + batch, length + 1)))
            prepared.extend(interp.prepare(sources[k]) for k in pairs)
            pairs += [pairs[-1]] * (batch - len(pairs))
            lefts = stack_prepared([prepared[k - 1] for k in pairs])
            rights = stack_prepared([prepared[k] for k in pairs])
            return lefts, rights, interp.start_sampling(lefts, rights, steps=steps, eta=1.0, seed=pairs)

        queued = start(1)
        pending: Download | None = None
        for first in range(1, length + 1, batch):
            following = start(first + batch)
            assert queued is not None
            lefts, rights, latents = queued
            frames = interp.finish_decoding(latents, lefts, rights)
            if not deferred_downloads:
                frames.cpu()
            else:
                if pending is not None:
                    pending.result()
                pending = Download(frames)
            queued = following
        if pending is not None:
            pending.result()

    return median_ms(shot, 1, warmup=1) / length


def bench_size(interp: Interpolator, width: int, height: int, steps_list: list[int], repeats: int,
               batches: Sequence[int] = (), sequence: int = 0, sequence_batch: int = 1) -> list[dict]:
    rng = np.random.default_rng(0)
    a = rng.random((height, width, 3), dtype=np.float32)
    b = np.roll(a, 8, axis=1)
    model = interp.model
    with torch.inference_mode():
        interp.interpolate(a, b, steps=2, eta=1.0, seed=0)  # compiles every part for this size
    release_compile_workers()
    reset_peak_memory()
    # A CPU run is a dry run of the wiring (its times mean nothing): the floors below are for the GPU.
    dry = interp.device.type != "cuda"
    warmups, floor = (1, 1) if dry else (3, 5)
    with torch.inference_mode():
        # Three warm-ups and at least five repeats, as for the U-Net step: with --compile, session 6
        # read 91.8 ms here after one warm-up, against ~12 ms per encode by every other measurement.
        encode_ms = median_ms(lambda: (interp.prepare(a), interp.prepare(b)), max(repeats, floor), warmup=warmups)
        f0, f1 = interp.prepare(a), interp.prepare(b)
        x = interp.start_noise(f0.padding, [0]).to(interp.device)
        cond = torch.cat([f0.encoded.latent, f1.encoded.latent], 1)
        t = torch.full((1,), 500, dtype=torch.int64, device=interp.device)
        with interp._autocast():
            step = interp.denoiser_for(x)  # what the sampler calls: graph replay / compiled when enabled
            unet_ms = median_ms(lambda: step(x, t, cond), max(repeats, 2 * floor), warmup=warmups)
            z = model.sample_latent(f0.encoded, f1.encoded, x, model.ddim_tables(10, 0.0))
            tiles = interp.tiles_for(f0.padding)
            valid = f0.padding.size  # as Interpolator decodes
            decode_ms = median_ms(lambda: interp.decode_encoded(z, f0.encoded, f1.encoded, tiles, valid),
                                  max(repeats, floor), warmup=warmups)
        rows = []
        for steps in steps_list:
            tables = model.ddim_tables(steps, 1.0)

            def sampler(tables=tables) -> None:  # type: ignore[no-untyped-def]
                graph = interp.denoiser_for(f0.encoded.latent)
                with interp._autocast():
                    model.sample_latent(f0.encoded, f1.encoded, x, tables, generator=torch.Generator(),
                                        denoiser=graph)

            sampler_ms = median_ms(sampler, 1, warmup=1)
            e2e_ms = median_ms(lambda steps=steps: interp.interpolate(a, b, steps=steps, eta=1.0, seed=0), 1,
                             warmup=0)
            rows.append({"size": f"{width}x{height}", "padded": "x".join(map(str, f0.padding.padded_size)),
                         "steps": steps, "encode2_ms": round(encode_ms, 1), "unet_step_ms": round(unet_ms, 2),
                         "sampler_ms": round(sampler_ms, 1), "decode_ms": round(decode_ms, 1),
                         "end_to_end_ms": round(e2e_ms, 1),
                         "peak_gib": peak_gib()})
            for batch in batches:
                reset_peak_memory()
                rows[-1][f"per_frame_ms_batch{batch}"] = round(batch_per_frame_ms(interp, a, steps, batch), 1)
                rows[-1][f"peak_gib_batch{batch}"] = peak_gib()
            if sequence:
                # both download orders, alternated on the same warm model (their A/B beside every run)
                times: dict[bool, list[float]] = {True: [], False: []}  # by deferred_downloads
                orders = ((True, False),) if dry else ((True, False), (False, True), (True, False))
                for order in orders:  # neither order always first (on the GPU)
                    for deferred_downloads in order:
                        times[deferred_downloads].append(sequence_per_frame_ms(
                            interp, a, steps, sequence, sequence_batch, deferred_downloads=deferred_downloads))
                deferred, waiting = times[True], times[False]
                rows[-1]["per_frame_ms_sequence"] = round(float(np.median(deferred)), 1)
                rows[-1]["per_frame_ms_sequence_waiting"] = round(float(np.median(waiting)), 1)
                rows[-1]["sequence_batch"] = sequence_batch
            print(json.dumps(rows[-1]), flush=True)
    return rows


def results_table(result: dict) -> str:
    """The markdown section for one run: what ran where, then one row per (size, steps)."""
    batches = sorted({int(k.removeprefix("per_frame_ms_batch")) for row in result["rows"] for k in row
                      if k.startswith("per_frame_ms_batch")})
    sequence = any("per_frame_ms_sequence" in row for row in result["rows"])
    header = ["size (padded)", "steps", "encode x2 ms", "U-Net step ms", "sampler ms", "decode ms",
              "end to end ms", "peak GiB"] + [f"per frame, batches of {b}, ms" for b in batches]
    per_call = max((row.get("sequence_batch", 1) for row in result["rows"]), default=1)
    header += [f"per frame along a shot{f', {per_call} per call' if per_call > 1 else ''}, ms",
               "the same, each download awaited at once, ms"] if sequence else []
    rows = [[f"{r['size']} ({r['padded']})", r["steps"], r["encode2_ms"], r["unet_step_ms"], r["sampler_ms"],
             r["decode_ms"], r["end_to_end_ms"], r["peak_gib"]] + [r.get(f"per_frame_ms_batch{b}") for b in batches]
            + ([r.get("per_frame_ms_sequence"), r.get("per_frame_ms_sequence_waiting")] if sequence else [])
            for r in result["rows"]]
    intro = (f"Card: {result['card']}, torch {result['torch']}, {result['date']}. Config {result['config']}, "
             f"{result['precision']}, CUDA graphs {'on' if result['cuda_graphs'] else 'off'}, compile "
             f"{result['compile']}, random weights. Command: `{result['command']}`")
    return intro + "\n\n" + markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="released")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--sizes", default="448x256,1280x720,1920x1080,3840x2160")
    parser.add_argument("--steps", default="200,50,10")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cuda-graphs", action="store_true", help="replay the U-Net step as a CUDA graph")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the U-Net, and the encoder and decoder (what --compile does)")
    parser.add_argument("--compile-unet-only", action="store_true",
                        help="torch.compile the U-Net alone (the baseline for the autoencoder's compile)")
    parser.add_argument("--compile-mode", default=None,
                        help="with --compile: torch.compile mode for the encoder and decoder, e.g. "
                             "max-autotune-no-cudagraphs (inductor times candidate kernels; slow to compile)")
    parser.add_argument("--batches", default="",
                        help="also time N in-betweens per call (e.g. 4,8): end to end per frame")
    parser.add_argument("--sequence", type=int, default=0, metavar="N",
                        help="also time N in-betweens along a shot, each source frame encoded once (as a 2x "
                             "retime renders): per frame (24 for the 60-ms row of bench/RESULTS.md: a shorter "
                             "shot pays the pipeline's fill and drain over fewer frames)")
    parser.add_argument("--sequence-batch", type=int, default=1, metavar="B",
                        help="with --sequence: B in-betweens per model call, as `ldmvfi retime --batch B`")
    parser.add_argument("--decode-batch", type=int, default=1, metavar="N",
                        help="in-betweens per decoder call within a batch (Interpolator.decode_batch; "
                             "the sampler always runs the whole batch)")
    parser.add_argument("--ensemble", type=int, default=1, metavar="N",
                        help="views averaged per in-between (`ldmvfi retime --ensemble N`): the end-to-end and "
                             "along-a-shot figures include them; the part timings are one view's")
    parser.add_argument("--heads", default="default",
                        help="how the synthesis heads run: default (the Interpolator's choice: padded on GPUs "
                             "in half precision) | separate | grouped | padded | padded-first | padded-block "
                             "| padded-block-relu (the block tail and cuDNN's fused conv+ReLU: default, session 16) "
                             "(bench/codec_modules.py HEAD_VARIANTS)")
    parser.add_argument("--graph-decode", action="store_true",
                        help="with --cuda-graphs: replay each untiled decode as a CUDA graph too (experimental, "
                             "Interpolator.decode_graphs)")
    parser.add_argument("--no-overlap", action="store_true",
                        help="sample on the current stream, not a stream of its own (before session 14), "
                             "for an A/B of the along-a-shot figure")
    parser.add_argument("--sampling-priority", choices=("high", "normal"), default="high",
                        help="priority of the sampling stream (Interpolator.sampling_priority; high since "
                             "session 15), for an A/B")
    parser.add_argument("--heads-on-padding", action="store_true",
                        help="run the decoder's last layers on the padding too (as before session 8), for an A/B")
    parser.add_argument("--device", default="cuda",
                        help="cuda (the figures) or cpu (a dry run of the script: wall-clock times, no memory)")
    parser.add_argument("--out")
    parser.add_argument("--results", type=Path,
                        help="also write the table into this markdown file (e.g. bench/RESULTS.md)")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    dtype = dtype_named(args.precision)
    interp = Interpolator(LatentDiffusionVFI(config_named(args.config)).eval(), device=args.device, dtype=dtype,
                          cuda_graphs=args.cuda_graphs, compile=args.compile, decode_batch=args.decode_batch,
                          ensemble=args.ensemble)
    if args.compile and args.compile_mode:
        for part in (interp.model.first_stage_model.encoder, interp.model.first_stage_model.decoder):
            part.compile(dynamic=False, mode=args.compile_mode)  # replaces Interpolator's default-mode compile
    if args.heads != "default":
        from bench.codec_modules import use_heads  # imported here: codec_modules imports this module

        use_heads(interp.model, args.heads, dtype)
    if args.heads_on_padding:
        decode_over_padding(interp)
    interp.decode_graphs = args.graph_decode
    interp.overlap_sampling = not args.no_overlap
    interp.sampling_priority = args.sampling_priority
    if args.compile_unet_only and not args.compile:
        interp.denoiser_module = torch.compile(interp.model.unet, dynamic=False)  # type: ignore[assignment]
    steps = [int(s) for s in args.steps.split(",")]
    rows = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        batches = [int(b) for b in args.batches.split(",") if b]
        rows += bench_size(interp, width, height, steps, args.repeats, batches, args.sequence, args.sequence_batch)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    card = torch.cuda.get_device_name() if interp.device.type == "cuda" else "CPU (dry run)"
    result = {"card": card, "torch": torch.__version__, "config": args.config,
              "date": datetime.date.today().isoformat(), "command": shlex.join(["python3", *sys.argv]),
              "precision": args.precision, "cuda_graphs": args.cuda_graphs, "rows": rows,
              "compile": "all" if args.compile else "unet" if args.compile_unet_only else "none",
              "heads": args.heads, "heads_on_padding": args.heads_on_padding, "compile_mode": args.compile_mode,
              "decode_batch": args.decode_batch, "ensemble": args.ensemble, "graph_decode": args.graph_decode,
              "overlap_sampling": not args.no_overlap, "sampling_priority": args.sampling_priority}
    table = results_table(result)
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    if args.results:
        label = f"speed.py {args.config} {args.precision} graphs={args.cuda_graphs} compile={result['compile']}"
        if args.heads != "default":
            label += f" heads={args.heads}"
        if args.heads_on_padding:
            label += " heads-on-padding"
        if args.graph_decode:
            label += " graph-decode"
        if args.no_overlap:
            label += " no-overlap"
        elif args.sampling_priority != "high":
            label += f" sampling-priority={args.sampling_priority}"
        if args.compile_mode:
            label += f" mode={args.compile_mode}"
        if args.sequence_batch > 1:
            label += f" sequence-batch={args.sequence_batch}"
        if args.decode_batch > 1:
            label += f" decode-batch={args.decode_batch}"
        if args.ensemble > 1:
            label += f" ensemble={args.ensemble}"
        update_section(args.results, label, f"#### `bench/speed.py`: {label}\n\n{table}")


if __name__ == "__main__":
    main()
