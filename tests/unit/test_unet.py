# SPDX-License-Identifier: MIT
"""The MaxViT denoising U-Net against the official tiny goldens and the released key manifest."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import pytest
import torch

from ldmvfi_core.config import LDMVFIConfig, UNetConfig
from ldmvfi_core.model.unet import GroupNorm32, UNet, timestep_embedding
from tests.conftest import FIXTURES, ema_key

PREFIX = "model.diffusion_model."
RELEASED_UNET_PARAMS = 416_464_883


def _build(weights: dict[str, torch.Tensor], ema: bool) -> UNet:
    unet = UNet(LDMVFIConfig.tiny().unet).eval()
    keys = unet.state_dict().keys()
    state = {k: weights[ema_key(k) if ema else PREFIX + k] for k in keys}
    unet.load_state_dict(state, strict=True)
    return unet


@pytest.fixture(scope="module")
def ema_unet(tiny_weights: dict[str, torch.Tensor]) -> UNet:
    return _build(tiny_weights, ema=True)


@pytest.fixture(scope="module")
def live_unet(tiny_weights: dict[str, torch.Tensor]) -> UNet:
    return _build(tiny_weights, ema=False)


def test_tiny_keys_match_checkpoint(tiny_weights: dict[str, torch.Tensor]) -> None:
    unet = UNet(LDMVFIConfig.tiny().unet)
    ours = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    theirs = {k[len(PREFIX) :]: tuple(v.shape) for k, v in tiny_weights.items() if k.startswith(PREFIX)}
    assert ours == theirs


def test_timestep_embedding(golden: Callable[[str], dict[str, torch.Tensor]]) -> None:
    g = golden("unet")
    emb = timestep_embedding(g["unet.t"], LDMVFIConfig.tiny().unet.model_channels)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb, g["unet.t_emb"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("suffix", ["", "_wide"])
@pytest.mark.parametrize("which", ["ema", "live"])
def test_eps_matches_golden(
    golden: Callable[[str], dict[str, torch.Tensor]],
    ema_unet: UNet,
    live_unet: UNet,
    which: str,
    suffix: str,
) -> None:
    g = golden("unet")
    unet = ema_unet if which == "ema" else live_unet
    expected = g[f"unet.eps{suffix}" + ("_live" if which == "live" else "")]
    with torch.inference_mode():
        eps = unet(g[f"unet.x_t{suffix}"], g[f"unet.t{suffix}"], g[f"unet.cond{suffix}"])
    assert eps.shape == expected.shape
    torch.testing.assert_close(eps, expected, atol=2e-5, rtol=0)


def test_released_config_matches_manifest() -> None:
    with gzip.open(FIXTURES / "full_manifest.json.gz", "rt") as f:
        manifest = json.load(f)
    expected = {
        e["key"][len(PREFIX) :]: tuple(e["shape"]) for e in manifest["keys"] if e["key"].startswith(PREFIX)
    }
    with torch.device("meta"):
        unet = UNet(UNetConfig())
    ours = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected)), sorted(set(expected) - set(ours)))
    assert ours == expected
    assert sum(p.numel() for p in unet.parameters()) == RELEASED_UNET_PARAMS
    assert unet.input_blocks[1][1].window == 2  # min(image_size // 4, 8): 2x2 MaxViT windows


@pytest.mark.parametrize("hw", [(12, 16), (8, 20), (4, 8)])
def test_released_rejects_bad_latent_size(hw: tuple[int, int]) -> None:
    with torch.device("meta"):
        unet = UNet(UNetConfig())
        x = torch.empty(1, 3, *hw)
        cond = torch.empty(1, 6, *hw)
        t = torch.zeros(1, dtype=torch.int64)
    with pytest.raises(ValueError, match="multiple of 8"):
        unet(x, t, cond)


def test_rejects_bad_channels(ema_unet: UNet) -> None:
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="channels"):
        ema_unet(x, torch.zeros(1, dtype=torch.int64), torch.zeros(1, 3, 8, 8))


def test_groupnorm_runs_in_float32() -> None:
    gn = GroupNorm32(32, 64, eps=1e-5)
    with torch.no_grad():
        gn.weight.normal_()
        gn.bias.normal_()
    x = torch.randn(2, 64, 4, 4) * 100 + 3
    ref = gn(x)
    out = gn.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.02)


def test_bf16_autocast_close(golden: Callable[[str], dict[str, torch.Tensor]], ema_unet: UNet) -> None:
    g = golden("unet")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        eps = ema_unet(g["unet.x_t"], g["unet.t"], g["unet.cond"])
    assert torch.isfinite(eps).all()
    assert (eps.float() - g["unet.eps"]).abs().max() < 0.05 * g["unet.eps"].abs().max()


def test_precast_weights_equal_autocast(golden: Callable[[str], dict[str, torch.Tensor]],
                                        tiny_weights: dict[str, torch.Tensor]) -> None:
    """Casting conv/linear weights to bf16 once gives exactly what autocast computes from float32 weights."""
    from ldmvfi_core.model.precision import cast_matmul_weights

    g = golden("unet")
    reference, precast = _build(tiny_weights, ema=True), _build(tiny_weights, ema=True)
    assert cast_matmul_weights(precast, torch.bfloat16) > 0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        a = reference(g["unet.x_t"], g["unet.t"], g["unet.cond"])
        b = precast(g["unet.x_t"], g["unet.t"], g["unet.cond"])
    assert torch.equal(a, b)
    norms = [m for m in precast.modules() if isinstance(m, GroupNorm32)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)


def test_position_bias_cache_follows_the_weights(golden: Callable[[str], dict[str, torch.Tensor]],
                                                 tiny_weights: dict[str, torch.Tensor]) -> None:
    """The cached attention bias is rebuilt when the bias table changes (e.g. new weights loaded)."""
    g = golden("unet")
    unet = _build(tiny_weights, ema=True)
    args = (g["unet.x_t"], g["unet.t"], g["unet.cond"])
    with torch.no_grad():
        first = unet(*args)
        again = unet(*args)
        for name, p in unet.named_parameters():
            if name.endswith("rel_pos_bias.weight"):
                p.add_(0.5)
        moved = unet(*args)
    assert torch.equal(first, again)
    assert not torch.allclose(first, moved)
    with torch.no_grad():
        fresh = _build(tiny_weights, ema=True)
        for name, p in fresh.named_parameters():
            if name.endswith("rel_pos_bias.weight"):
                p.add_(0.5)
        torch.testing.assert_close(moved, fresh(*args), atol=0, rtol=0)


def test_channels_last_gives_the_same_eps(golden: Callable[[str], dict[str, torch.Tensor]],
                                          tiny_weights: dict[str, torch.Tensor]) -> None:
    """The GPU fast path stores the U-Net channels-last; memory layout must not change the result."""
    g = golden("unet")
    reference = _build(tiny_weights, ema=True)
    nhwc = _build(tiny_weights, ema=True).to(memory_format=torch.channels_last)
    x = g["unet.x_t"].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        a = reference(g["unet.x_t"], g["unet.t"], g["unet.cond"])
        b = nhwc(x, g["unet.t"], g["unet.cond"].contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(b, g["unet.eps"], atol=2e-5, rtol=1e-5)


def test_unet_traces_as_one_graph_for_torch_compile() -> None:
    """``Interpolator(compile=True)`` relies on the U-Net tracing without graph breaks (a break
    splits it into frames that recompile for every feature size and hit dynamo's limit), with the
    q/k/v projections stacked as the Interpolator stacks them (training's unstacked U-Net is
    compiled in tests/unit/test_train_compile.py)."""
    import torch._dynamo as dynamo

    from ldmvfi_core.model.maxvit import fuse_attention_projections

    unet = UNet(LDMVFIConfig.tiny().unet).eval().requires_grad_(False)
    assert fuse_attention_projections(unet) > 0
    x, cond, t = torch.randn(1, 3, 8, 8), torch.randn(1, 6, 8, 8), torch.full((1,), 500)
    with torch.no_grad():
        explained = dynamo.explain(unet)(x, t, cond)
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_stacked_projections_give_the_golden_eps(golden: Callable[[str], dict[str, torch.Tensor]],
                                                 tiny_weights: dict[str, torch.Tensor]) -> None:
    """q/k/v as one matmul (inference, frozen weights) computes the official eps and is what runs
    (a zeroed stack breaks it); the saved keys do not change; weights that want gradients
    (training) and a newly loaded state dict leave the stack unused."""
    from ldmvfi_core.model.maxvit import Attention, fuse_attention_projections

    g = golden("unet")
    args = (g["unet.x_t"], g["unet.t"], g["unet.cond"])
    unet = _build(tiny_weights, ema=True).requires_grad_(False)
    keys = set(unet.state_dict())
    assert fuse_attention_projections(unet) == 10  # tiny: 3 levels x 1 input block, the middle, 3 x 2 output blocks
    stacked = [m for m in unet.modules() if isinstance(m, Attention)]
    assert stacked and all(m.stacked_qkv is not None and m.stacked_kv is None for m in stacked)
    assert set(unet.state_dict()) == keys
    with torch.no_grad():
        torch.testing.assert_close(unet(*args), g["unet.eps"], atol=2e-5, rtol=0)
        for m in stacked:
            assert m.stacked_qkv is not None
            m.stacked_qkv.zero_()  # stale on purpose
        broken = unet(*args)
        unet.requires_grad_(True)
        trained = unet(*args)
        unet.requires_grad_(False)
        unet.load_state_dict(unet.state_dict())
        reloaded = unet(*args)
    assert not torch.allclose(broken, g["unet.eps"], atol=1e-3)  # the frozen U-Net did read the stack
    torch.testing.assert_close(trained, g["unet.eps"], atol=2e-5, rtol=0)
    assert all(m.stacked_qkv is None for m in stacked)  # loading dropped the stale stacks
    torch.testing.assert_close(reloaded, g["unet.eps"], atol=2e-5, rtol=0)


def test_the_interpolator_stacks_projections_in_the_weights_dtype() -> None:
    """The Interpolator stacks after casting the U-Net's weights to half precision: each stack is
    in its weights' dtype (a stale-dtype stack would be skipped, and its speed lost, silently)."""
    from ldmvfi_core.interpolate import Interpolator
    from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
    from ldmvfi_core.model.maxvit import Attention

    model = LatentDiffusionVFI(LDMVFIConfig.tiny())
    interp = Interpolator(model, device="cpu", dtype=torch.bfloat16)
    attentions = [m for m in interp.model.modules() if isinstance(m, Attention)]
    assert attentions
    for m in attentions:
        stack = m.stacked_qkv if m.stacked_qkv is not None else m.stacked_kv
        assert stack is not None and stack.dtype == m.to_q.weight.dtype
    unet_dtypes = {m.to_q.weight.dtype for m in interp.model.unet.modules() if isinstance(m, Attention)}
    assert unet_dtypes == {torch.bfloat16}
