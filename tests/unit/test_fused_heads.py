# SPDX-License-Identifier: MIT
"""The fused and the channel-padded synthesis heads compute the ten separate heads (up to float
summation order)."""

from __future__ import annotations

import pytest
import torch

from ldmvfi_core.config import AutoencoderConfig, LDMVFIConfig
from ldmvfi_core.model.autoencoder import DecoderHeads
from ldmvfi_core.model.fused_heads import HEAD_FIELDS, fuse_heads, pad_heads, unfuse_heads
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI


def _decoder_inputs(model: LatentDiffusionVFI, size: int = 256) -> tuple[torch.Tensor, list, list]:
    g = torch.Generator().manual_seed(1)
    ae = model.first_stage_model
    frames = torch.rand(2, 3, size, size, generator=g) * 2 - 1
    z, phi0 = ae.encode(frames[:1])
    _, phi1 = ae.encode(frames[1:])
    return z, phi0, phi1


def test_fused_heads_match_the_separate_heads_and_keep_the_state_dict() -> None:
    torch.manual_seed(0)
    model = LatentDiffusionVFI(LDMVFIConfig.tiny()).eval()
    decoder = model.first_stage_model.decoder
    with torch.no_grad():
        for p in decoder.parameters():  # larger than the default init, so every head's output matters
            p.add_(torch.randn_like(p) * 0.05)
    z, phi0, phi1 = _decoder_inputs(model)
    keys = list(model.state_dict())
    with torch.no_grad():
        h = model.first_stage_model.post_quant_conv(z)
        separate = decoder(h, phi0, phi1)
        fuse_heads(decoder)
        fused = decoder(h, phi0, phi1)
        assert list(model.state_dict()) == keys  # the official key layout is untouched
        for name, value in separate.as_dict().items():
            other = getattr(fused, name)
            assert other.shape == value.shape, name
            torch.testing.assert_close(other, value, rtol=1e-5, atol=1e-5, msg=name)
            assert value.abs().max() > 1e-3, name  # not a trivially-zero head
        assert float(fused.mask.min()) >= 0 and float(fused.mask.max()) <= 1
        unfuse_heads(decoder)
        assert decoder.fused_heads is None
        again = decoder(h, phi0, phi1)
    assert isinstance(again, DecoderHeads)
    torch.testing.assert_close(again.residual, separate.residual, rtol=0, atol=0)


def test_fused_heads_with_unequal_head_widths() -> None:
    # kernel_size 3: kernels have 3 outputs, offsets/mask 9, residual out_ch (4 here): padded to 9
    cfg = LDMVFIConfig.tiny()
    ae = AutoencoderConfig(**{**cfg.autoencoder.__dict__, "kernel_size": 3, "out_ch": 4})
    decoder = LatentDiffusionVFI(LDMVFIConfig(autoencoder=ae, unet=cfg.unet)).eval().first_stage_model.decoder
    feature = torch.randn(1, decoder.conv_out.out_channels, 8, 12)
    fused = fuse_heads(decoder)(feature)
    assert fused["vertical1"].shape[1] == 3 and fused["mask"].shape[1] == 9 and fused["residual"].shape[1] == 4
    torch.testing.assert_close(fused["residual"], decoder.moduleResidual(feature), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused["mask"], decoder.moduleMask(feature), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("fuse_first", "block_tail", "fused_relu", "conv_count"), [
    (False, False, False, 40), (True, False, False, 31), (False, True, False, 41), (False, True, True, 41),
    (True, True, True, 32)])
def test_padded_heads_match_the_separate_heads(fuse_first: bool, block_tail: bool, fused_relu: bool,
                                               conv_count: int) -> None:
    # kernel_size 5 as released: 5- and 25-channel layers, and a 3-channel residual, all padded
    torch.manual_seed(0)
    cfg = LDMVFIConfig.tiny()
    ae = AutoencoderConfig(**{**cfg.autoencoder.__dict__, "kernel_size": 5})
    decoder = LatentDiffusionVFI(LDMVFIConfig(autoencoder=ae, unet=cfg.unet)).eval().first_stage_model.decoder
    with torch.no_grad():
        for p in decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    feature = torch.randn(2, decoder.conv_out.out_channels, 12, 16)
    keys = list(decoder.state_dict())
    with torch.no_grad():
        padded = pad_heads(decoder, fuse_first=fuse_first, block_tail=block_tail,
                           fused_relu_dtype=torch.float32 if fused_relu else None)
        assert list(decoder.state_dict()) == keys
        assert padded.fused_relu_dtype == (torch.float32 if fused_relu else None)
        convs = [m for m in padded.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(c.in_channels % 8 == 0 and c.out_channels % 8 == 0 for c in convs)
        assert len(convs) == conv_count
        if block_tail:  # the four 5-channel kernel heads and the 3-channel residual: 5 x 8 channels
            assert padded.tail is not None and padded.tail.in_channels == padded.tail.out_channels == 40
            assert [HEAD_FIELDS[i][0] for i in padded.tail_heads] == [
                "vertical1", "horizontal1", "vertical2", "horizontal2", "residual"]
        out = padded(feature)
        for field, attr in HEAD_FIELDS:
            expected = getattr(decoder, attr)(feature)
            assert out[field].shape == expected.shape, field
            if fused_relu:  # its layers run channels-last; what it hands the warp is NCHW float32
                assert out[field].is_contiguous() and out[field].dtype == torch.float32, field
            torch.testing.assert_close(out[field], expected, rtol=1e-5, atol=1e-6, msg=field)
            assert expected.abs().max() > 1e-3, field
        unfuse_heads(decoder)
