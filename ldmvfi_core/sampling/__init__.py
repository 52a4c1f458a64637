# SPDX-License-Identifier: MIT
"""Noise schedule and DDIM sampler (NOTES §9)."""

from ldmvfi_core.sampling.ddim import DDIMStep, sample_ddim
from ldmvfi_core.sampling.schedule import DDIMTables, ddim_tables, ddim_timesteps, linear_alphas_cumprod

__all__ = ["DDIMStep", "DDIMTables", "ddim_tables", "ddim_timesteps", "linear_alphas_cumprod", "sample_ddim"]
