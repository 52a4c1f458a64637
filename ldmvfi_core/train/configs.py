# SPDX-License-Identifier: MIT
"""Model sizes for training and the training hyper-parameters of both stages.

Model configurations (``--config``):

* ``tiny``: the golden-vector config (``LDMVFIConfig.tiny()``): for tests and smoke runs.
* ``small``: :data:`SMALL`, the size we can ship inside the wheel (see below).
* ``released``: the official ``ldmvfi-vqflow-f32-c256-concat_max`` network (439 M parameters).
* a path: the official YAML layout or its JSON equivalent (``LDMVFIConfig.from_file``).

``SMALL`` keeps the LDMVFI architecture unchanged (5-level f=32 VQ-FIGAN with MaxViT
cross-attention in every decoder level and the same 10 synthesis heads; MaxViT U-Net with
attention at every level, eps-prediction, concat conditioning) and only narrows it:

* autoencoder ``ch=32, ch_mult=(1,2,2,2,4)``: the released channel ratios at half the width
  (32/64/64/64/128 channels). Params 5.98 M (encoder 1.71 M; 0.59 M of that total is the
  never-called ``out_conv`` of the cross-attention blocks that the official layout keeps, and the
  synthesis heads, fixed at 64/32 hidden channels, are 0.63 M). The half-width keeps every
  GroupNorm at >= 1 channel per group and every decoder attention head at 32 channels.
* U-Net ``model_channels=64, channel_mult=(1,1,2), num_res_blocks=1``: 5.15 M. The released
  U-Net (256 ch, x(1,2,4), 2 res blocks, 416 M) is the part that dominates the size; the latent
  it denoises is only 3 x H/32 x W/32, so its width, not its depth, is what we cut. One res block
  per level instead of two keeps MaxViT attention at all three levels inside the budget
  (``(1,2,2)`` with 1 block would be 7.24 M, with 2 blocks 10.9 M).

Total 11.13 M parameters = 44.5 MB as float32 safetensors (budget: 50 MB, ~12 M parameters).
Frames still pad to multiples of 256 (f=32 x 8x8 autoencoder windows), the U-Net window stays 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ldmvfi_core.config import AutoencoderConfig, LDMVFIConfig, UNetConfig

SMALL = LDMVFIConfig(
    autoencoder=AutoencoderConfig(ch=32, ch_mult=(1, 2, 2, 2, 4), num_head_channels=32),
    unet=UNetConfig(model_channels=64, channel_mult=(1, 1, 2), num_res_blocks=1, num_head_channels=32),
)

MODEL_CONFIGS = ("tiny", "small", "released")


def model_config(name: str) -> LDMVFIConfig:
    """``tiny`` / ``small`` / ``released`` or a path to an official-layout YAML/JSON config."""
    if name == "tiny":
        return LDMVFIConfig.tiny()
    if name == "small":
        return SMALL
    if name == "released":
        return LDMVFIConfig.released()
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"--config {name!r}: not one of {', '.join(MODEL_CONFIGS)} and no such file")
    return LDMVFIConfig.from_file(path)


@dataclass(frozen=True)
class Stage1Loss:
    """VQ-FIGAN loss: the official ``VQLPIPSWithDiscriminator`` settings (``vqflow-f32.yaml``).

    ``loss = pixel_weight*L1 + perceptual_weight*P + d_weight*disc_factor*G + codebook_weight*VQ``
    with ``d_weight = disc_weight * |grad nll| / (|grad G| + 1e-4)`` at the decoder's last shared
    layer, and ``disc_factor`` 0 before ``disc_start`` steps. ``P`` is our EfficientNet-Lite0
    feature distance (the official one is LPIPS-VGG, which needs weights we cannot ship).
    """

    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0
    disc_start: int = 10000
    disc_weight: float = 0.8
    disc_factor: float = 1.0
    codebook_weight: float = 1.0
    beta: float = 0.25  # commitment weight of the VQ loss
    vq_legacy: bool = True  # taming VectorQuantizer2(legacy=True): beta weighs the codebook term
    # Ours, not official: restart unused codes every this many steps (0: off). See codebook.py.
    codebook_restart_every: int = 100
    # Ours, not official: pull the decoder's offsets towards DIS flow (flow_teacher.py), per px of
    # error, until this many steps (0: no end). Weight 0 = off (the official loss).
    flow_teacher_weight: float = 0.0
    flow_teacher_until: int = 0
    # Ours, not official: pull each warp's centroid (where its tap weights place the sample on
    # average, flow_teacher.warp_centroid) towards DIS flow, per px of error. The per-tap term
    # above centres the tap grid on the flow but leaves the kernel free to lean off it; this term
    # checks where the warp really samples. 0 = off.
    flow_centroid_weight: float = 0.0
    # Ours, not official: the share of training samples whose decoder gets another sample's
    # neighbour features (the warp still reads their own frames). Those samples can only be decoded
    # well through the middle frame's latent, which the decoder otherwise learns to ignore. 0 = off.
    context_dropout: float = 0.0
    # Ours, not official: weight of the edge-aware smoothness of the tap offsets (smoothness.py),
    # in px per px. 0 = off.
    offset_smoothness_weight: float = 0.0
    # Ours, not official: weight of 1 - SSIM (ssim_loss.py) in the reconstruction term. 0 = off.
    ssim_weight: float = 0.0
    # Ours, not official: weight of the L1 between a batch's reconstructions and those of the same
    # batch in one random symmetric view, turned back (view_consistency.py); the turned copy also
    # trains. Doubles the work of a step. 0 = off.
    view_consistency_weight: float = 0.0
    disc_layers: int = 3
    disc_ndf: int = 64


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser of one stage. ``base_lr`` is per sample: ``lr = base_lr * batch * world_size``
    (the official ``scale_lr`` rule) unless an absolute ``lr`` is given."""

    base_lr: float
    betas: tuple[float, float]
    weight_decay: float
    adamw: bool


# Official: stage 1 taming VQModel uses Adam(betas=(0.5, 0.9)) for the autoencoder and the
# discriminator, base_learning_rate 1e-5 (batch 10 -> 1e-4). Stage 2 LatentDiffusion uses
# AdamW (torch defaults) with base_learning_rate 1e-6 (batch 64 -> 6.4e-5).
STAGE1_OPTIM = OptimConfig(base_lr=1e-5, betas=(0.5, 0.9), weight_decay=0.0, adamw=False)
STAGE2_OPTIM = OptimConfig(base_lr=1e-6, betas=(0.9, 0.999), weight_decay=0.01, adamw=True)
EMA_DECAY = 0.9999
