# SPDX-License-Identifier: MIT
"""Dead-code restart for the VQ-FIGAN codebook (stage 1).

Why: taming's codebook starts as ``uniform(-1/n, 1/n)`` with ``n = 8192`` codes of 3 numbers, far
from where the encoder's latents live. Only the few codes nearest the first latents ever win the
nearest-code search, the commitment term pulls the encoder onto them, and the rest never move.
Our first SMALL run collapsed to 3 codes in use: the middle-frame latent then carries nothing, the
decoder's cross-attention queries are constant, and it can only learn frame averaging (it did, and
stopped there). The official run escapes this with hundreds of epochs; we cannot afford them.

The fix is the standard one (Dhariwal et al. 2020, "Jukebox"; Zeghidour et al. 2021,
"SoundStream"): count how often each code is picked and, every ``every`` steps, move the codes
nobody picked onto latents of the current batch (plus a little noise so copies of one latent
split apart). The first restart, after step 1, is a data-dependent initialisation of the whole
codebook. The architecture and the inference path are unchanged; only where the codes sit moves.

Deterministic (the latents are drawn with a generator seeded from the run seed and the step) and
DDP-safe (counts are summed over processes, rank 0's draw is broadcast), so resume stays exact:
the counts are part of the checkpoint.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor


def _draw_seed(seed: int, step: int) -> int:
    digest = hashlib.blake2b(f"codebook:{seed}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


class CodebookReviver:
    """Counts code usage and restarts unused codes every ``every`` steps (0 disables it)."""

    def __init__(self, n_embed: int, every: int, seed: int, noise: float = 0.01) -> None:
        if every < 0:
            raise ValueError(f"codebook restart interval must be >= 0, got {every}")
        self.n_embed = n_embed
        self.every = every
        self.seed = seed
        self.noise = noise
        self.counts: Tensor | None = None  # int64 (n_embed,), on the training device

    def observe(self, indices: Tensor) -> Tensor:
        """Add one step's code indices to the counts; returns how many distinct codes it used."""
        flat = indices.detach().reshape(-1)
        # index_add_, not bincount: on a GPU bincount reads the largest index back to the host to
        # size its output, which would stall every training step mid-way.
        per_code = torch.zeros(self.n_embed, dtype=torch.int64, device=flat.device).index_add_(
            0, flat, torch.ones_like(flat, dtype=torch.int64))
        if self.counts is None or self.counts.device != per_code.device:
            self.counts = torch.zeros(self.n_embed, dtype=torch.int64, device=per_code.device)
        self.counts += per_code
        return (per_code > 0).sum()

    def due(self, steps_done: int) -> bool:
        return self.every > 0 and (steps_done == 1 or steps_done % self.every == 0)

    @torch.no_grad()
    def restart(self, steps_done: int, latents: Tensor, codebook: Tensor,
                optimizer: torch.optim.Optimizer | None = None) -> int:
        """If due, move unused codes of ``codebook`` (n_embed, D) onto rows of ``latents`` (B, D, h, w).

        Their Adam moments are zeroed too (stale moments would fling the moved code away).
        Returns the number of codes moved (0 when not due).
        """
        if not self.due(steps_done) or self.counts is None:
            return 0
        counts = self.counts.clone()
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed:
            torch.distributed.all_reduce(counts)
        dead = (counts == 0).nonzero().flatten()
        self.counts.zero_()
        n_dead = int(dead.numel())
        if n_dead == 0:
            return 0
        pool = latents.detach().float().permute(0, 2, 3, 1).reshape(-1, codebook.shape[1])
        gen = torch.Generator(device=pool.device).manual_seed(_draw_seed(self.seed, steps_done))
        pick = torch.randint(pool.shape[0], (n_dead,), generator=gen, device=pool.device)
        spread = pool.std(dim=0, keepdim=True).clamp_min(1e-6)
        jitter = torch.randn((n_dead, pool.shape[1]), generator=gen, device=pool.device) * spread * self.noise
        fresh = (pool[pick] + jitter).to(codebook.dtype)
        if distributed:
            torch.distributed.broadcast(fresh, src=0)
        codebook[dead] = fresh
        if optimizer is not None:
            _zero_moments(optimizer, codebook, dead)
        return n_dead

    def state_dict(self) -> dict[str, Any]:
        counts = self.counts.cpu() if self.counts is not None else torch.zeros(self.n_embed, dtype=torch.int64)
        return {"counts": counts, "every": self.every}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        counts = state["counts"]
        if counts.shape != (self.n_embed,):
            raise ValueError(f"codebook usage counts have shape {tuple(counts.shape)}, expected ({self.n_embed},)")
        self.counts = counts.to(device=device, dtype=torch.int64)


def _zero_moments(optimizer: torch.optim.Optimizer, param: Tensor, rows: Tensor) -> None:
    state = optimizer.state.get(param, {})
    for key in ("exp_avg", "exp_avg_sq"):
        moment = state.get(key)
        if isinstance(moment, Tensor) and moment.shape == param.shape:
            moment[rows] = 0
