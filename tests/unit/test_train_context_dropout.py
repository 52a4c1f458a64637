# SPDX-License-Identifier: MIT
"""Stage 1 context dropout (ours): some samples are decoded with another sample's neighbour
features, so only their own middle-frame latent can tell the decoder where things are."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ldmvfi_core.config import AutoencoderConfig
from ldmvfi_core.model.autoencoder import VQFIGAN
from ldmvfi_core.train.stage1 import Stage1Net

CONFIG = AutoencoderConfig(ch=32, ch_mult=(1, 1, 1), num_head_channels=16, n_embed=256)


def _net_and_frames(context_dropout: float) -> tuple[Stage1Net, torch.Tensor]:
    torch.manual_seed(0)
    net = Stage1Net(VQFIGAN(CONFIG), context_dropout)
    frames = torch.rand(3, 3, 3, 64, 64) * 2 - 1
    return net, frames


def _decoded(net: Stage1Net, frames: torch.Tensor, context_from: list[int]) -> torch.Tensor:
    """The reconstruction by hand, sample i decoded with sample ``context_from[i]``'s features."""
    ae, b = net.ae, frames.shape[0]
    f0, f1, f2 = frames[:, 0], frames[:, 1], frames[:, 2]
    h, phi = ae.encoder(torch.cat([f0, f1, f2]))
    z_quant, _ = ae.quantize_latent(ae.quant_conv(h[b : 2 * b]))
    phi0, phi2 = [p[:b][context_from] for p in phi], [p[2 * b :][context_from] for p in phi]
    return ae.synthesize(ae.predict_heads(z_quant, phi0, phi2), f0, f2)


def test_full_dropout_decodes_every_sample_with_the_next_samples_features() -> None:
    net, frames = _net_and_frames(1.0)
    with torch.no_grad():
        got = net.train()(frames)[0]
        assert torch.allclose(got, _decoded(net, frames, [1, 2, 0]), atol=1e-6)
        assert not torch.allclose(got, _decoded(net, frames, [0, 1, 2]), atol=1e-3)


def test_no_dropout_in_eval_mode_or_at_zero() -> None:
    for share, mode in ((1.0, "eval"), (0.0, "train")):
        net, frames = _net_and_frames(share)
        getattr(net, mode)()
        with torch.no_grad():
            assert torch.allclose(net(frames)[0], _decoded(net, frames, [0, 1, 2]), atol=1e-6)


def test_each_sample_is_dropped_on_its_own() -> None:
    net, frames = _net_and_frames(0.5)
    net.train()
    for module in net.modules():  # per-sample results: no batch statistics
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    # a seed whose draw keeps some samples and drops others (the forward's only random draw)
    seed = next(s for s in range(100)
                if 0 < int((torch.rand(3, generator=torch.Generator().manual_seed(s)) >= 0.5).sum()) < 3)
    kept_mask = (torch.rand(3, generator=torch.Generator().manual_seed(seed)) >= 0.5).view(3, 1, 1, 1)
    with torch.no_grad():
        torch.manual_seed(seed)
        got = net(frames)[0]
        own, swapped = _decoded(net, frames, [0, 1, 2]), _decoded(net, frames, [1, 2, 0])
    assert torch.allclose(got, torch.where(kept_mask, own, swapped), atol=1e-6)
    assert not torch.allclose(got, own, atol=1e-3) and not torch.allclose(got, swapped, atol=1e-3)


def test_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"context dropout 1\.5"):
        Stage1Net(VQFIGAN(CONFIG), 1.5)
