# SPDX-License-Identifier: MIT
"""Model hyper-parameters as small typed dataclasses.

Two ways in:

* ``LDMVFIConfig.released()`` / ``LDMVFIConfig.tiny()`` for the two configurations we test against;
* ``LDMVFIConfig.from_official(mapping)`` for the official YAML layout
  (``configs/ldm/ldmvfi-vqflow-f32-c256-concat_max.yaml``: ``{"model": {"params": {...}}}``),
  which is also what we embed in our own safetensors files (``to_official()``).

Only the values that change the network or the schedule are kept; the rest of the official YAML
(learning rates, monitors, data keys) belongs to training and is ignored here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Inner widths of the decoder's kernel/offset/mask/residual heads: fixed in the official code,
# not in the YAML.
HEAD_HIDDEN = (64, 32)


@dataclass(frozen=True)
class AutoencoderConfig:
    """VQ-FIGAN (``VQFlowNetInterface``) hyper-parameters.

    Constraints: ``len(ch_mult)`` levels, each halving the resolution, so the latent is
    1/2**levels of the (padded) frame; every latent side must then be a multiple of ``window``
    for the MaxViT partitions. ``ch * ch_mult[i]`` must be a multiple of 32 (GroupNorm groups).
    """

    ch: int = 64
    ch_mult: tuple[int, ...] = (1, 2, 2, 2, 4)
    num_res_blocks: int = 1
    in_channels: int = 3
    out_ch: int = 3
    z_channels: int = 3
    embed_dim: int = 3
    n_embed: int = 8192
    dropout: float = 0.0
    num_head_channels: int = 32  # decoder cross-attention head width (not in the released YAML)
    window: int = 8  # MaxViT window of the autoencoder attention blocks
    kernel_size: int = 5  # taps per axis of the deformable separable convolution

    @property
    def levels(self) -> int:
        return len(self.ch_mult)

    @property
    def downscale(self) -> int:
        """Frame pixels per latent pixel along each axis (32 for the released model)."""
        return 2**self.levels


@dataclass(frozen=True)
class UNetConfig:
    """Denoising U-Net (``openaimodel.UNetModel`` with ``use_max_self_attn``) hyper-parameters.

    The MaxViT window is ``min(image_size // 4, 8)`` (2 for the released model); the latent side
    must be divisible by ``window * 2**(len(channel_mult) - 1)``.
    """

    in_channels: int = 9
    out_channels: int = 3
    model_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_head_channels: int = 32
    image_size: int = 8

    @property
    def window(self) -> int:
        return min(self.image_size // 4, 8)

    @property
    def time_embed_dim(self) -> int:
        return self.model_channels * 4

    @property
    def latent_multiple(self) -> int:
        """Latent sides must be a multiple of this."""
        return self.window * 2 ** (len(self.channel_mult) - 1)


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear-in-sqrt beta schedule of the official ``LatentDiffusion`` (``beta_schedule: linear``)."""

    timesteps: int = 1000
    linear_start: float = 0.0015
    linear_end: float = 0.0195


@dataclass(frozen=True)
class LDMVFIConfig:
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    @property
    def latent_multiple(self) -> int:
        """Frame pixels the padded frame must be a multiple of (per axis) for the whole model."""
        ae = self.autoencoder
        latent_side = _lcm(ae.window, self.unet.latent_multiple)
        return ae.downscale * latent_side

    @classmethod
    def released(cls) -> LDMVFIConfig:
        """``ldmvfi-vqflow-f32-c256-concat_max.yaml``, the config of the released checkpoint."""
        return cls()

    @classmethod
    def tiny(cls) -> LDMVFIConfig:
        """The scaled-down config of the official golden vectors (tests/fixtures/tiny)."""
        return cls(
            autoencoder=AutoencoderConfig(ch=32, ch_mult=(1, 1, 1, 1, 1), num_head_channels=16),
            unet=UNetConfig(
                model_channels=32, channel_mult=(1, 1, 1), num_res_blocks=1, num_head_channels=16
            ),
        )

    @classmethod
    def from_official(cls, cfg: Mapping[str, Any]) -> LDMVFIConfig:
        """Build from the official YAML/JSON layout (with or without the top ``model:`` key)."""
        model = cfg.get("model", cfg)
        params = model["params"]
        unet_p = params["unet_config"]["params"]
        ae_p = params["first_stage_config"]["params"]
        dd = ae_p["ddconfig"]
        if not unet_p.get("use_max_self_attn", False):
            raise ValueError("only the MaxViT U-Net (use_max_self_attn: True) is supported")
        if dd.get("cond_type", "max_cross_attn") != "max_cross_attn":
            raise ValueError(f"unsupported decoder cond_type {dd.get('cond_type')!r}")
        if dd.get("attn_resolutions"):
            raise ValueError("attention inside the autoencoder levels is not supported")
        autoencoder = AutoencoderConfig(
            ch=int(dd["ch"]),
            ch_mult=tuple(int(m) for m in dd["ch_mult"]),
            num_res_blocks=int(dd["num_res_blocks"]),
            in_channels=int(dd.get("in_channels", 3)),
            out_ch=int(dd.get("out_ch", 3)),
            z_channels=int(dd["z_channels"]),
            embed_dim=int(ae_p["embed_dim"]),
            n_embed=int(ae_p["n_embed"]),
            dropout=float(dd.get("dropout", 0.0)),
            num_head_channels=int(dd.get("num_head_channels", 32)),
        )
        unet = UNetConfig(
            in_channels=int(unet_p["in_channels"]),
            out_channels=int(unet_p["out_channels"]),
            model_channels=int(unet_p["model_channels"]),
            channel_mult=tuple(int(m) for m in unet_p["channel_mult"]),
            num_res_blocks=int(unet_p["num_res_blocks"]),
            attention_resolutions=tuple(int(a) for a in unet_p["attention_resolutions"]),
            num_head_channels=int(unet_p["num_head_channels"]),
            image_size=int(unet_p.get("image_size", params.get("image_size", 8))),
        )
        schedule = ScheduleConfig(
            timesteps=int(params.get("timesteps", 1000)),
            linear_start=float(params.get("linear_start", 0.0015)),
            linear_end=float(params.get("linear_end", 0.0195)),
        )
        return cls(autoencoder=autoencoder, unet=unet, schedule=schedule)

    @classmethod
    def from_file(cls, path: str | Path) -> LDMVFIConfig:
        """Read the official YAML (``.yaml``/``.yml``) or its JSON equivalent."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml  # only needed for the official YAML files

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        return cls.from_official(data)

    def to_official(self) -> dict[str, Any]:
        """The official layout, enough for ``from_official`` to rebuild this config."""
        ae, un, sc = self.autoencoder, self.unet, self.schedule
        return {
            "model": {
                "target": "ldm.models.diffusion.ddpm.LatentDiffusionVFI",
                "params": {
                    "linear_start": sc.linear_start,
                    "linear_end": sc.linear_end,
                    "timesteps": sc.timesteps,
                    "image_size": un.image_size,
                    "channels": ae.embed_dim,
                    "concat_mode": True,
                    "unet_config": {
                        "target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                        "params": {
                            "image_size": un.image_size,
                            "in_channels": un.in_channels,
                            "out_channels": un.out_channels,
                            "model_channels": un.model_channels,
                            "attention_resolutions": list(un.attention_resolutions),
                            "num_res_blocks": un.num_res_blocks,
                            "channel_mult": list(un.channel_mult),
                            "num_head_channels": un.num_head_channels,
                            "use_max_self_attn": True,
                        },
                    },
                    "first_stage_config": {
                        "target": "ldm.models.autoencoder.VQFlowNetInterface",
                        "params": {
                            "embed_dim": ae.embed_dim,
                            "n_embed": ae.n_embed,
                            "ddconfig": {
                                "double_z": False,
                                "z_channels": ae.z_channels,
                                "in_channels": ae.in_channels,
                                "out_ch": ae.out_ch,
                                "ch": ae.ch,
                                "ch_mult": list(ae.ch_mult),
                                "num_res_blocks": ae.num_res_blocks,
                                "cond_type": "max_cross_attn",
                                "attn_type": "max",
                                "attn_resolutions": [],
                                "dropout": ae.dropout,
                                "num_head_channels": ae.num_head_channels,
                            },
                        },
                    },
                },
            }
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lcm(a: int, b: int) -> int:
    from math import gcd

    return a * b // gcd(a, b)
