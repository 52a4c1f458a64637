# SPDX-License-Identifier: MIT
"""DDIM sampling (Song et al. 2021, Eq. 12) as a pure function, k-diffusion style.

Matches the official ``DDIMSampler.p_sample_ddim`` (NOTES §9): for ``i`` from the last table
entry to the first, with ``t = timesteps[i]``::

    e    = denoise(x, t)
    x0   = (x - sqrt(1 - a_i) * e) / sqrt(a_i)          # no clipping
    dir  = sqrt(1 - a_prev_i - sigma_i^2) * e
    x    = sqrt(a_prev_i) * x0 + dir + sigma_i * noise

and returns the final ``x`` (not ``x0``). The per-step scalars are formed in float32 arithmetic
from the float32 tables, as upstream, with correctly rounded float32 square roots.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ldmvfi_core.sampling.schedule import DDIMTables

__all__ = ["DDIMStep", "sample_ddim"]


@dataclass(frozen=True)
class DDIMStep:
    """What the callback sees after each step.

    ``index`` counts executed steps from 0 to ``total - 1`` (``t`` decreases as it grows), ``x`` is
    the latent after the step and ``pred_x0`` the clean-latent estimate made during it.
    """

    index: int
    total: int
    t: int
    x: Tensor
    pred_x0: Tensor


def _f32(v: float) -> float:
    """Round a Python float to the nearest float32 value."""
    return struct.unpack("f", struct.pack("f", v))[0]


def _sqrt32(v: float) -> float:
    """Correctly rounded float32 square root of a float32 value (CPU ``torch.sqrt`` is not)."""
    return _f32(math.sqrt(v))


@dataclass(frozen=True)
class _StepScalars:
    sqrt_a: float
    sqrt_one_minus_a: float
    sqrt_a_prev: float
    dir_coef: float
    sigma: float


def _step_scalars(tables: DDIMTables) -> list[_StepScalars]:
    """Float32 per-step coefficients, computed exactly as float32 ops would (via float64)."""
    out = []
    a = tables.alphas.detach().to("cpu", torch.float32).tolist()
    a_prev = tables.alphas_prev.detach().to("cpu", torch.float32).tolist()
    s1m = tables.sqrt_one_minus_alphas.detach().to("cpu", torch.float32).tolist()
    sig = tables.sigmas.detach().to("cpu", torch.float32).tolist()
    for a_i, ap_i, s1m_i, sig_i in zip(a, a_prev, s1m, sig, strict=True):
        # upstream: (1. - a_prev - sigma_t**2).sqrt() on float32 tensors
        var = _f32(_f32(1.0 - ap_i) - _f32(sig_i * sig_i))
        if var < 0:
            raise ValueError(f"DDIM step with a_prev={ap_i} and sigma={sig_i}: 1 - a_prev - sigma^2 < 0")
        out.append(_StepScalars(_sqrt32(a_i), s1m_i, _sqrt32(ap_i), _sqrt32(var), sig_i))
    return out


def _draw_all_noise(x: Tensor, generator: torch.Generator | Sequence[torch.Generator] | None,
                    needed: Sequence[bool]) -> list[Tensor | None]:
    """The noise of every step that needs some, drawn up front in step order (the same values as
    drawing at each step) and moved to the device in one copy: a copy per step from a CPU
    generator would stall the GPU queue at every step. Without a generator, a fresh randomly
    seeded one (never the global RNG)."""
    if not any(needed):
        return [None] * len(needed)
    if generator is None:
        generator = torch.Generator(device=x.device)
        generator.seed()
    drawn = [_draw_noise_on(x, generator) for flag in needed if flag]
    stacked = torch.stack(drawn)
    if stacked.device != x.device:
        if x.device.type == "cuda":
            stacked = stacked.pin_memory()
        stacked = stacked.to(x.device, non_blocking=True)
    steps = iter(stacked.unbind(0))
    return [next(steps) if flag else None for flag in needed]


def _draw_noise_on(x: Tensor, generator: torch.Generator | Sequence[torch.Generator]) -> Tensor:
    """One step's noise for ``x``, on the generator's device."""
    if isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    if len(generator) != x.shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {x.shape[0]}")
    return torch.stack([torch.randn(x.shape[1:], generator=g, device=g.device, dtype=x.dtype) for g in generator])


def sample_ddim(
    denoise: Callable[[Tensor, Tensor], Tensor],
    x_T: Tensor,
    tables: DDIMTables,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    callback: Callable[[DDIMStep], None] | None = None,
) -> Tensor:
    """Run DDIM from ``x_T`` over ``tables`` (last timestep first) and return the final latent.

    ``denoise(x, t)`` returns eps for the latent ``x`` (B,C,h,w) and int64 timesteps ``t`` (B,);
    the caller closes over the conditioning. Noise for ``sigma > 0`` is drawn with
    ``torch.randn(generator=generator)`` only (never the global RNG; without a generator a fresh,
    randomly seeded one is used), so a seeded generator makes the run reproducible. Gradients are
    not disabled here: wrap the call in ``torch.inference_mode()`` for inference.

    ``generator`` may also be one generator per batch item: each item's noise then comes from its
    own stream, so a frame renders the same whatever else shares its batch.
    """
    scalars = _step_scalars(tables)
    timesteps = [int(t) for t in tables.timesteps.tolist()]
    total = len(timesteps)
    batch = x_T.shape[0]
    order = list(reversed(range(total)))
    noises = _draw_all_noise(x_T, generator, [scalars[i].sigma > 0 for i in order])
    # Under inference mode every later x is an inference tensor; make the first one too, or a
    # torch.compile'd U-Net sees two kinds of input and compiles every latent shape twice.
    x = x_T.clone() if torch.is_inference_mode_enabled() and not x_T.is_inference() else x_T
    for index, i in enumerate(order):
        t, c = timesteps[i], scalars[i]
        t_batch = torch.full((batch,), t, dtype=torch.int64, device=x.device)
        eps = denoise(x, t_batch)
        pred_x0 = (x - c.sqrt_one_minus_a * eps) / c.sqrt_a
        x = c.sqrt_a_prev * pred_x0 + c.dir_coef * eps
        noise = noises[index]
        if noise is not None:
            x = x + c.sigma * noise
        if callback is not None:
            callback(DDIMStep(index=index, total=total, t=t, x=x, pred_x0=pred_x0))
    return x
