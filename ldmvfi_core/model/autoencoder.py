# SPDX-License-Identifier: MIT
"""VQ-FIGAN, the first stage of LDMVFI (Danier et al., AAAI 2024, Sec. 3.1).

* Encoder ``E``: frame ``I`` (B, 3, H, W) -> latent ``z`` (B, 3, H/2^L, W/2^L) and the feature
  pyramid ``phi[0..L-1]`` (the outputs of the L stride-2 downsamplings).
* Vector quantiser: ``z`` -> nearest codebook entry (used on the decode path only).
* Decoder ``D``: the quantised latent is upsampled through L levels; at level ``i`` the MaxViT
  cross-attention (MaxCA) lets the decoder features attend to ``cat(phi0[i], phi1[i])`` of the
  two neighbour frames. The full-resolution feature ``F`` then feeds the output heads: the
  deformable separable kernels ``(v, h, alpha, beta)`` for each neighbour, the per-tap visibility
  mask ``m`` and the residual ``delta``, composed as
  ``I_hat = DSepConv(I0, v1, h1, alpha1, beta1, m) + DSepConv(I1, v2, h2, alpha2, beta2, 1 - m) + delta``.

Submodule and parameter names follow the official ``VQFlowNetInterface`` so a stripped
``first_stage_model.*`` state dict loads with ``strict=True``. Frames must already be padded to a
valid size (a multiple of ``2^L * window``); padding and cropping are the interpolator's job. No
state is kept on the module between calls.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ldmvfi_core.config import HEAD_HIDDEN, AutoencoderConfig
from ldmvfi_core.model.ae_blocks import Downsample, ResnetBlock, Upsample, group_norm, swish
from ldmvfi_core.model.fused_heads import FusedSynthesisHeads, PaddedSynthesisHeads
from ldmvfi_core.model.maxvit import MaxAttentionBlock, SpatialCrossAttentionWithMax
from ldmvfi_core.model.quantize import VectorQuantizer
from ldmvfi_core.ops.dsepconv import dsepconv_blend

# Extra channels (alpha, AOVs) are divided by the warp's total tap weight only where it is at least
# this large: a model whose taps nearly cancel somewhere should not multiply noise there.
EXTRA_CHANNEL_MIN_GAIN = 0.05

# (vertical v, horizontal h, offset_x = alpha, offset_y = beta) for one neighbour frame.
WarpHeads = tuple[Tensor, Tensor, Tensor, Tensor]

# conv_out and the four convolutions of every head are 3x3: a head's value at a pixel depends on
# the normalised feature map up to 5 px away, so 5 px past the picture are all the heads need.
HEAD_CONTEXT = 5


def heads_extent(valid: int, padded: int) -> int:
    """Rows (or columns) of the full-resolution feature the heads must see so that their first
    ``valid`` are exact: ``HEAD_CONTEXT`` more, rounded up to 8 for cuDNN, at most ``padded``."""
    return min(padded, -(-(valid + HEAD_CONTEXT) // 8) * 8)


@dataclass
class DecoderHeads:
    """Decoder outputs at the (padded) frame resolution, before the warp.

    ``feature`` is ``F`` after ``conv_out``. Suffix 1 refers to frame0, suffix 2 to frame1.
    Kernels (B, K, H, W) are not normalised; ``offset_x`` = alpha (official ``moduleAlpha*``,
    vertical shift), ``offset_y`` = beta (``moduleBeta*``, horizontal shift), both (B, K^2, H, W);
    ``mask`` (B, K^2, H, W) in (0, 1) weights frame0 per tap (frame1 gets ``1 - mask``);
    ``residual`` (B, out_ch, H, W) is ``delta``.
    """

    feature: Tensor
    vertical1: Tensor
    horizontal1: Tensor
    offset_x1: Tensor
    offset_y1: Tensor
    vertical2: Tensor
    horizontal2: Tensor
    offset_x2: Tensor
    offset_y2: Tensor
    mask: Tensor
    residual: Tensor

    @property
    def heads0(self) -> WarpHeads:
        """Warp parameters applied to frame0: ``(v1, h1, alpha1, beta1)``."""
        return (self.vertical1, self.horizontal1, self.offset_x1, self.offset_y1)

    @property
    def heads1(self) -> WarpHeads:
        """Warp parameters applied to frame1: ``(v2, h2, alpha2, beta2)``."""
        return (self.vertical2, self.horizontal2, self.offset_x2, self.offset_y2)

    def as_dict(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _level_channels(cfg: AutoencoderConfig) -> list[int]:
    return [cfg.ch * m for m in cfg.ch_mult]


class _Mid(nn.Module):
    """ResnetBlock -> MaxViT self-attention (one head spanning all channels) -> ResnetBlock."""

    def __init__(self, channels: int, window: int, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = MaxAttentionBlock(channels, channels, window)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _DownLevel(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, dropout: float) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_channels if j == 0 else out_channels, out_channels, dropout)
            for j in range(num_blocks)
        )
        self.downsample = Downsample(out_channels)


class Encoder(nn.Module):
    """``FlowEncoder``: conv_in, L x (ResnetBlocks + Downsample), mid, GN-swish-conv_out."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        chs = _level_channels(cfg)
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = cfg.ch
        for c in chs:
            self.down.append(_DownLevel(block_in, c, cfg.num_res_blocks, cfg.dropout))
            block_in = c
        self.mid = _Mid(block_in, cfg.window, cfg.dropout)
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Frame (B, C_in, H, W) -> (pre-quant_conv latent (B, z, H/2^L, W/2^L), [phi_0 .. phi_{L-1}])."""
        h = self.conv_in(x)
        phi: list[Tensor] = []
        for level in self.down:
            for block in level.block:
                h = block(h)
            h = level.downsample(h)
            phi.append(h)
        h = self.mid(h)
        return self.conv_out(swish(self.norm_out(h))), phi


class _UpLevel(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, num_blocks: int, dropout: float, dim_head: int, window: int
    ) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_channels if j == 0 else out_channels, out_channels, dropout)
            for j in range(num_blocks)
        )
        self.cross_attn = SpatialCrossAttentionWithMax(out_channels, dim_head, window)
        self.upsample = Upsample(out_channels)


def _head(in_channels: int, out_channels: int, sigmoid: bool = False) -> nn.Sequential:
    """Four 3x3 convs ``in -> 64 -> 32 -> out -> out`` with ReLU between (conv keys 0, 2, 4, 6)."""
    h1, h2 = HEAD_HIDDEN
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, h1, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(h1, h2, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(h2, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
    ]
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    """``FlowDecoderWithResidual``: trunk with MaxCA at every level, then the synthesis heads."""

    # Set by ``fused_heads.fuse_heads`` / ``pad_heads`` for inference; not a registered submodule.
    fused_heads: FusedSynthesisHeads | PaddedSynthesisHeads | None = None

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        chs = _level_channels(cfg)
        k = cfg.kernel_size
        block_in = chs[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(block_in, cfg.window, cfg.dropout)
        levels: list[_UpLevel] = []
        for c in reversed(chs):
            levels.append(
                _UpLevel(block_in, c, cfg.num_res_blocks, cfg.dropout, cfg.num_head_channels, cfg.window)
            )
            block_in = c
        # Index i holds level i (applied from i = L-1 down to 0), as in the official checkpoint.
        self.up = nn.ModuleList(reversed(levels))
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, block_in, 3, padding=1)
        self.moduleKernelVertical1 = _head(block_in, k)
        self.moduleKernelHorizontal1 = _head(block_in, k)
        self.moduleAlpha1 = _head(block_in, k * k)
        self.moduleBeta1 = _head(block_in, k * k)
        self.moduleKernelVertical2 = _head(block_in, k)
        self.moduleKernelHorizontal2 = _head(block_in, k)
        self.moduleAlpha2 = _head(block_in, k * k)
        self.moduleBeta2 = _head(block_in, k * k)
        self.moduleMask = _head(block_in, k * k, sigmoid=True)
        self.moduleResidual = _head(block_in, cfg.out_ch)

    def forward(
        self, h: Tensor, phi0: list[Tensor], phi1: list[Tensor], valid: tuple[int, int] | None = None
    ) -> DecoderHeads:
        """``h``: post_quant_conv output (B, z, h, w); ``phi0/phi1``: the neighbours' encoder pyramids.

        ``valid`` (inference): the frame's size before padding (bottom/right). The full-resolution
        layers after the last normalisation then run on that part and ``HEAD_CONTEXT`` pixels
        more, and the heads are zero beyond it: exact where the picture is (the padding is
        cropped away afterwards), 21% fewer pixels for 1080p padded to 1280x2048. ``feature`` is
        then the cropped map.
        """
        if len(phi0) != len(self.up) or len(phi1) != len(self.up):
            raise ValueError(f"expected {len(self.up)} pyramid levels, got {len(phi0)} and {len(phi1)}")
        h = self.mid(self.conv_in(h))
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            for block in level.block:
                h = block(h)
            if phi0[i].shape[-2:] != h.shape[-2:] or phi1[i].shape[-2:] != h.shape[-2:]:
                raise ValueError(
                    f"pyramid level {i} is {tuple(phi0[i].shape[-2:])}/{tuple(phi1[i].shape[-2:])}, "
                    f"decoder features are {tuple(h.shape[-2:])}"
                )
            h = level.cross_attn(h, torch.cat([phi0[i], phi1[i]], dim=1))
            h = level.upsample(h)
        x = swish(self.norm_out(h))  # the normalisation's statistics cover the whole padded map
        padded = (x.shape[-2], x.shape[-1])
        if valid is not None:
            x = x[..., : heads_extent(valid[0], padded[0]), : heads_extent(valid[1], padded[1])]
        feature = self.conv_out(x)
        heads = self._heads(feature)
        if valid is not None and (feature.shape[-2], feature.shape[-1]) != padded:
            heads = {name: F.pad(value, (0, padded[1] - value.shape[-1], 0, padded[0] - value.shape[-2]))
                     for name, value in heads.items()}
        return DecoderHeads(feature=feature, **heads)

    def _heads(self, feature: Tensor) -> dict[str, Tensor]:
        if self.fused_heads is not None:  # inference: the ten heads another way (fused_heads.py)
            return self.fused_heads(feature)
        return {
            "vertical1": self.moduleKernelVertical1(feature),
            "horizontal1": self.moduleKernelHorizontal1(feature),
            "offset_x1": self.moduleAlpha1(feature),
            "offset_y1": self.moduleBeta1(feature),
            "vertical2": self.moduleKernelVertical2(feature),
            "horizontal2": self.moduleKernelHorizontal2(feature),
            "offset_x2": self.moduleAlpha2(feature),
            "offset_y2": self.moduleBeta2(feature),
            "mask": self.moduleMask(feature),
            "residual": self.moduleResidual(feature),
        }


class VQFIGAN(nn.Module):
    """The VQ-FIGAN autoencoder (official ``VQFlowNetInterface``), inference only.

    Use in ``eval()`` mode: the MaxCA MBConv BatchNorms must use their running statistics.
    """

    def __init__(self, cfg: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else AutoencoderConfig()
        c = self.cfg
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.quantize = VectorQuantizer(c.n_embed, c.embed_dim)
        self.quant_conv = nn.Conv2d(c.z_channels, c.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(c.embed_dim, c.z_channels, 1)

    @property
    def size_multiple(self) -> int:
        """Frame sides must be a multiple of this (latent sides a multiple of the MaxViT window)."""
        return self.cfg.downscale * self.cfg.window

    def _check_frame(self, frame: Tensor, name: str) -> None:
        m = self.size_multiple
        if frame.dim() != 4 or frame.shape[-2] % m or frame.shape[-1] % m:
            raise ValueError(
                f"{name} must be (B, C, H, W) with H and W multiples of {m} (pad it first), "
                f"got {tuple(frame.shape)}"
            )

    def encode(self, frame: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Frame (B, 3, H, W) in [-1, 1] -> (latent after ``quant_conv``, NOT quantised; pyramid phi).

        The latent is the conditioning half for the U-Net; ``phi[i]`` has ``ch * ch_mult[i]``
        channels at H/2^(i+1).
        """
        self._check_frame(frame, "frame")
        h, phi = self.encoder(frame)
        return self.quant_conv(h), phi

    def encode_pair(self, frame0: Tensor, frame1: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """U-Net conditioning ``cat(E(frame0), E(frame1))`` plus both pyramids."""
        z0, phi0 = self.encode(frame0)
        z1, phi1 = self.encode(frame1)
        return torch.cat([z0, z1], dim=1), phi0, phi1

    def quantize_latent(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """VQ snap: ``(z + (e - z) in float32, int64 indices in (b, y, x) order)``."""
        return self.quantize(z)

    def predict_heads(
        self, z_quant: Tensor, phi0: list[Tensor], phi1: list[Tensor], valid: tuple[int, int] | None = None
    ) -> DecoderHeads:
        """Decoder trunk (post_quant_conv, MaxCA to the pyramids, conv_out) and the output heads
        (``valid``: see ``Decoder.forward``)."""
        h = self.post_quant_conv(z_quant.to(self.post_quant_conv.weight.dtype))
        return self.decoder(h, phi0, phi1, valid)

    def synthesize(
        self, heads: DecoderHeads, frame0: Tensor, frame1: Tensor, *, add_residual: bool = True
    ) -> Tensor:
        """Warp and blend ``frame0``/``frame1`` (B, C, H, W) with ``heads`` (same H, W).

        Both frames are replication-padded by K//2 and fed to the deformable separable conv.
        Any channel count works (e.g. RGB + alpha, depth, AOVs); the residual ``delta`` is added
        to the first ``out_ch`` (RGB) channels only, and only when ``add_residual``.

        Channels beyond ``out_ch`` are ours, not the official model's: they get no residual to
        correct the warp's overall gain, so they are divided by the blend of a constant 1 (the
        total tap weight at each pixel, computed by the same kernel call). An opaque alpha stays
        exactly 1 and a constant depth stays constant; RGB is unchanged.
        """
        if frame0.shape != frame1.shape:
            raise ValueError(f"frames differ in shape: {tuple(frame0.shape)} vs {tuple(frame1.shape)}")
        if frame0.shape[-2:] != heads.mask.shape[-2:] or frame0.shape[0] != heads.mask.shape[0]:
            raise ValueError(f"frames {tuple(frame0.shape)} do not match the heads {tuple(heads.mask.shape)}")
        p = self.cfg.kernel_size // 2
        pad0 = F.pad(frame0, (p, p, p, p), mode="replicate")
        pad1 = F.pad(frame1, (p, p, p, p), mode="replicate")
        residual: Tensor | None = None
        if add_residual:
            n_res, n_ch = heads.residual.shape[1], frame0.shape[1]
            if n_ch < n_res:
                raise ValueError(f"the residual has {n_res} channels but the frames only {n_ch}")
            residual = heads.residual.to(frame0.dtype)  # the op adds it to the first n_res channels
        rgb = self.cfg.out_ch
        if frame0.shape[1] <= rgb:
            return dsepconv_blend(pad0, pad1, heads.heads0, heads.heads1, heads.mask, residual)
        ones = pad0.new_ones(pad0.shape[0], 1, *pad0.shape[2:])
        out = dsepconv_blend(torch.cat([pad0, ones], 1), torch.cat([pad1, ones], 1), heads.heads0, heads.heads1,
                             heads.mask, residual)
        gain, extra = out[:, -1:], out[:, rgb:-1]
        usable = gain.abs() > EXTRA_CHANNEL_MIN_GAIN  # else keep the plain warp rather than blow it up
        extra = torch.where(usable, extra / torch.where(usable, gain, torch.ones_like(gain)), extra)
        return torch.cat([out[:, :rgb], extra], 1)

    def decode(
        self, z: Tensor, frame0: Tensor, frame1: Tensor, phi0: list[Tensor], phi1: list[Tensor],
        valid: tuple[int, int] | None = None,
    ) -> Tensor:
        """Latent ``z`` (B, 3, h, w) -> middle frame (B, 3, H, W), unclamped, at the frames' size.

        VQ-snaps ``z`` first (as the official ``decode_first_stage``), then predicts the heads and
        warps the (already padded, normalised) neighbour frames. With ``valid`` (the size before
        the bottom/right padding) only that top-left part of the result is meaningful; the rest is
        left as it comes out (see ``Decoder.forward``).
        """
        self._check_frame(frame0, "frame0")
        expected = (z.shape[-2] * self.cfg.downscale, z.shape[-1] * self.cfg.downscale)
        if tuple(frame0.shape[-2:]) != expected:
            raise ValueError(f"latent {tuple(z.shape)} does not match frames {tuple(frame0.shape)}")
        z_quant, _ = self.quantize_latent(z)
        heads = self.predict_heads(z_quant, phi0, phi1, valid)
        return self.synthesize(heads, frame0, frame1)
