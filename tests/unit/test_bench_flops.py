# SPDX-License-Identifier: MIT
"""bench/flops.py counts what the network computes: checked against closed forms."""

from __future__ import annotations

import pytest

from bench.flops import count_frame
from ldmvfi_core.config import HEAD_HIDDEN, LDMVFIConfig


def conv3x3_flops(pixels: int, c_in: int, c_out: int) -> int:
    return 2 * pixels * 9 * c_in * c_out


def test_the_heads_are_the_closed_form_of_their_forty_convolutions() -> None:
    config = LDMVFIConfig.tiny()
    ae = config.autoencoder
    frame = count_frame(config, 256, 256)  # no padding: the heads see the whole 256x256 map
    h1, h2 = HEAD_HIDDEN
    k = ae.kernel_size
    widths = [k, k, k * k, k * k] * 2 + [k * k, ae.out_ch]  # kernels, offsets per neighbour; mask; residual
    expected = sum(conv3x3_flops(256 * 256, c_in, c_out)
                   for w in widths for c_in, c_out in ((ae.ch, h1), (h1, h2), (h2, w), (w, w)))
    assert frame.heads_gflop == pytest.approx(expected / 1e9, rel=1e-12)
    assert frame.heads_gflop < frame.decode_gflop


def test_encoder_and_decoder_scale_with_the_pixels_and_the_step_with_the_latent() -> None:
    config = LDMVFIConfig.tiny()
    one, two = count_frame(config, 256, 256), count_frame(config, 512, 256)
    assert two.padded == "256x512" and one.padded == "256x256"
    assert two.encode_gflop == pytest.approx(2 * one.encode_gflop, rel=1e-9)  # convolutions only
    assert two.heads_gflop == pytest.approx(2 * one.heads_gflop, rel=1e-12)
    assert two.unet_step_gflop > one.unet_step_gflop  # attention windows grow too: at least linear
    assert one.per_frame_gflop(10, 2) - one.per_frame_gflop(10, 1) == pytest.approx(one.encode_gflop)
