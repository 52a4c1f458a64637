# SPDX-License-Identifier: MIT
"""Nearest-codebook vector quantiser of VQ-FIGAN (inference only).

In LDMVFI the codebook is used only by the decoder: the final DDIM latent is snapped to the
nearest of ``n_embed`` codes before decoding. The conditioning latents are not quantised.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class VectorQuantizer(nn.Module):
    """Codebook ``E`` (``embedding.weight``, shape (n_embed, embed_dim)) and the snap ``z -> e_{j*}``.

    The commitment loss of training is not implemented (it does not affect inference).
    """

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.n_embed = n_embed
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def indices(self, z: Tensor) -> Tensor:
        """Nearest code per latent pixel of ``z`` (B, D, h, w) -> int64 (B*h*w,), (b, y, x) row-major.

        Squared distance ``d_j = |z|^2 + |e_j|^2 - 2 z.e_j`` in float32; ties go to the lowest index.
        """
        flat = z.to(torch.float32).permute(0, 2, 3, 1).reshape(-1, self.embed_dim)
        codes = self.embedding.weight.to(torch.float32)
        dist = (flat.pow(2).sum(dim=1, keepdim=True) + codes.pow(2).sum(dim=1)) - 2 * torch.matmul(
            flat, codes.t()
        )
        return torch.argmin(dist, dim=1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Snap ``z`` (B, D, h, w) to the codebook.

        Returns ``(z_q, indices)``: ``z_q = z + (e_{j*} - z)`` in float32 (the straight-through
        form of the official code, which may differ from ``e_{j*}`` in the last bits), shape as ``z``;
        ``indices`` int64 of shape (B*h*w,).
        """
        if z.dim() != 4 or z.shape[1] != self.embed_dim:
            raise ValueError(f"expected a (B, {self.embed_dim}, h, w) latent, got {tuple(z.shape)}")
        idx = self.indices(z)
        b, _, h, w = z.shape
        e = self.embedding.weight.to(torch.float32)[idx].reshape(b, h, w, self.embed_dim).permute(0, 3, 1, 2)
        z32 = z.to(torch.float32)
        return z32 + (e - z32).detach(), idx
