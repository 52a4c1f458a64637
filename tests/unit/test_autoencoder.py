# SPDX-License-Identifier: MIT
"""VQ-FIGAN first stage against the official tiny-config golden vectors (CPU, float32)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ldmvfi_core.config import AutoencoderConfig, LDMVFIConfig
from ldmvfi_core.model.autoencoder import EXTRA_CHANNEL_MIN_GAIN, VQFIGAN, DecoderHeads
from ldmvfi_core.model.quantize import VectorQuantizer
from ldmvfi_core.ops.dsepconv import dsepconv
from tests.conftest import FIXTURES, crops, frame_from_u8

PREFIX = "first_stage_model."
ATOL_FEATURE = 5e-5  # encoder h / phi, decoder heads and output (README suggestion)
ATOL_QUANT = 1e-6

# DecoderHeads field -> official module name used in decode.safetensors
HEAD_NAMES = {
    "feature": "conv_out",
    "vertical1": "moduleKernelVertical1",
    "horizontal1": "moduleKernelHorizontal1",
    "offset_x1": "moduleAlpha1",
    "offset_y1": "moduleBeta1",
    "vertical2": "moduleKernelVertical2",
    "horizontal2": "moduleKernelHorizontal2",
    "offset_x2": "moduleAlpha2",
    "offset_y2": "moduleBeta2",
    "mask": "moduleMask",
    "residual": "moduleResidual",
}

Golden = Callable[[str], dict[str, torch.Tensor]]


def _close(actual: torch.Tensor, expected: torch.Tensor, atol: float, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = (actual - expected).abs().max().item()
    assert err <= atol, f"{what}: max |diff| {err:.3g} > {atol:.1g}"


def _close_stored(actual: torch.Tensor, store: dict[str, torch.Tensor], key: str, atol: float) -> None:
    """Compare with ``key`` if stored in full, else with its three stored 16x16 crops."""
    if key in store:
        _close(actual, store[key], atol, key)
        return
    for name, window in crops(actual).items():
        _close(window, store[f"{key}.{name}"], atol, f"{key}.{name}")


@pytest.fixture(scope="module")
def model(tiny_weights: dict[str, torch.Tensor]) -> VQFIGAN:
    ae = VQFIGAN(LDMVFIConfig.tiny().autoencoder)
    state = {k[len(PREFIX) :]: v for k, v in tiny_weights.items() if k.startswith(PREFIX)}
    ae.load_state_dict(state, strict=True)
    return ae.eval()


@pytest.fixture(scope="module")
def frames(golden: Golden) -> tuple[torch.Tensor, torch.Tensor]:
    enc = golden("encode")
    return frame_from_u8(enc["frame0_u8"]), frame_from_u8(enc["frame1_u8"])


@pytest.fixture(scope="module")
def pyramids(
    model: VQFIGAN, frames: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    with torch.no_grad():
        return model.encode_pair(*frames)


@pytest.fixture(scope="module")
def heads(model: VQFIGAN, golden: Golden, pyramids: tuple) -> DecoderHeads:
    _, phi0, phi1 = pyramids
    with torch.no_grad():
        z_quant, _ = model.quantize_latent(golden("decode")["decode.z"])
        return model.predict_heads(z_quant, phi0, phi1)


@pytest.fixture(scope="module")
def decoded(model: VQFIGAN, golden: Golden, frames: tuple, pyramids: tuple) -> torch.Tensor:
    """``decode(decode.z, frame0, frame1, phi0, phi1)``: the first 256x256 decode of this module."""
    _, phi0, phi1 = pyramids
    with torch.no_grad():
        return model.decode(golden("decode")["decode.z"], *frames, phi0, phi1)


# ---------------------------------------------------------------------------------------------
# 1. encoder


@pytest.mark.parametrize("which", [0, 1])
def test_encode_matches_golden(
    model: VQFIGAN, golden: Golden, frames: tuple[torch.Tensor, torch.Tensor], which: int
) -> None:
    enc = golden("encode")
    with torch.no_grad():
        h, phi = model.encode(frames[which])
    _close(h, enc[f"encode.frame{which}.h"], ATOL_FEATURE, f"encode.frame{which}.h")
    assert len(phi) == model.cfg.levels
    for i, level in enumerate(phi):
        side = 256 // 2 ** (i + 1)
        assert level.shape == (1, model.cfg.ch * model.cfg.ch_mult[i], side, side)
        _close_stored(level, enc, f"encode.frame{which}.phi{i}", ATOL_FEATURE)


def test_cond_matches_golden(golden: Golden, pyramids: tuple) -> None:
    cond, _, _ = pyramids
    _close(cond, golden("encode")["encode.cond"], ATOL_FEATURE, "encode.cond")


# ---------------------------------------------------------------------------------------------
# 2. vector quantiser


@pytest.mark.parametrize("which", [0, 1])
def test_vq_of_frame_latents(model: VQFIGAN, golden: Golden, which: int) -> None:
    enc = golden("encode")
    with torch.no_grad():
        z_q, idx = model.quantize_latent(enc[f"encode.frame{which}.h"])
    assert idx.dtype == torch.int64
    assert torch.equal(idx, enc[f"encode.frame{which}.indices"])
    assert z_q.dtype == torch.float32
    _close(z_q, enc[f"encode.frame{which}.quant"], ATOL_QUANT, f"encode.frame{which}.quant")


def test_vq_of_arbitrary_latents(model: VQFIGAN, golden: Golden) -> None:
    enc = golden("encode")
    with torch.no_grad():
        z_q, idx = model.quantize_latent(enc["vq.z"])
    assert torch.equal(idx, enc["vq.indices"])
    _close(z_q, enc["vq.z_q"], ATOL_QUANT, "vq.z_q")


def test_vq_straight_through_form_and_ties() -> None:
    vq = VectorQuantizer(4, 3)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[5.0, 5, 5], [1, 0, 0], [1, 0, 0], [0.1, 0.2, 0.3]]))
    z = torch.tensor([[0.9, 0.0, 0.0], [0.3, 0.2, 0.3]]).reshape(1, 2, 1, 3).permute(0, 3, 1, 2)
    with torch.no_grad():
        z_q, idx = vq(z)
    assert idx.tolist() == [1, 3]  # rows 1 and 2 are equal: the first index wins
    e = vq.embedding.weight.detach()[idx].reshape(1, 2, 1, 3).permute(0, 3, 1, 2)
    assert torch.equal(z_q, z + (e - z))  # the exact straight-through expression ...
    assert not torch.equal(z_q, e)  # ... which is not bit-identical to the code itself


# ---------------------------------------------------------------------------------------------
# 3. decoder


def test_decode_matches_golden(model: VQFIGAN, golden: Golden, decoded: torch.Tensor) -> None:
    dec = golden("decode")
    with torch.no_grad():
        z_q, idx = model.quantize_latent(dec["decode.z"])
    assert torch.equal(idx, dec["decode.indices"])
    _close(z_q, dec["decode.quant"], ATOL_QUANT, "decode.quant")
    _close(decoded, dec["decode.output"], ATOL_FEATURE, "decode.output")


def test_decoder_heads_match_golden(model: VQFIGAN, golden: Golden, heads: DecoderHeads) -> None:
    dec = golden("decode")
    k = model.cfg.kernel_size
    expected_channels = {"feature": model.cfg.ch * model.cfg.ch_mult[0], "mask": k * k, "residual": 3}
    for field, name in HEAD_NAMES.items():
        value = getattr(heads, field)
        channels = expected_channels.get(field, k if "vertical" in field or "horizontal" in field else k * k)
        assert value.shape == (1, channels, 256, 256), field
        _close_stored(value, dec, f"decode.{name}", ATOL_FEATURE)
    assert heads.mask.min() > 0.0 and heads.mask.max() < 1.0


def test_warped_frames_match_golden(
    golden: Golden, frames: tuple[torch.Tensor, torch.Tensor], heads: DecoderHeads
) -> None:
    dec = golden("decode")
    pad0, pad1 = (F.pad(f, (2, 2, 2, 2), mode="replicate") for f in frames)
    with torch.no_grad():
        warped1 = dsepconv(pad0, *heads.heads0, heads.mask)
        warped2 = dsepconv(pad1, *heads.heads1, 1 - heads.mask)
    _close_stored(warped1, dec, "decode.warped1", ATOL_FEATURE)
    _close_stored(warped2, dec, "decode.warped2", ATOL_FEATURE)
    _close_stored(warped1 + warped2 + heads.residual, dec, "decode.output", ATOL_FEATURE)


# ---------------------------------------------------------------------------------------------
# 4. checkpoint layout of the released model


def test_released_state_dict_matches_manifest() -> None:
    manifest = json.loads(gzip.decompress((FIXTURES / "full_manifest.json.gz").read_bytes()))
    expected = {
        e["key"][len(PREFIX) :]: (tuple(e["shape"]), e["dtype"])
        for e in manifest["keys"]
        if e["key"].startswith(PREFIX)
    }
    assert len(expected) == 554
    with torch.device("meta"):
        ae = VQFIGAN(AutoencoderConfig())
    actual = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in ae.state_dict().items()}
    assert sorted(set(actual) - set(expected)) == []
    assert sorted(set(expected) - set(actual)) == []
    assert {k: v for k, v in actual.items() if v != expected[k]} == {}


# ---------------------------------------------------------------------------------------------
# 5. extra channels ride along with the same heads


def _synthesis_window(frames: tuple[torch.Tensor, torch.Tensor], heads: DecoderHeads
                      ) -> tuple[DecoderHeads, torch.Tensor, torch.Tensor]:
    """The warp is per pixel, so a 64x96 window of the heads with the same window of the frames is
    a valid (and faster) synthesis problem."""
    window = (..., slice(96, 160), slice(64, 160))
    f0, f1 = (f[window] for f in frames)
    return DecoderHeads(**{k: v[window] for k, v in heads.as_dict().items()}), f0, f1


def test_synthesize_extra_channels(
    model: VQFIGAN, frames: tuple[torch.Tensor, torch.Tensor], heads: DecoderHeads
) -> None:
    heads, f0, f1 = _synthesis_window(frames, heads)
    gen = torch.Generator().manual_seed(1)
    a0, a1 = (torch.rand(1, 1, 64, 96, generator=gen) for _ in range(2))
    with torch.no_grad():
        rgb = model.synthesize(heads, f0, f1)
        rgba = model.synthesize(heads, torch.cat([f0, a0], 1), torch.cat([f1, a1], 1))
        # one channel alone is warped as the official op does (no residual, no normalisation) ...
        alpha = model.synthesize(heads, a0, a1, add_residual=False)
        gain = model.synthesize(heads, torch.ones_like(a0), torch.ones_like(a1), add_residual=False)
    assert rgba.shape == (1, 4, 64, 96)
    torch.testing.assert_close(rgba[:, :3], rgb, atol=1e-6, rtol=0)
    # ... and beside RGB it is divided by the warp's total tap weight, with no residual
    assert bool((gain.abs() > EXTRA_CHANNEL_MIN_GAIN).all())
    torch.testing.assert_close(rgba[:, 3:], alpha / gain, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        model.synthesize(heads, a0, a1)  # residual needs the RGB channels


def test_constant_extra_channels_stay_constant(
    model: VQFIGAN, frames: tuple[torch.Tensor, torch.Tensor], heads: DecoderHeads
) -> None:
    """An opaque alpha stays exactly 1 and a constant depth stays that depth, whatever the warp."""
    heads, f0, f1 = _synthesis_window(frames, heads)
    opaque, depth = torch.ones(1, 1, 64, 96), torch.full((1, 1, 64, 96), 7.25)
    with torch.no_grad():
        out = model.synthesize(heads, torch.cat([f0, opaque, depth], 1), torch.cat([f1, opaque, depth], 1))
    assert torch.equal(out[:, 3], torch.ones(1, 64, 96))
    torch.testing.assert_close(out[:, 4], torch.full((1, 64, 96), 7.25), atol=0, rtol=2e-6)  # a few ulps


# ---------------------------------------------------------------------------------------------
# 6. no state kept between calls


def test_no_hidden_state_between_sizes(
    model: VQFIGAN,
    golden: Golden,
    frames: tuple[torch.Tensor, torch.Tensor],
    pyramids: tuple,
    decoded: torch.Tensor,
) -> None:
    """256x256 (the module fixtures), then 256x512, then 256x256 again: identical results."""
    f0, f1 = frames
    wide0, wide1 = torch.cat([f0, f1.flip(-1)], -1), torch.cat([f1, f0.flip(-1)], -1)
    with torch.no_grad():
        cond, phi0, phi1 = model.encode_pair(wide0, wide1)
        wide = model.decode(0.5 * (cond[:, :3] + cond[:, 3:]), wide0, wide1, phi0, phi1)
        assert wide.shape == (1, 3, 256, 512)
        cond, phi0, phi1 = model.encode_pair(f0, f1)
        again = model.decode(golden("decode")["decode.z"], f0, f1, phi0, phi1)
    assert torch.equal(cond, pyramids[0])
    assert all(torch.equal(a, b) for a, b in zip(phi0 + phi1, pyramids[1] + pyramids[2], strict=True))
    assert torch.equal(again, decoded)


def test_rejects_unpadded_frames(model: VQFIGAN) -> None:
    with pytest.raises(ValueError, match="multiples of 256"):
        model.encode(torch.zeros(1, 3, 256, 200))


def test_compiled_autoencoder_traces_whole_and_gives_the_eager_frames() -> None:
    """``Interpolator(compile=True)`` on GPUs compiles the encoder and the decoder: each must trace
    as one graph (a break would split it into pieces that recompile per size) and the frames must
    not change. The ``eager`` backend runs the traced graphs as they are, so equality is exact."""
    from ldmvfi_core.interpolate import Interpolator, compile_autoencoder
    from tests.conftest import TINY

    rng = np.random.default_rng(4)
    a, b = rng.random((64, 96, 3), dtype=np.float32), rng.random((64, 96, 3), dtype=np.float32)
    interp = Interpolator.load(TINY / "weights.safetensors")
    eager = interp.interpolate(a, b, steps=2, eta=1.0, seed=3)
    graphs: list[torch.fx.GraphModule] = []

    def counting(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., object]:
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    try:
        compile_autoencoder(interp.model.first_stage_model, backend=counting)
        compiled = interp.interpolate(a, b, steps=2, eta=1.0, seed=3)
    finally:
        torch._dynamo.reset()
    assert len(graphs) == 2  # one encoder graph (both frames share a size), one decoder graph
    np.testing.assert_array_equal(compiled, eager)


@pytest.mark.parametrize("valid", [(59, 251), (200, 123), (256, 256)])
def test_decoding_only_the_picture_is_exact_there(
    model: VQFIGAN, golden: Golden, frames: tuple[torch.Tensor, torch.Tensor], pyramids: tuple,
    decoded: torch.Tensor, valid: tuple[int, int],
) -> None:
    """``valid`` (the size before bottom/right padding) runs the last layers on the picture plus
    ``HEAD_CONTEXT`` px: the picture's pixels must come out as from the full decode. 59 + 5 = 64
    leaves no slack, so a margin one pixel short must show in the last rows."""
    from ldmvfi_core.model import autoencoder

    _, phi0, phi1 = pyramids
    z = golden("decode")["decode.z"]
    h, w = valid
    with torch.no_grad():
        cropped = model.decode(z, *frames, phi0, phi1, valid=valid)
    assert cropped.shape == decoded.shape
    torch.testing.assert_close(cropped[..., :h, :w], decoded[..., :h, :w], atol=2e-6, rtol=0)
    if valid != (59, 251):
        return
    original = autoencoder.heads_extent
    try:
        autoencoder.heads_extent = lambda v, padded: min(padded, v + autoencoder.HEAD_CONTEXT - 1)  # type: ignore[assignment]
        with torch.no_grad():
            short = model.decode(z, *frames, phi0, phi1, valid=valid)
    finally:
        autoencoder.heads_extent = original  # type: ignore[assignment]
    assert (short[..., :h, :w] - decoded[..., :h, :w]).abs().max() > 1e-4


def test_stacked_projections_decode_the_golden_frame(tiny_weights: dict[str, torch.Tensor], golden: Golden,
                                                     frames: tuple, pyramids: tuple) -> None:
    """The decoder's cross-attention (MaxCA) with k/v as one matmul, and its self-attention with
    q/k/v as one, decode the official frame."""
    from ldmvfi_core.model.maxvit import Attention, SpatialCrossAttentionWithMax, fuse_attention_projections

    ae = VQFIGAN(LDMVFIConfig.tiny().autoencoder)
    ae.load_state_dict({k[len(PREFIX):]: v for k, v in tiny_weights.items() if k.startswith(PREFIX)}, strict=True)
    ae.eval().requires_grad_(False)
    assert fuse_attention_projections(ae) > 0
    cross = [a for m in ae.decoder.modules() if isinstance(m, SpatialCrossAttentionWithMax)
             for a in m.modules() if isinstance(a, Attention)]
    assert cross and all(m.stacked_kv is not None and m.stacked_qkv is None for m in cross)
    _, phi0, phi1 = pyramids
    with torch.no_grad():
        out = ae.decode(golden("decode")["decode.z"], *frames, phi0, phi1)
    _close(out, golden("decode")["decode.output"], ATOL_FEATURE, "decode.output (stacked projections)")


@pytest.mark.parametrize(("shape", "offset"), [((2, 64, 9, 13), 0.0), ((1, 32, 5, 7), 40.0), ((1, 128, 6, 4), -3.0)])
def test_group_norm_from_channel_stats_is_group_norm(shape: tuple[int, int, int, int], offset: float) -> None:
    """The GPU inference GroupNorm (statistics per channel, combined per group) against
    ``F.group_norm`` in float32, channels-last or not, with and without the affine terms; channel
    means far from the group's (``offset`` per channel) are where a naive combination would lose."""
    from ldmvfi_core.model.ae_blocks import group_norm_from_channel_stats

    g = torch.Generator().manual_seed(shape[1])
    x = torch.randn(shape, generator=g) * 2 + offset * torch.randn(1, shape[1], 1, 1, generator=g)
    weight, bias = torch.rand(shape[1], generator=g) + 0.5, torch.randn(shape[1], generator=g)
    for affine in ((weight, bias), (None, None)):
        expected = torch.nn.functional.group_norm(x.double(), 32, *(a if a is None else a.double() for a in affine),
                                                  1e-6)
        for layout in (torch.contiguous_format, torch.channels_last):
            got = group_norm_from_channel_stats(x.contiguous(memory_format=layout), 32, *affine, 1e-6)
            assert got.dtype == torch.float32 and got.shape == x.shape
            torch.testing.assert_close(got.double(), expected, rtol=0, atol=2e-5)
    half = group_norm_from_channel_stats(x.to(torch.bfloat16), 32, weight, bias, 1e-6)
    assert half.dtype == torch.bfloat16  # without autocast it answers in the input's dtype
