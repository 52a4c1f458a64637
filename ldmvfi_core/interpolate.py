# SPDX-License-Identifier: MIT
"""``Interpolator``: the one entry point shared by the CLI, the Nuke runner and the farm.

It owns everything around the network (FILM's ``Interpolator`` is the model): device and dtype,
value range, padding to the architecture's multiple and cropping back, seeded noise. Frames are
float arrays or tensors, ``H x W x C`` (or ``B x H x W x C``), display-referred values in
[0, 1]; ``uint8`` arrays are accepted and scaled exactly like the official loaders. Channels
0-2 (RGB) drive the model; any further channels (alpha, depth, AOVs) are moved with the same
per-pixel kernels, offsets and visibility, divided by the kernels' total weight (constants stay
constant), without the RGB residual and without clamping.

Noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)`` and then moved to the
device, so a seed gives the same start noise on every machine and in every batch layout.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.ensemble import (
    Orientation,
    View,
    check_ensemble,
    orient,
    orientations_for,
    unorient,
    views_for,
)
from ldmvfi_core.model.checkpoint import (
    CheckpointError,
    WeightsChoice,
    check_state_dict,
    config_from_metadata,
    default_steps_from_metadata,
    infer_config,
    read_tensors,
    select_inference_weights,
)
from ldmvfi_core.model.fused_heads import pad_heads
from ldmvfi_core.model.ldmvfi import EncodedFrame, LatentDiffusionVFI
from ldmvfi_core.model.maxvit import fuse_attention_projections
from ldmvfi_core.model.precision import cast_matmul_weights
from ldmvfi_core.model.tiling import TileSettings
from ldmvfi_core.ops.finite import all_finite
from ldmvfi_core.ops.padding import Padding, PaddingMode, plan_padding
from ldmvfi_core.ops.upload import upload
from ldmvfi_core.prealign import crop_canvas, fuse_candidates, pair_disagreement, prealigned_pair
from ldmvfi_core.sampling.ddim import DDIMStep
from ldmvfi_core.sampling.graphs import GraphedCall

FrameT = TypeVar("FrameT", np.ndarray, Tensor)

DEFAULT_STEPS = 200  # the official scripts' default, for models that recommend no other
DEFAULT_ETA = 1.0  # idem (stochastic DDIM); reproducible here through the seed

SamplingPriority = Literal["high", "normal"]
# torch.cuda.Stream priorities: lower is higher; out-of-range values map to the nearest level.
STREAM_PRIORITY: dict[SamplingPriority, int] = {"high": -1, "normal": 0}
# Padded frames larger than this decode in tiles (2048x2048: 1080p decodes whole, 4K in tiles).
AUTO_TILE_PIXELS = 2048 * 2048


def default_steps_of(model: LatentDiffusionVFI) -> int:
    """DDIM steps used when none are given: the weights file's recommendation, else 200."""
    return model.default_steps or DEFAULT_STEPS


def check_steps(steps: int) -> None:
    """A step count as the commands take it: 0 (the model's own) or more."""
    if steps < 0:
        raise ValueError(f"--steps must be 0 (the model's own) or more, got {steps}")


def default_weights_path() -> Path | None:
    """The model shipped inside the package, if this build has one."""
    shipped = Path(__file__).parent / "weights" / "ldmvfi-default.safetensors"
    return shipped if shipped.is_file() else None


@dataclass(frozen=True)
class PreparedFrame:
    """A source frame on the device, normalised to [-1, 1], padded, and encoded; with a
    self-ensemble (``Interpolator(ensemble=4 or more)``) also its turned views, each padded and
    encoded as a frame of its own (a transposed view has its own padding)."""

    encoded: EncodedFrame
    padding: Padding
    channels: int
    turned: Mapping[Orientation, PreparedFrame] = field(default_factory=dict)

    def seen(self, how: Orientation) -> PreparedFrame:
        """This frame turned as ``how`` says (``""``: as it is)."""
        if not how:
            return self
        if how not in self.turned:
            raise ValueError(f"this frame was prepared without its {how!r} view: prepare it with "
                             "the Interpolator that interpolates it")
        return self.turned[how]


def stack_prepared(frames: Sequence[PreparedFrame]) -> PreparedFrame:
    """Several prepared frames of the same size as one batch (for ``interpolate_prepared``)."""
    if not frames:
        raise ValueError("nothing to stack")
    first = frames[0]
    if len(frames) == 1:
        return first  # no copy: at 4K a frame's pyramid is gigabytes
    for other in frames[1:]:
        if other.padding != first.padding or other.channels != first.channels:
            raise ValueError(
                f"cannot batch frames of different sizes: {first.padding.height}x{first.padding.width}x"
                f"{first.channels} and {other.padding.height}x{other.padding.width}x{other.channels}"
            )
    encoded = EncodedFrame(
        latent=torch.cat([f.encoded.latent for f in frames]),
        pyramid=[torch.cat(level) for level in zip(*(f.encoded.pyramid for f in frames), strict=True)],
        frame=torch.cat([f.encoded.frame for f in frames]),
    )
    turned = {how: stack_prepared([f.seen(how) for f in frames]) for how in first.turned}
    return PreparedFrame(encoded, first.padding, first.channels, turned)


def batch_items(frame: PreparedFrame, start: int, stop: int) -> PreparedFrame:
    """Items ``start:stop`` of a batched prepared frame (views, no copies)."""
    e = frame.encoded
    encoded = EncodedFrame(latent=e.latent[start:stop], pyramid=[level[start:stop] for level in e.pyramid],
                           frame=e.frame[start:stop])
    turned = {how: batch_items(view, start, stop) for how, view in frame.turned.items()}
    return PreparedFrame(encoded, frame.padding, frame.channels, turned)


@dataclass(frozen=True)
class SampledLatents:
    """The middle frames' latents of one batch, one tensor per ensemble view, as
    ``Interpolator.start_sampling`` queued them; ``ready`` is recorded on the sampling stream when
    they were queued on one (None: they are on the current stream)."""

    latents: list[Tensor]
    ready: torch.cuda.Event | None


def _view_pair(f0: PreparedFrame, f1: PreparedFrame, view: View) -> tuple[PreparedFrame, PreparedFrame]:
    """The pair as ``view`` sees it: turned, and swapped for the time-reversed views."""
    a, b = f0.seen(view.orientation), f1.seen(view.orientation)
    return (b, a) if view.reverse else (a, b)


class Interpolator:
    """Midpoint interpolation with LDMVFI on frames of any size.

    Args:
        model: the network (weights loaded, any device).
        device: where to run; the model is moved there.
        dtype: float32 (reference numerics) or bfloat16/float16 (faster on GPUs; the U-Net's conv and
            linear weights are then cast to it in place, as autocast would at every step).
        padding: ``"minimal"`` (default: pad to the model's 256-px multiple, works for every
            size down to 1x1) or ``"reference"`` (the official rule, for matching its numbers).
        tile: decoder tiling for large frames: ``"auto"`` (tile padded frames above
            ``AUTO_TILE_PIXELS``), ``None`` (never), or explicit ``TileSettings``.
        cuda_graphs: replay the U-Net step as a CUDA graph (CUDA devices only; one graph per
            latent shape, kept for the Interpolator's lifetime).
        compile: run the U-Net through ``torch.compile`` and, on GPUs, the autoencoder's encoder
            and decoder too (optional; the first frame of each size pays the compilation, about a
            minute for the released config; see :func:`compile_autoencoder`).
        decode_batch: in-betweens decoded per decoder call when several are interpolated at once.
            The DDIM sampler always runs the whole batch together (its U-Net steps are too small
            to fill a GPU alone); the decoder works at full resolution and fills it with one
            frame, so decoding one at a time (the default) keeps its activations to one frame's.
        ensemble: 1 (the model alone), 2, 4, 8 or 16: each in-between is the mean of that many
            views of its pair (time-reversed, mirrored left-right, mirrored top-bottom, transposed;
            see ``ldmvfi_core.ensemble``), at that many times the sampling and decoding work; 4, 8
            and 16 also encode every source frame 2, 4 and 8 times.
        prealign: also interpolate each pair shifted by half its camera move, in whole pixels
            (``ldmvfi_core.prealign``), and fuse the two in-betweens pixel by pixel towards the one
            whose inputs agree better there (``fuse_candidates``): for pans and tilts, which the
            model bridges less well than the residual they leave. Decided pair by pair; a pair
            without a clear move of ``MIN_MOTION`` px or more is interpolated once, as it is; one
            with it costs twice the work.
    """

    def __init__(
        self,
        model: LatentDiffusionVFI,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        padding: PaddingMode = "minimal",
        tile: TileSettings | Literal["auto"] | None = "auto",
        cuda_graphs: bool = False,
        compile: bool = False,
        decode_batch: int = 1,
        ensemble: int = 1,
        prealign: bool = False,
    ) -> None:
        if decode_batch < 1:
            raise ValueError(f"decode_batch must be at least 1, got {decode_batch}")
        check_ensemble(ensemble)
        self.ensemble = ensemble
        self.prealign = prealign
        self.device = torch.device(device)
        self.tile = tile
        self.decode_batch = decode_batch
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[tuple[object, ...], GraphedCall] = {}
        # Experimental (session 12; `bench/speed.py --graph-decode`): replay untiled decodes as CUDA
        # graphs too, one per frame size; needs cuda_graphs (autocast without its weight cache).
        self.decode_graphs = False
        self._decode_graphs: dict[tuple[object, ...], GraphedCall] = {}
        # Sampling on a stream of its own (``start_sampling``); off: everything on the current stream.
        self.overlap_sampling = True
        # That stream's priority. High: the U-Net's small, latency-bound kernels start as soon as an
        # SM frees up instead of queueing behind the decode's full-card convolutions (session 15).
        self.sampling_priority: SamplingPriority = "high"
        self._stream: tuple[SamplingPriority, torch.cuda.Stream] | None = None
        self.dtype = dtype
        self.padding_mode: PaddingMode = padding
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.config: LDMVFIConfig = model.config
        if dtype != torch.float32:
            # autocast would round these weights to `dtype` at every step anyway (see model/precision.py)
            cast_matmul_weights(self.model.unet, dtype)
            if self.device.type == "cuda":
                # cuDNN's bf16 convolutions want NHWC: without this each one converts its input (~12% of a step)
                self.model.unet.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # the stub lacks it
                # and channel counts that are multiples of 8: the synthesis heads' 25/5/3-channel layers
                # made it pad their inputs at every decode (1080p: decode 47.8 -> 44.8 ms; same sums), and
                # it runs 8 -> 8 layers on a slow kernel: the five as one block-diagonal convolution
                # (decode kernels 35.9 -> 33.9 ms, session 12); and each conv+ReLU as one cuDNN call
                # (ops/conv_relu.py): decode kernels 34.5 -> 30.8 ms compiled, 90.6 -> 74.2 eager,
                # along a shot 74.1 -> 68.3 ms (1080p, H100, session 16).
                pad_heads(self.model.first_stage_model.decoder, block_tail=True, fused_relu_dtype=dtype)
        # The MaxViT projections that read one tensor as one matmul (after the casts above: the stack
        # copies the weights as they are): fewer, fuller GEMMs in the U-Net's small-latent steps.
        fuse_attention_projections(self.model)
        # torch.compile fuses the U-Net's ~2,000 small kernels per step; compiled once per latent shape.
        self.denoiser_module: nn.Module = (
            torch.compile(self.model.unet, dynamic=False) if compile else self.model.unet  # type: ignore[assignment]
        )
        if compile and self.device.type == "cuda":
            compile_autoencoder(self.model.first_stage_model)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        weights: WeightsChoice = "ema",
        config: LDMVFIConfig | None = None,
        padding: PaddingMode = "minimal",
        tile: TileSettings | Literal["auto"] | None = "auto",
        cuda_graphs: bool = False,
        compile: bool = False,
        decode_batch: int = 1,
        ensemble: int = 1,
        prealign: bool = False,
    ) -> Interpolator:
        """Load an official ``.ckpt`` or one of our ``.safetensors`` (default: the shipped model)."""
        model = load_model(path, weights=weights, config=config)
        return cls(model, device=device, dtype=dtype, padding=padding, tile=tile, cuda_graphs=cuda_graphs,
                   compile=compile, decode_batch=decode_batch, ensemble=ensemble, prealign=prealign)

    @property
    def default_steps(self) -> int:
        return default_steps_of(self.model)

    def resolve_steps(self, steps: int | None) -> int:
        """``steps`` as given; None or 0 mean the model's own (``default_steps``)."""
        if steps is None:
            return self.default_steps
        check_steps(steps)
        return steps or self.default_steps

    def tiles_for(self, padding: Padding) -> TileSettings | None:
        """The decoder tiling used for frames of this padded size."""
        if self.tile == "auto":
            h, w = padding.padded_size
            return TileSettings() if h * w > AUTO_TILE_PIXELS else None
        return self.tile

    # -- building blocks, public so the retimer can cache encoded source frames ---------------

    def plan_padding(self, height: int, width: int) -> Padding:
        return plan_padding(height, width, self.padding_mode, self.config.latent_multiple)

    def prepare(self, frame: np.ndarray | Tensor, *, check_finite: bool = True) -> PreparedFrame:
        """Normalise, pad and encode a source frame (H x W x C or B x H x W x C).

        ``check_finite``: refuse a frame with NaN or Inf values (ValueError). Off only for frames
        known to be finite: the check of a tensor on a GPU waits for the GPU."""
        return self.prepare_model_units(self.to_model_units(_to_nchw(frame, check_finite)))

    def to_model_units(self, x: Tensor) -> Tensor:
        """(B, C, H, W) frames in [0, 1] units, on this device in the model's: RGB [0,1] -> [-1,1]
        (equal to the official (v - 0.5) / 0.5); extra channels keep their units."""
        x = upload(x, self.device)
        return torch.cat([x[:, :3] * 2.0 - 1.0, x[:, 3:]], dim=1)

    def prepare_model_units(self, x: Tensor) -> PreparedFrame:
        """Pad and encode a (B, C, H, W) frame already in model units (RGB in [-1, 1]).

        The retimer feeds synthesised frames back through this for deeper recursion levels.
        """
        x = x.to(self.device, torch.float32)
        turned = {how: self._encode(orient(x, how)) for how in orientations_for(self.ensemble)}
        return replace(self._encode(x), turned=turned)

    def _encode(self, x: Tensor) -> PreparedFrame:
        # each view is turned before padding, so it is padded (and later cropped) like a frame of its own
        padding = self.plan_padding(x.shape[-2], x.shape[-1])
        with torch.inference_mode(), self._autocast():
            encoded = self.model.encode(padding.pad(x))
        return PreparedFrame(encoded=encoded, padding=padding, channels=x.shape[1])

    def start_noise(self, padding: Padding, seeds: Sequence[int]) -> Tensor:
        """z_T for each seed, drawn on the CPU so it is the same on every device."""
        h, w = padding.padded_size
        down = self.config.autoencoder.downscale
        shape = (self.config.autoencoder.embed_dim, h // down, w // down)
        noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        return upload(noise, self.device)

    def sample_prepared(
        self,
        f0: PreparedFrame,
        f1: PreparedFrame,
        *,
        steps: int | None = None,
        eta: float = DEFAULT_ETA,
        seed: int | Sequence[int] = 0,
        x_T: Tensor | None = None,
        callback: Callable[[DDIMStep], None] | None = None,
    ) -> Tensor:
        """The middle frames' latents (B, 3, h, w) by DDIM, the whole batch at once (before the VQ snap)."""
        if f0.padding != f1.padding or f0.channels != f1.channels:
            raise ValueError(
                f"frames differ: {f0.padding.height}x{f0.padding.width}x{f0.channels} vs "
                f"{f1.padding.height}x{f1.padding.width}x{f1.channels}"
            )
        seeds = _batch_seeds(seed, f0.encoded.latent.shape[0])
        if x_T is None:
            x_T = self.start_noise(f0.padding, seeds)
        tables = self.model.ddim_tables(self.resolve_steps(steps), eta)
        generators = [torch.Generator().manual_seed(_noise_seed(s)) for s in seeds]
        denoiser = self.denoiser_for(f0.encoded.latent)
        with torch.inference_mode(), self._autocast():
            return self.model.sample_latent(
                f0.encoded, f1.encoded, x_T.to(self.device), tables, generator=generators, callback=callback,
                denoiser=denoiser,
            )

    def decode_prepared(self, z: Tensor, f0: PreparedFrame, f1: PreparedFrame) -> Tensor:
        """Decode latents ``z`` between ``f0`` and ``f1`` (``decode_batch`` frames per decoder call):
        (B, C, H, W) float32, cropped, unclamped."""
        tiles = self.tiles_for(f0.padding)
        outs = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, z.shape[0], self.decode_batch):
                stop = start + self.decode_batch
                a, b = batch_items(f0, start, stop), batch_items(f1, start, stop)
                decoded = self.decode_encoded(z[start:stop], a.encoded, b.encoded, tiles, f0.padding.size)
                outs.append(f0.padding.crop(decoded.float()))
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def decode_encoded(self, z: Tensor, e0: EncodedFrame, e1: EncodedFrame, tiles: TileSettings | None,
                       valid: tuple[int, int]) -> Tensor:
        """``model.decode`` at the padded size, as a CUDA-graph replay when ``decode_graphs`` is on
        and the decode is untiled."""
        if not (self.decode_graphs and self.cuda_graphs and tiles is None):
            return self.model.decode(z, e0, e1, tiles=tiles, valid=valid)
        return self._graphed_decode(valid, len(e0.pyramid))(z, e0.frame, e1.frame, *e0.pyramid, *e1.pyramid)

    def _graphed_decode(self, valid: tuple[int, int], levels: int) -> GraphedCall:
        """The untiled decode of frames of ``valid`` size as a ``GraphedCall`` of (z, both frames,
        both pyramids), which it copies into the graph's inputs (1080p: ~1 GB, ~0.5 ms on an H100)."""
        graphed = self._decode_graphs.get((valid, levels))
        if graphed is None:
            ae = self.model.first_stage_model

            def decode(z: Tensor, frame0: Tensor, frame1: Tensor, *pyramids: Tensor) -> Tensor:
                return ae.decode(z, frame0, frame1, list(pyramids[:levels]), list(pyramids[levels:]), valid)

            graphed = self._decode_graphs[(valid, levels)] = GraphedCall(decode)
        return graphed

    def start_sampling(
        self,
        f0: PreparedFrame,
        f1: PreparedFrame,
        *,
        steps: int | None = None,
        eta: float = DEFAULT_ETA,
        seed: int | Sequence[int] = 0,
        x_T: Tensor | None = None,
        callback: Callable[[DDIMStep], None] | None = None,
    ) -> SampledLatents:
        """Queue the DDIM sampling of the middle frames' latents, one per ensemble view (same
        seeds; a given ``x_T`` transposed for the transposed views); ``finish_decoding`` turns
        them into frames.

        With ``overlap_sampling`` on a GPU the sampling runs on a stream of its own, so a caller
        that starts the next in-between before it decodes this one keeps two stages on the card
        at once (1080p along a shot: ~12 ms less an in-between, the same frames; bench/RESULTS.md,
        thirteenth round). Keep ``f0`` and ``f1`` until ``finish_decoding``: the sampling stream
        may still be reading them.
        """
        stream = self._sampling_stream()
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream(self.device))  # the encodes it reads
        latents = []
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            for view in views_for(self.ensemble):
                a, b = _view_pair(f0, f1, view)
                start = x_T.transpose(-1, -2) if x_T is not None and "t" in view.orientation else x_T
                latents.append(self.sample_prepared(a, b, steps=steps, eta=eta, seed=seed, x_T=start,
                                                    callback=callback))
        ready = None
        if stream is not None:
            ready = torch.cuda.Event()
            ready.record(stream)
        return SampledLatents(latents, ready)

    def finish_decoding(self, sampled: SampledLatents, f0: PreparedFrame, f1: PreparedFrame) -> Tensor:
        """Decode what ``start_sampling(f0, f1)`` queued on the current stream: the middle frames,
        (B, C, H, W) float32, cropped, unclamped, the ensemble's views turned back and averaged."""
        if sampled.ready is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(sampled.ready)
            for z in sampled.latents:
                z.record_stream(current)  # allocated on the sampling stream, read on this one
        total: Tensor | None = None
        views = views_for(self.ensemble)
        for view, z in zip(views, sampled.latents, strict=True):
            a, b = _view_pair(f0, f1, view)
            out = unorient(self.decode_prepared(z, a, b), view.orientation)
            total = out if total is None else total + out
        assert total is not None
        return total if len(views) == 1 else total / len(views)

    def interpolate_prepared(
        self,
        f0: PreparedFrame,
        f1: PreparedFrame,
        *,
        steps: int | None = None,
        eta: float = DEFAULT_ETA,
        seed: int | Sequence[int] = 0,
        x_T: Tensor | None = None,
        callback: Callable[[DDIMStep], None] | None = None,
    ) -> Tensor:
        """The middle frame, (B, C, H, W) float32, cropped, unclamped: RGB in the model's [-1, 1]
        units, extra channels in their own units. The batch is sampled together and decoded
        ``decode_batch`` frames at a time; with an ensemble, once per view (same seeds; a given
        ``x_T`` transposed for the transposed views), and the views' results, turned back, are
        averaged."""
        sampled = self.start_sampling(f0, f1, steps=steps, eta=eta, seed=seed, x_T=x_T, callback=callback)
        return self.finish_decoding(sampled, f0, f1)

    def _sampling_stream(self) -> torch.cuda.Stream | None:
        if not (self.overlap_sampling and self.device.type == "cuda"):
            return None
        if self._stream is None or self._stream[0] != self.sampling_priority:
            priority = STREAM_PRIORITY[self.sampling_priority]
            self._stream = (self.sampling_priority, torch.cuda.Stream(self.device, priority=priority))
        return self._stream[1]

    def interpolate(
        self,
        frame0: FrameT,
        frame1: FrameT,
        *,
        steps: int | None = None,
        eta: float = DEFAULT_ETA,
        seed: int | Sequence[int] = 0,
        callback: Callable[[DDIMStep], None] | None = None,
    ) -> FrameT:
        """The frame half-way between ``frame0`` and ``frame1``, same layout and type as the inputs.

        ``steps``: DDIM steps; None or 0 use the model's own (``default_steps``). ``callback`` sees
        every DDIM step; with ``prealign`` and a moving pair, those of both passes, one after the other.
        RGB is clamped to [0, 1] (the official ``clamp(-1, 1)``); extra channels are not.
        For a batch, ``seed`` is one seed per item (an int means ``seed, seed+1, ...``); each
        item's noise depends only on its own seed, never on what else is in the batch.
        """
        batched = frame0.ndim == 4
        x0, x1 = _to_nchw(frame0), _to_nchw(frame1)
        u0, u1 = self.to_model_units(x0), self.to_model_units(x1)
        out = self.interpolate_prepared(self.prepare_model_units(u0), self.prepare_model_units(u1), steps=steps,
                                        eta=eta, seed=seed, callback=callback)
        if self.prealign:
            out = self._fused_with_prealigned(out, (x0, x1), (u0, u1), steps=steps, eta=eta, seed=seed,
                                              callback=callback)
        out = torch.cat([((out[:, :3] + 1.0) / 2.0).clamp(0.0, 1.0), out[:, 3:]], dim=1)
        result = out.permute(0, 2, 3, 1)
        result = result if batched else result[0]
        if isinstance(frame0, np.ndarray):
            return result.cpu().numpy()  # type: ignore[return-value]
        return result.to(frame0.device)  # type: ignore[return-value]

    def _fused_with_prealigned(self, plain: Tensor, frames: tuple[Tensor, Tensor], units: tuple[Tensor, Tensor], *,
                               steps: int | None, eta: float, seed: int | Sequence[int],
                               callback: Callable[[DDIMStep], None] | None) -> Tensor:
        """``plain`` (the in-betweens of the pairs ``frames``, as given; ``units``: the same in model
        units on the device) fused with those of the pairs pre-aligned on their camera moves
        (``ldmvfi_core.prealign``); as it is where no pair moves. The moves are measured from
        ``frames``: host frames need no download from the device."""
        a0, a1, margin = prealigned_pair(*frames)
        if margin == (0, 0):
            return plain
        a0, a1 = self.to_model_units(a0), self.to_model_units(a1)
        u0, u1 = units
        aligned = self.interpolate_prepared(self.prepare_model_units(a0), self.prepare_model_units(a1), steps=steps,
                                            eta=eta, seed=seed, callback=callback)
        size = (u0.shape[-2], u0.shape[-1])
        aligned = crop_canvas(aligned, margin, size)
        aligned_disagreement = crop_canvas(pair_disagreement(a0, a1), margin, size)
        return fuse_candidates(plain, aligned, pair_disagreement(u0, u1), aligned_disagreement)

    def denoiser_for(self, latent: Tensor) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
        """The U-Net step used for latents like ``latent``: a CUDA-graph replay when enabled."""
        if not self.cuda_graphs:
            return self.denoiser_module
        key = (tuple(latent.shape), self.dtype)
        return self._graphs.setdefault(key, GraphedCall(self.denoiser_module))

    def _autocast(self) -> torch.autocast:
        enabled = self.dtype != torch.float32
        # No cached weight casts with CUDA graphs: the cache would be freed behind the graph.
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled, cache_enabled=not self.cuda_graphs)


def compile_autoencoder(autoencoder: nn.Module, backend: str | Callable[..., object] = "inductor") -> None:
    """``torch.compile`` the encoder and the decoder in place, one graph per frame size.

    Why: their full-resolution levels are chains of memory-bound passes (float32 GroupNorm under
    autocast, SiLU, layout changes around cuDNN) that inductor fuses. H100, released config, 1080p
    bf16: encode 34.5 -> 12.0 ms, decode 104.7 -> 48.7 ms, decoded frame within 0.0035 of eager
    (bench/RESULTS.md). The warp (dsepconv) stays outside: it is the CUDA kernel already.
    """
    for part in (autoencoder.encoder, autoencoder.decoder):
        part.compile(dynamic=False, backend=backend)


def dtype_named(precision: str) -> torch.dtype:
    """``float32`` / ``bfloat16`` / ``float16`` (the ``--precision`` choices) -> the torch dtype."""
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def _batch_seeds(seed: int | Sequence[int], batch: int) -> list[int]:
    seeds = [int(seed) + i for i in range(batch)] if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for a batch of {batch} frames")
    return seeds


def _noise_seed(seed: int) -> int:
    # A different stream from the start noise's, so eta > 0 noise is not a copy of z_T.
    return (int(seed) * 2654435761 + 0x9E3779B9) % (2**63)


def _to_nchw(frame: np.ndarray | Tensor, check_finite: bool = True) -> Tensor:
    """H x W x C / B x H x W x C array or tensor -> float32 (B, C, H, W) in [0, 1] units."""
    if isinstance(frame, np.ndarray):
        if frame.dtype == np.uint8:
            t = torch.from_numpy(np.ascontiguousarray(frame)).to(torch.float32) / 255.0
        else:
            t = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32))
    elif isinstance(frame, Tensor):
        t = frame.to(torch.float32) / 255.0 if frame.dtype == torch.uint8 else frame.to(torch.float32)
    else:
        raise TypeError(f"expected a numpy array or torch tensor, got {type(frame).__name__}")
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] < 3:
        raise ValueError(
            f"expected an H x W x C frame with at least 3 channels, got shape {tuple(frame.shape)}")
    if check_finite and not all_finite(t):
        raise ValueError("frame contains NaN or Inf values")
    return t.permute(0, 3, 1, 2)


def load_model(
    path: str | os.PathLike[str] | None = None,
    *,
    weights: WeightsChoice = "ema",
    config: LDMVFIConfig | None = None,
) -> LatentDiffusionVFI:
    """Build the network for a weights file and load it (CPU, float32, eval mode)."""
    if path is None:
        path = default_weights_path()
        if path is None:
            raise CheckpointError(
                "no default model is shipped in this build: pass a weights file (--model)")
    tensors, metadata = read_tensors(path)
    if config is None:
        config = config_from_metadata(metadata) or infer_config(tensors, path)
    state = select_inference_weights(tensors, path, weights)
    with torch.device("meta"):
        model = LatentDiffusionVFI(config)
    check_state_dict(model.state_dict(), state, path)
    model.load_state_dict(state, strict=True, assign=True)
    model.default_steps = default_steps_from_metadata(metadata, path)
    return model.float().eval()
