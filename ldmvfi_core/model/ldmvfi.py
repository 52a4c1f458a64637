# SPDX-License-Identifier: MIT
"""The whole LDMVFI network: VQ-FIGAN first stage + denoising U-Net + noise schedule.

Attribute names match the official ``LatentDiffusionVFI`` so a state dict maps one to one:
``first_stage_model`` (autoencoder), ``model.diffusion_model`` (U-Net, holding the inference
weights: EMA when loaded from an official checkpoint) and the 12 schedule buffers.

Paper symbols (Danier et al. 2024, Sec. 3): ``I0, I1`` neighbour frames, ``z0, z1`` their latents
(the conditioning, not quantised), ``phi0, phi1`` their feature pyramids, ``z_T`` the start
noise, ``z`` the denoised latent of the middle frame, decoded with MaxCA to ``phi0, phi1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ldmvfi_core.config import LDMVFIConfig, ScheduleConfig
from ldmvfi_core.model.autoencoder import VQFIGAN
from ldmvfi_core.model.tiling import TileSettings, predict_heads_tiled
from ldmvfi_core.model.unet import UNet
from ldmvfi_core.sampling.ddim import DDIMStep, sample_ddim
from ldmvfi_core.sampling.schedule import DDIMTables, ddim_tables

SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
)


def schedule_buffers(cfg: ScheduleConfig) -> dict[str, Tensor]:
    """DDPM (Ho et al. 2020) schedule tables in float64, stored as float32 like the official model."""
    start, end = cfg.linear_start**0.5, cfg.linear_end**0.5
    betas = torch.linspace(start, end, cfg.timesteps, dtype=torch.float64) ** 2
    alphas = 1.0 - betas
    ac = torch.cumprod(alphas, 0)
    ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    posterior_variance = betas * (1.0 - ac_prev) / (1.0 - ac)
    tables = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - ac).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / ac - 1).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * ac_prev.sqrt() / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * alphas.sqrt() / (1.0 - ac),
    }
    return {name: tables[name].to(torch.float32) for name in SCHEDULE_BUFFERS}


class _DiffusionWrapper(nn.Module):
    """Holds the U-Net under the official name ``model.diffusion_model``."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.diffusion_model = unet


@dataclass(frozen=True)
class EncodedFrame:
    """What the model needs of one source frame (reusable across output frames)."""

    latent: Tensor  # z (B, 3, h, w), before VQ: half of the conditioning
    pyramid: list[Tensor]  # phi[0..L-1], keys/values of the decoder's MaxCA
    frame: Tensor  # the padded frame in [-1, 1], warped by the decoder's dsepconv


def _forget_tables_after_load(module: nn.Module, incompatible_keys: object) -> None:
    """A load may rewrite ``alphas_cumprod`` in place without a version count (inference tensors)."""
    module._tables = (None, None, {})  # type: ignore[assignment]


class LatentDiffusionVFI(nn.Module):
    def __init__(self, config: LDMVFIConfig) -> None:
        super().__init__()
        self.config = config
        # DDIM steps its weights file recommends (safetensors metadata ``default_steps``); None:
        # the paper's 200. Not part of the state dict.
        self.default_steps: int | None = None
        self.first_stage_model = VQFIGAN(config.autoencoder)
        self.model = _DiffusionWrapper(UNet(config.unet))
        for name, value in schedule_buffers(config.schedule).items():
            self.register_buffer(name, value)
        # DDIM tables by (steps, eta), for one state of alphas_cumprod (see ddim_tables)
        self._tables: tuple[Tensor | None, int | None, dict[tuple[int, float], DDIMTables]] = (None, None, {})
        self.register_load_state_dict_post_hook(_forget_tables_after_load)

    alphas_cumprod: Tensor

    @property
    def unet(self) -> UNet:
        return self.model.diffusion_model

    @property
    def autoencoder(self) -> VQFIGAN:
        return self.first_stage_model

    def encode(self, frame: Tensor) -> EncodedFrame:
        """Encode one padded frame (B, C, H, W) in [-1, 1]; channels beyond RGB are not seen."""
        latent, pyramid = self.first_stage_model.encode(frame[:, :3])
        return EncodedFrame(latent=latent, pyramid=pyramid, frame=frame)

    def ddim_tables(self, steps: int, eta: float) -> DDIMTables:
        """The DDIM tables (on the CPU) for ``steps`` and ``eta``, from the loaded ``alphas_cumprod``
        (as the official sampler reads them, not a fresh schedule).

        Kept per buffer state: reading a GPU buffer back is a copy that waits for all the work
        queued before it, so building the tables at every in-between stalled the thread that
        queues the next one until the GPU had drained (session 18). They are rebuilt when the
        buffer is another tensor (a move or a cast makes one; the cache holds the old one, so its
        memory cannot come back as a look-alike), when its version counter moved (an in-place
        write), and after any ``load_state_dict`` (inference tensors count no versions)."""
        buffer = self.alphas_cumprod
        version = None if buffer.is_inference() else buffer._version
        kept, kept_version, known = self._tables
        if buffer is not kept or version != kept_version:
            known = {}
            self._tables = (buffer, version, known)
        if (steps, float(eta)) not in known:
            known[steps, float(eta)] = ddim_tables(buffer.detach().float().cpu(), steps, eta)
        return known[steps, float(eta)]

    def sample_latent(
        self,
        e0: EncodedFrame,
        e1: EncodedFrame,
        x_T: Tensor,
        tables: DDIMTables,
        *,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        callback: Callable[[DDIMStep], None] | None = None,
        denoiser: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
    ) -> Tensor:
        """DDIM in latent space conditioned on ``cat(z0, z1)`` (concat conditioning).

        ``denoiser(x, t, cond)`` replaces the plain U-Net call (e.g. a CUDA-graph replay).
        """
        cond = torch.cat([e0.latent, e1.latent], dim=1)
        unet = denoiser if denoiser is not None else self.unet  # not `or`: a compiled module has no truth value

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            return unet(x, t, cond)

        return sample_ddim(denoise, x_T, tables, generator=generator, callback=callback)

    def decode(
        self, z: Tensor, e0: EncodedFrame, e1: EncodedFrame, tiles: TileSettings | None = None,
        valid: tuple[int, int] | None = None,
    ) -> Tensor:
        """VQ-snap ``z`` and decode the middle frame at the padded size (unclamped, all channels).

        With ``tiles`` the decoder heads are predicted tile by tile (large frames, less memory).
        ``valid``: the frame's size before padding; the decoder's last layers then skip most of
        the padding, which the caller crops away (``Decoder.forward``).
        """
        ae = self.first_stage_model
        if tiles is None:
            return ae.decode(z, e0.frame, e1.frame, e0.pyramid, e1.pyramid, valid)
        z_quant, _ = ae.quantize_latent(z)
        heads = predict_heads_tiled(ae, z_quant, e0.pyramid, e1.pyramid, tiles, valid)
        return ae.synthesize(heads, e0.frame, e1.frame)
