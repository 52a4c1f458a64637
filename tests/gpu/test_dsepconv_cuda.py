# SPDX-License-Identifier: MIT
"""CUDA dsepconv kernels against the torch path and the official vectors (skipped without a GPU).

Run on the GPU machine: ``python -m pytest -m gpu tests/gpu -q``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ldmvfi_core.ops import dsepconv_cuda as kernels
from ldmvfi_core.ops.dsepconv import dsepconv, dsepconv_blend
from ldmvfi_core.ops.dsepconv_torch import dsepconv_blend_torch, dsepconv_torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (torch.cuda.is_available() and kernels.cupy_available()),
                       reason="needs a CUDA GPU and CuPy"),
]

# (batch, channels, height, width): awkward sizes, odd, prime, 1-pixel, more channels than RGB
SIZES = [(1, 3, 1, 1), (2, 3, 7, 13), (1, 1, 33, 65), (2, 5, 31, 17), (1, 3, 130, 257), (1, 7, 64, 96)]
K = 5


def _inputs(b: int, c: int, h: int, w: int, seed: int, dtype: torch.dtype = torch.float32,
            spread: float = 3.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, c, h + K - 1, w + K - 1, generator=g)
    vert = torch.rand(b, K, h, w, generator=g) * 0.5 - 0.1
    horz = torch.rand(b, K, h, w, generator=g) * 0.5 - 0.1
    offx = torch.randn(b, K * K, h, w, generator=g) * spread
    offy = torch.randn(b, K * K, h, w, generator=g) * spread
    mask = torch.rand(b, K * K, h, w, generator=g)
    return [t.to("cuda", dtype) for t in (image, vert, horz, offx, offy, mask)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@pytest.mark.parametrize("size", SIZES)
def test_forward_and_backward_match_torch_path_fp32(size: tuple[int, int, int, int]) -> None:
    args = [t.requires_grad_() for t in _inputs(*size, seed=hash(size) % 1000)]
    ref_args = [t.detach().clone().requires_grad_() for t in args]
    out = dsepconv(*args)
    ref = dsepconv_torch(*ref_args)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for name, a, r in zip(("image", "vertical", "horizontal", "offset_x", "offset_y", "mask"),
                          args, ref_args, strict=True):
        torch.testing.assert_close(a.grad, r.grad, atol=5e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("size", SIZES[1:4])
def test_half_precision_inputs_accumulate_in_float32(
    dtype: torch.dtype, size: tuple[int, int, int, int]
) -> None:
    args = [t.requires_grad_() for t in _inputs(*size, seed=5, dtype=dtype)]
    out = dsepconv(*args)
    assert out.dtype == dtype
    ref_args = [t.detach().float().requires_grad_() for t in args]
    ref = dsepconv_torch(*ref_args)
    assert _rel(out, ref) < 1e-2
    grad = torch.randn_like(ref)
    out.backward(grad.to(dtype))
    ref.backward(grad)
    for a, r in zip(args, ref_args, strict=True):
        assert a.grad.dtype == dtype
        assert _rel(a.grad, r.grad) < 2e-2


def test_gradcheck_float64() -> None:
    args = _inputs(1, 2, 3, 4, seed=11, dtype=torch.float64, spread=1.0)
    # keep sampling positions off integer grid points, where the derivative jumps
    args[3] = args[3] + 0.37
    args[4] = args[4] + 0.21
    args = [t.requires_grad_() for t in args]
    assert torch.autograd.gradcheck(kernels.dsepconv_cuda, args, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("res_channels", [0, 3])
def test_fused_blend_matches_the_composition(dtype: torch.dtype, res_channels: int) -> None:
    b, c, h, w = 2, 7, 45, 77
    a = _inputs(b, c, h, w, seed=21, dtype=dtype)
    other = _inputs(b, c, h, w, seed=22, dtype=dtype)
    residual = torch.randn(b, res_channels, h, w, device="cuda", dtype=dtype) if res_channels else None
    with torch.no_grad():
        fused = dsepconv_blend(a[0], other[0], a[1:5], other[1:5], a[5], residual)
        ref = dsepconv_blend_torch(*(t.float() for t in (a[0], other[0])), [t.float() for t in a[1:5]],
                                   [t.float() for t in other[1:5]], a[5].float(),
                                   None if residual is None else residual.float())
    assert fused.dtype == dtype and torch.isfinite(fused.float()).all()
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert _rel(fused, ref) < tol


def test_blend_with_gradients_uses_differentiable_kernels() -> None:
    a = [t.requires_grad_() for t in _inputs(1, 4, 20, 30, seed=31)]
    o = [t.requires_grad_() for t in _inputs(1, 4, 20, 30, seed=32)]
    residual = torch.randn(1, 3, 20, 30, device="cuda", requires_grad=True)
    out = dsepconv_blend(a[0], o[0], a[1:5], o[1:5], a[5], residual)
    out.square().sum().backward()
    used = (*a, *o[:5], residual)  # o[5] is not an input: the blend uses one mask for both frames
    for i, t in enumerate(used):
        assert t.grad is not None and torch.isfinite(t.grad).all(), i
    assert o[5].grad is None


def test_runs_on_torchs_current_stream() -> None:
    args = _inputs(1, 3, 256, 256, seed=41)
    expected = dsepconv_torch(*args)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for _ in range(3):
            out = dsepconv(*args)
    torch.cuda.current_stream().wait_stream(stream)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-5)


def test_official_vectors_on_gpu(golden) -> None:
    g = golden("dsepconv")
    names = ("input", "vertical", "horizontal", "offset_x", "offset_y", "mask")
    args = [g[f"dsep.{n}"].cuda().requires_grad_() for n in names]
    out = dsepconv(*args)
    torch.testing.assert_close(out.cpu(), g["dsep.output"], atol=1e-5, rtol=0)
    out.backward(g["dsep.grad_output"].cuda())
    for n, t in zip(names[1:], args[1:], strict=True):
        torch.testing.assert_close(t.grad.cpu(), g[f"dsep.grad_{n}"], atol=1e-5, rtol=0, msg=n)


@pytest.mark.parametrize("case", ["e2e0", "e2e1", "e2e2", "e2e3"])
def test_end_to_end_on_gpu_matches_official(case: str, golden) -> None:
    from ldmvfi_core.interpolate import Interpolator
    from tests.conftest import TINY

    torch.backends.cudnn.deterministic = True
    interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", padding="reference")
    g = golden("e2e")
    f0 = interp.prepare(g[f"{case}.frame0_u8"].permute(1, 2, 0).numpy())
    f1 = interp.prepare(g[f"{case}.frame1_u8"].permute(1, 2, 0).numpy())
    out = interp.interpolate_prepared(f0, f1, steps=200, eta=0.0, x_T=g[f"{case}.x_T"])
    torch.testing.assert_close(out.cpu(), g[f"{case}.output"], atol=2e-5, rtol=0)
    assert np.isfinite(out.cpu().numpy()).all()


def test_prepacked_frames_give_the_same_blend() -> None:
    a = _inputs(1, 5, 33, 47, seed=51)
    o = _inputs(1, 5, 33, 47, seed=52)
    with torch.no_grad():
        plain = kernels.dsepconv_blend_cuda(a[0], o[0], tuple(a[1:5]), tuple(o[1:5]), a[5], None)
        packed = kernels.dsepconv_blend_cuda(kernels.pack_channels(a[0]), kernels.pack_channels(o[0]),
                                             tuple(a[1:5]), tuple(o[1:5]), a[5], None, channels=5)
    assert torch.equal(plain, packed)


@pytest.mark.parametrize("case", ["e2e0", "e2e2"])
def test_cuda_graph_denoiser_matches_eager(case: str, golden) -> None:
    from ldmvfi_core.interpolate import Interpolator
    from tests.conftest import TINY

    g = golden("e2e")
    outs = []
    for graphs in (False, True):
        interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", padding="reference",
                                   cuda_graphs=graphs)
        f0 = interp.prepare(g[f"{case}.frame0_u8"].permute(1, 2, 0).numpy())
        f1 = interp.prepare(g[f"{case}.frame1_u8"].permute(1, 2, 0).numpy())
        out = interp.interpolate_prepared(f0, f1, steps=200, eta=0.0, x_T=g[f"{case}.x_T"])
        outs.append(out.cpu())
        torch.testing.assert_close(out.cpu(), g[f"{case}.output"], atol=2e-5, rtol=0)
    torch.testing.assert_close(outs[1], outs[0], atol=1e-6, rtol=0)


def test_cuda_graph_denoiser_with_bf16_and_eta() -> None:
    from ldmvfi_core.interpolate import Interpolator
    from tests.conftest import TINY

    rng = np.random.default_rng(0)
    a, b = rng.random((64, 96, 3), dtype=np.float32), rng.random((64, 96, 3), dtype=np.float32)
    eager = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16)
    graph = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16, cuda_graphs=True)
    first = graph.interpolate(a, b, steps=20, eta=1.0, seed=3)
    again = graph.interpolate(a, b, steps=20, eta=1.0, seed=3)  # replays the graph captured above
    assert np.array_equal(first, again)
    assert np.abs(first - eager.interpolate(a, b, steps=20, eta=1.0, seed=3)).max() < 2e-2


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_second_gpu_gives_the_first_gpus_frames(dtype: torch.dtype) -> None:
    """A model on cuda:1 while cuda:0 is the current device: CUDA-graph capture, the CuPy kernels and
    the rest must all run on cuda:1, and the frames must be bit-identical to cuda:0's."""
    from ldmvfi_core.interpolate import Interpolator
    from tests.conftest import TINY

    rng = np.random.default_rng(1)
    a, b = rng.random((64, 96, 3), dtype=np.float32), rng.random((64, 96, 3), dtype=np.float32)
    torch.cuda.set_device(0)
    outs = []
    for device in ("cuda:0", "cuda:1"):
        interp = Interpolator.load(TINY / "weights.safetensors", device=device, dtype=dtype, cuda_graphs=True)
        outs.append(interp.interpolate(a, b, steps=10, eta=1.0, seed=5))
    assert torch.cuda.current_device() == 0
    assert np.array_equal(outs[0], outs[1])


def test_compiled_autoencoder_matches_eager_on_the_gpu() -> None:
    """``Interpolator(compile=True)`` compiles the encoder and decoder with inductor on GPUs. In
    float32 only the compiled arithmetic differs, so frames must agree to float32 rounding."""
    from ldmvfi_core.interpolate import Interpolator, compile_autoencoder
    from tests.conftest import TINY

    rng = np.random.default_rng(2)
    a, b = rng.random((64, 96, 3), dtype=np.float32), rng.random((64, 96, 3), dtype=np.float32)
    interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.float32)
    eager = interp.interpolate(a, b, steps=2, eta=1.0, seed=3)
    torch._dynamo.reset()
    try:
        compile_autoencoder(interp.model.first_stage_model)
        compiled = interp.interpolate(a, b, steps=2, eta=1.0, seed=3)
    finally:
        torch._dynamo.reset()
    np.testing.assert_allclose(compiled, eager, atol=1e-4, rtol=0)
