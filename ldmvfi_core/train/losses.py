# SPDX-License-Identifier: MIT
"""Loss terms of both training stages.

Stage 1 (VQ-FIGAN, the official ``VQLPIPSWithDiscriminator`` recipe):

* ``vq_loss``: the codebook and commitment terms of VQ-VAE (van den Oord et al. 2017). The
  quantiser in ``model/quantize.py`` only returns ``(z + (e - z).detach(), indices)``, so the
  terms are computed here from the pre-quantisation latent ``z`` and the codebook rows ``e``;
* ``hinge_d_loss`` / ``generator_loss``: hinge GAN on PatchGAN logits;
* ``adaptive_weight``: VQGAN's balance ``|grad nll| / (|grad G| + 1e-4)`` at the last layer;
* ``adopt_weight``: 0 before ``disc_start`` steps.

Stage 2 (latent diffusion, ``loss_type l2``, eps parameterisation): ``diffusion_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def codebook_rows(codebook: Tensor, indices: Tensor, like: Tensor) -> Tensor:
    """Rows ``codebook[indices]`` laid out as ``like`` (B, D, h, w); indices in (b, y, x) order."""
    b, d, h, w = like.shape
    return codebook[indices].reshape(b, h, w, d).permute(0, 3, 1, 2)


def vq_loss(z: Tensor, codebook: Tensor, indices: Tensor, beta: float = 0.25, legacy: bool = True
            ) -> tuple[Tensor, dict[str, Tensor]]:
    """VQ loss of the latent ``z`` (B, D, h, w) snapped to ``codebook[indices]``.

    ``codebook_term = mean((e - sg(z))^2)`` moves the codes, ``commit_term = mean((sg(e) - z)^2)``
    pulls the encoder. ``legacy=False`` is the VQ-VAE form ``codebook + beta * commit``;
    ``legacy=True`` (what taming's ``VectorQuantizer2`` does by default and LDMVFI trained with)
    swaps the weights: ``commit + beta * codebook``. Returns the loss and both terms (float32).
    """
    z = z.float()
    e = codebook_rows(codebook.float(), indices, z)
    codebook_term = F.mse_loss(e, z.detach())
    commit_term = F.mse_loss(z, e.detach())
    loss = commit_term + beta * codebook_term if legacy else codebook_term + beta * commit_term
    return loss, {"vq_codebook": codebook_term.detach(), "vq_commit": commit_term.detach()}


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """``0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(G))))``."""
    return 0.5 * (F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean())


def generator_loss(logits_fake: Tensor) -> Tensor:
    """Generator side of the hinge GAN: ``-mean(D(G))``."""
    return -logits_fake.float().mean()


def adopt_weight(weight: float, step: int, threshold: int) -> float:
    """``weight`` once ``step >= threshold``, else 0 (the discriminator warm-up)."""
    return weight if step >= threshold else 0.0


def adaptive_weight(nll_loss: Tensor, g_loss: Tensor, last_layer: Tensor, disc_weight: float) -> Tensor:
    """VQGAN's adaptive GAN weight, ``disc_weight * |d nll / dW| / (|d G / dW| + 1e-4)``, clamped to
    [0, 1e4] and detached. ``W`` is the last layer that both terms reach (the decoder's
    ``conv_out`` weight here). Uses ``autograd.grad``, so no ``.grad`` is touched."""
    nll_grad = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = nll_grad.float().norm() / (g_grad.float().norm() + 1e-4)
    return torch.clamp(weight, 0.0, 1e4).detach() * disc_weight


def diffusion_loss(eps_pred: Tensor, eps: Tensor) -> Tensor:
    """``loss_simple`` of the official LatentDiffusion with ``loss_type l2``: mean squared error.

    With ``logvar_init 0`` and ``original_elbo_weight 0`` (the released config) the full
    training loss equals this term."""
    return F.mse_loss(eps_pred.float(), eps.float())
