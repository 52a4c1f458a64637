# SPDX-License-Identifier: MIT
"""Stage 1: train VQ-FIGAN (the autoencoder, paper Sec. 3.1) on frame triplets.

One step on a batch ``(B, 3, 3, H, W)`` = (frame0, frame1 = the true middle, frame2):

1. the encoder runs once on ``cat(frame0, frame1, frame2)`` (it has no BatchNorm, so batching
   the three frames changes nothing); frame0/frame2 give the pyramids ``phi0, phi2``, frame1
   gives the latent ``z`` (after ``quant_conv``);
2. ``z`` is vector-quantised with the straight-through estimator, the decoder attends to
   ``phi0, phi2`` (MaxCA) and warps frame0/frame2 -> the reconstruction of frame1;
3. generator loss (``Stage1Loss``): L1 + perceptual + adaptive-weight hinge GAN + VQ loss;
   Adam step on the autoencoder;
4. after ``disc_start`` steps, a hinge-loss step of the PatchGAN discriminator on
   ``(frame1, reconstruction.detach())``.

Differences from the official Lightning loop, all deliberate: the discriminator step reuses the
reconstruction of step 3 instead of decoding again after the autoencoder update (one decode per
step instead of two); before ``disc_start`` neither the discriminator nor its optimiser runs
(the official code runs them with a zero factor, which leaves the weights unchanged); the
perceptual network is EfficientNet-Lite0 instead of LPIPS-VGG (``perceptual.py``).

The MaxCA ``out_conv`` weights, which the official forward never calls, are frozen so that
DistributedDataParallel sees no unused parameters.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ldmvfi_core.model.autoencoder import VQFIGAN, DecoderHeads
from ldmvfi_core.model.checkpoint import AE_PREFIX
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.codebook import CodebookReviver
from ldmvfi_core.train.configs import Stage1Loss
from ldmvfi_core.train.discriminator import PatchDiscriminator, RealFakePair
from ldmvfi_core.train.ema import EMA, holds_shadow
from ldmvfi_core.train.flow_teacher import flow_centroid_loss, flow_teacher_loss
from ldmvfi_core.train.layout import to_channels_last
from ldmvfi_core.train.losses import adaptive_weight, adopt_weight, generator_loss, hinge_d_loss, vq_loss
from ldmvfi_core.train.perceptual import EfficientNetPerceptual
from ldmvfi_core.train.smoothness import offset_smoothness
from ldmvfi_core.train.ssim_loss import ssim_loss
from ldmvfi_core.train.view_consistency import first_items, random_view, turn_triplets, view_consistency


class Stage1Net(nn.Module):
    """The autoencoder forward of one training step (what DistributedDataParallel wraps)."""

    def __init__(self, ae: VQFIGAN, context_dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= context_dropout <= 1.0:
            raise ValueError(f"context dropout {context_dropout} is not a share between 0 and 1")
        self.ae = ae
        self.context_dropout = context_dropout

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor, DecoderHeads]:
        """``frames`` (B, 3, 3, H, W) -> (reconstruction of frame1 (B, 3, H, W), pre-VQ latent
        ``z`` of frame1 (B, D, h, w), codebook indices (B*h*w,), the decoder heads)."""
        ae = self.ae
        b = frames.shape[0]
        f0, f1, f2 = frames[:, 0], frames[:, 1], frames[:, 2]
        h, phi = ae.encoder(torch.cat([f0, f1, f2]))
        z = ae.quant_conv(h[b : 2 * b])
        z_quant, indices = ae.quantize_latent(z)
        phi0, phi2 = [p[:b] for p in phi], [p[2 * b :] for p in phi]
        if self.training and self.context_dropout > 0:
            # A dropped sample gets the next sample's neighbour features: useless for matching, so
            # it must be decoded through its latent, yet still real features, so the BatchNorm
            # statistics of MaxCA's input projection (kept for inference) see no fake zero maps.
            keep = torch.rand(b, 1, 1, 1, device=frames.device) >= self.context_dropout
            phi0 = [torch.where(keep, p, p.roll(-1, 0)) for p in phi0]
            phi2 = [torch.where(keep, p, p.roll(-1, 0)) for p in phi2]
        heads = ae.predict_heads(z_quant, phi0, phi2)
        return ae.synthesize(heads, f0, f2), z, indices, heads


def init_autoencoder(ae: VQFIGAN) -> None:
    """Fresh-start initialisation beyond PyTorch's defaults: taming's uniform(-1/n, 1/n) codebook."""
    n = ae.quantize.n_embed
    nn.init.uniform_(ae.quantize.embedding.weight, -1.0 / n, 1.0 / n)


def freeze_unused(ae: VQFIGAN) -> None:
    """The MaxCA ``out_conv`` modules exist in the official layout but are never called."""
    for name, module in ae.decoder.named_modules():
        if name.endswith("cross_attn.out_conv"):
            module.requires_grad_(False)


def _optimizer(params: list[nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float,
               adamw: bool) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if adamw else torch.optim.Adam
    return cls(params, lr=lr, betas=betas, weight_decay=weight_decay)


class Stage1Task:
    """Owns the autoencoder (inside ``model``), the discriminator, both optimisers and the loss."""

    stage = 1

    def __init__(self, model: LatentDiffusionVFI, loss: Stage1Loss, runtime: Any, lr: float,
                 betas: tuple[float, float] = (0.5, 0.9), weight_decay: float = 0.0, adamw: bool = False,
                 grad_clip: float = 0.0, perceptual: EfficientNetPerceptual | None = None,
                 seed: int = 0, channels_last: bool = False, ema_decay: float = 0.0) -> None:
        self.model = model
        self.cfg = loss
        self.rt = runtime
        self.lr = lr
        self.grad_clip = grad_clip
        self.init_loaded: list[str] = []  # what --init-from provided (set by the loop)
        ae = model.first_stage_model
        freeze_unused(ae)
        ae.to(runtime.device).train()
        self.ae = ae
        self.disc = PatchDiscriminator(ae.cfg.out_ch, loss.disc_ndf, loss.disc_layers).to(runtime.device).train()
        if loss.perceptual_weight > 0 and perceptual is None:
            warnings.warn("stage 1 without the perceptual term (no perceptual network given)",
                          RuntimeWarning, stacklevel=2)
        self.perceptual = perceptual.to(runtime.device) if perceptual is not None and loss.perceptual_weight > 0 \
            else None
        if channels_last:
            to_channels_last(ae, self.disc, self.perceptual)
        self.net = runtime.wrap(Stage1Net(ae, loss.context_dropout))
        self.disc_pair = runtime.wrap(RealFakePair(self.disc))
        ae_params = [p for p in ae.parameters() if p.requires_grad]
        self.opt_ae = _optimizer(ae_params, lr, betas, weight_decay, adamw)
        self.opt_disc = _optimizer(list(self.disc.parameters()), lr, betas, weight_decay, adamw)
        self._ae_params = ae_params
        self.reviver = CodebookReviver(ae.quantize.n_embed, loss.codebook_restart_every, seed)
        # Optional average of the autoencoder's iterates (--ae-ema; train/ema.py says why).
        self.ema = EMA(ae, ema_decay) if ema_decay > 0 else None

    # -- training -------------------------------------------------------------------------

    def _disc_logits_frozen(self, images: Tensor) -> Tensor:
        """Discriminator logits with its weights detached: the generator loss must not give the
        discriminator gradients (and must not go through its DDP wrapper)."""
        params = {name: p.detach() for name, p in self.disc.named_parameters()}
        return functional_call(self.disc, params, (images,))

    def flow_teacher_factor(self, step: int) -> float:
        """Weight of the flow-teacher term at ``step`` (0 when off or past ``flow_teacher_until``)."""
        cfg = self.cfg
        if cfg.flow_teacher_weight <= 0 or (cfg.flow_teacher_until and step >= cfg.flow_teacher_until):
            return 0.0
        return cfg.flow_teacher_weight

    def train_step(self, frames: Tensor, step: int, teacher: Tensor | None = None) -> dict[str, Tensor]:
        """One optimisation step on ``frames`` (B, 3, 3, H, W) in [-1, 1]; ``step`` = steps done so far.

        ``teacher`` (B, 2, 3, H, W): the flow teacher's displacements and weights
        (``flow_teacher.teacher_for``), used while ``flow_teacher_factor(step) > 0``.
        Returns detached float32 scalars for logging."""
        cfg = self.cfg
        own = frames.shape[0]
        view = None
        if cfg.view_consistency_weight > 0:  # the batch again, turned: both copies train (view_consistency.py)
            view = random_view(frames.shape[-2], frames.shape[-1])
            frames = torch.cat([frames, turn_triplets(frames, view)])
        target = frames[:, 1]
        disc_factor = adopt_weight(cfg.disc_factor, step, cfg.disc_start)
        logs: dict[str, Tensor] = {}
        with self.rt.autocast():
            xrec, z, indices, heads = self.net(frames)
            rec = (target.float() - xrec.float()).abs().mean()
            nll = cfg.pixel_weight * rec
            logs["l1"] = rec.detach()
            if cfg.ssim_weight > 0:  # a reconstruction term: part of nll, the GAN weight's reference
                structural = ssim_loss(xrec, target)
                nll = nll + cfg.ssim_weight * structural
                logs["ssim_loss"] = structural.detach()
            warp_heads = heads if view is None else first_items(heads, own)  # the teacher's samples
            teacher_factor = self.flow_teacher_factor(step)
            # Both teacher terms are added after the adaptive GAN weight's reference (nll): they guide the warp only.
            if teacher_factor > 0 or cfg.flow_centroid_weight > 0:
                if teacher is None:
                    raise ValueError("the flow-teacher term is on but the batch carries no teacher flows")
                if teacher_factor > 0:
                    flow_term = flow_teacher_loss(warp_heads.heads0[2:], warp_heads.heads1[2:], teacher,
                                                  self.ae.cfg.kernel_size)
                    logs["flow_teacher"] = flow_term.detach()
                if cfg.flow_centroid_weight > 0:
                    centroid_term = flow_centroid_loss(warp_heads, teacher)
                    logs["flow_centroid"] = centroid_term.detach()
            if cfg.offset_smoothness_weight > 0:
                smooth = offset_smoothness((*warp_heads.heads0[2:], *warp_heads.heads1[2:]), target[:own])
                logs["offset_smoothness"] = smooth.detach()
            if self.perceptual is not None:
                p_loss = self.perceptual(xrec, target).mean()
                nll = nll + cfg.perceptual_weight * p_loss
                logs["perceptual"] = p_loss.detach()
            vq, vq_terms = vq_loss(z, self.ae.quantize.embedding.weight, indices, cfg.beta, cfg.vq_legacy)
            logs.update(vq_terms)
            logs["codes_in_batch"] = self.reviver.observe(indices)
            loss = nll + cfg.codebook_weight * vq
            if teacher_factor > 0:
                loss = loss + teacher_factor * flow_term
            if cfg.flow_centroid_weight > 0:
                loss = loss + cfg.flow_centroid_weight * centroid_term
            if cfg.offset_smoothness_weight > 0:
                # Like the flow teacher, after the adaptive GAN weight's reference: it shapes the warp only.
                loss = loss + cfg.offset_smoothness_weight * smooth
            if view is not None:  # shapes the answer's agreement with itself, not its fidelity: after nll
                consistency = view_consistency(xrec[:own], xrec[own:], view)
                logs["view_consistency"] = consistency.detach()
                loss = loss + cfg.view_consistency_weight * consistency
            if disc_factor > 0:
                g_loss = generator_loss(self._disc_logits_frozen(xrec))
                d_weight = adaptive_weight(nll, g_loss, self.ae.decoder.conv_out.weight, cfg.disc_weight)
                loss = loss + d_weight * disc_factor * g_loss
                logs["g_loss"] = g_loss.detach()
                logs["d_weight"] = d_weight.detach()
        self.opt_ae.zero_grad(set_to_none=True)
        loss.backward()
        logs["grad_norm"] = clip_gradients(self._ae_params, self.grad_clip)
        self.opt_ae.step()
        logs["loss"] = loss.detach()
        self.reviver.restart(step + 1, z, self.ae.quantize.embedding.weight, self.opt_ae)
        if self.ema is not None:  # after the codebook restart: the average follows the weights as saved
            self.ema.update(self.ae)

        if disc_factor > 0:
            with self.rt.autocast():
                logits_real, logits_fake = self.disc_pair(target.detach(), xrec.detach())
                d_loss = disc_factor * hinge_d_loss(logits_real, logits_fake)
            self.opt_disc.zero_grad(set_to_none=True)
            d_loss.backward()
            clip_gradients(list(self.disc.parameters()), self.grad_clip)
            self.opt_disc.step()
            logs["d_loss"] = d_loss.detach()
            logs["logits_real"] = logits_real.detach().float().mean()
            logs["logits_fake"] = logits_fake.detach().float().mean()
        return {k: v.float() for k, v in logs.items()}

    # -- state ----------------------------------------------------------------------------

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"autoencoder": self.opt_ae, "discriminator": self.opt_disc}

    def state(self) -> dict[str, Any]:
        return {
            "model": {AE_PREFIX + k: v.detach().cpu() for k, v in self.ae.state_dict().items()},
            "discriminator": {k: v.detach().cpu() for k, v in self.disc.state_dict().items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers().items()},
            "codebook_usage": self.reviver.state_dict(),
            "ema": self.ema.state_dict(AE_PREFIX) if self.ema is not None else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        ae_state = {k[len(AE_PREFIX):]: v for k, v in state["model"].items() if k.startswith(AE_PREFIX)}
        self.ae.load_state_dict(ae_state, strict=True)
        if state.get("discriminator") is not None:  # a carried checkpoint drops one that never ran
            self.disc.load_state_dict(state["discriminator"], strict=True)
        for name, opt in self.optimizers().items():
            if name in state.get("optimizers", {}):  # a carried (slim) checkpoint has none: fresh Adam
                opt.load_state_dict(state["optimizers"][name])
        if state.get("codebook_usage") is not None:
            self.reviver.load_state_dict(state["codebook_usage"], self.rt.device)
        if self.ema is not None:
            if holds_shadow(state.get("ema"), AE_PREFIX):
                decay = self.ema.decay  # this run's --ae-ema wins over the checkpoint's
                self.ema.load_state_dict(state["ema"], AE_PREFIX)
                self.ema.decay = decay
            else:  # a checkpoint without an average: start one at its weights
                self.ema.restart(self.ae)

    def inference_state(self) -> dict[str, Tensor]:
        """Weights for export: the autoencoder, its average when kept (the U-Net is untrained in stage 1)."""
        weights = self.ema.weights(self.ae) if self.ema is not None else self.ae.state_dict()
        return {AE_PREFIX + k: v.detach().cpu() for k, v in weights.items()}


def clip_gradients(params: list[nn.Parameter], max_norm: float) -> Tensor:
    """Clip the gradient norm to ``max_norm`` (0: no clipping); returns the norm before clipping."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    limit = max_norm if max_norm > 0 else float("inf")
    return torch.nn.utils.clip_grad_norm_(grads, limit).detach().float()
