# SPDX-License-Identifier: MIT
"""The linear noise schedule of LDM (Rombach et al. 2022) and the DDIM tables (Song et al. 2021).

Numerics follow the official code (NOTES §9): the schedule is computed in float64 and stored in
float32; the DDIM tables are read from that float32 ``alphas_cumprod``. Square roots are taken as
correctly rounded float32 (via float64), because CPU ``torch.sqrt`` in float32 is not always
correctly rounded and the official tables came from NumPy's (correctly rounded) ``sqrt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ldmvfi_core.config import ScheduleConfig

__all__ = ["DDIMTables", "ddim_tables", "ddim_timesteps", "linear_alphas_cumprod"]


def linear_alphas_cumprod(cfg: ScheduleConfig) -> Tensor:
    """``cumprod(1 - beta)`` for ``beta = linspace(sqrt(start), sqrt(end), T)**2`` (LDM "linear").

    Float64 math (``torch.linspace`` as upstream), float32 result: the official buffer values.
    """
    start, end = cfg.linear_start**0.5, cfg.linear_end**0.5
    betas = torch.linspace(start, end, cfg.timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


def ddim_timesteps(num_train_steps: int, steps: int) -> Tensor:
    """DDIM's "uniform" timesteps, official rule: ``arange(0, T, T // S) + 1`` (int64, ascending).

    This yields ``ceil(T / (T // S))`` steps, which is more than ``S`` when ``S`` does not divide
    ``T`` (S=30 gives 31). Step counts whose last timestep would be ``T`` (the official code then
    fails with an index error, e.g. S=300 or S=1000 for T=1000) raise ValueError.
    """
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"DDIM steps must be in [1, {num_train_steps}], got {steps}")
    stride = num_train_steps // steps
    timesteps = torch.arange(0, num_train_steps, stride, dtype=torch.int64) + 1
    if int(timesteps[-1]) > num_train_steps - 1:
        ok = [s for s in range(1, num_train_steps + 1) if _exact_and_valid(num_train_steps, s)]
        below = max((s for s in ok if s < steps), default=None)
        above = min((s for s in ok if s > steps), default=None)
        nearby = " or ".join(str(s) for s in (below, above) if s is not None)
        raise ValueError(
            f"{steps} DDIM steps are not supported: the official timestep rule arange(0, {num_train_steps}, "
            f"{stride}) + 1 reaches t={int(timesteps[-1])}, past the last trained timestep "
            f"{num_train_steps - 1}; use e.g. {nearby} steps"
        )
    return timesteps


def _exact_and_valid(num_train_steps: int, steps: int) -> bool:
    """True if the official rule gives exactly ``steps`` timesteps, all below ``num_train_steps``."""
    stride = num_train_steps // steps
    return (num_train_steps - 1) % stride != 0 and -(-num_train_steps // stride) == steps


def _f32(x: Tensor) -> Tensor:
    """Round float64 values to float32 (returned as float64 for further exact-ish arithmetic)."""
    return x.to(torch.float32).to(torch.float64)


@dataclass(frozen=True)
class DDIMTables:
    """Per-step DDIM constants, ascending in ``t`` (the sampler walks them in reverse).

    ``alphas[i] = ac[t_i]``, ``alphas_prev[i] = ac[t_{i-1}]`` with ``alphas_prev[0] = ac[0]`` (not 1),
    ``sqrt_one_minus_alphas[i] = sqrt(1 - alphas[i])`` and
    ``sigmas[i] = eta * sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))`` (DDIM Eq. 16). All float32
    except ``timesteps`` (int64).
    """

    timesteps: Tensor
    alphas: Tensor
    alphas_prev: Tensor
    sqrt_one_minus_alphas: Tensor
    sigmas: Tensor

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])


def ddim_tables(alphas_cumprod: Tensor, steps: int, eta: float) -> DDIMTables:
    """Build the DDIM tables the official ``DDIMSampler.make_schedule`` builds.

    ``alphas_cumprod`` is the model's float32 buffer (length T). ``1 - a`` is formed in float32
    and its square root correctly rounded to float32; sigmas are computed in float64 (from the
    float32 ``1 - a``, as upstream) and rounded to float32.
    """
    if alphas_cumprod.ndim != 1:
        raise ValueError(f"alphas_cumprod must be 1-D, got shape {tuple(alphas_cumprod.shape)}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    ac = alphas_cumprod.detach().to("cpu", torch.float32)
    timesteps = ddim_timesteps(ac.shape[0], steps)
    alphas = ac[timesteps]
    alphas_prev = torch.cat([ac[:1], ac[timesteps[:-1]]])

    a = alphas.to(torch.float64)
    a_prev = alphas_prev.to(torch.float64)
    one_minus_a = _f32(1.0 - a)  # float32 subtraction (exact in float64, then rounded)
    sqrt_one_minus = torch.sqrt(one_minus_a).to(torch.float32)
    sigmas = (eta * torch.sqrt((1.0 - a_prev) / one_minus_a * (1.0 - a / a_prev))).to(torch.float32)
    return DDIMTables(
        timesteps=timesteps,
        alphas=alphas.clone(),
        alphas_prev=alphas_prev,
        sqrt_one_minus_alphas=sqrt_one_minus,
        sigmas=sigmas,
    )
