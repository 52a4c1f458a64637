# SPDX-License-Identifier: MIT
"""Dispatch between the CUDA kernels (dsepconv, window attention) and the torch paths (the parts that
run without a GPU)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch

from ldmvfi_core.ops import cupy_runtime, dsepconv_cuda, window_attention
from ldmvfi_core.ops.dsepconv import backend_name


def test_cpu_tensors_take_the_torch_path() -> None:
    assert backend_name("cpu") == "torch"


@pytest.mark.parametrize(("switch", "available"), [
    ("LDMVFI_DSEPCONV", dsepconv_cuda.cupy_available),
    ("LDMVFI_WINDOW_ATTENTION", window_attention.fused_kernel_available),
])
def test_environment_can_force_the_torch_path(monkeypatch: pytest.MonkeyPatch, switch: str,
                                              available: Callable[[], bool]) -> None:
    available.cache_clear()  # type: ignore[attr-defined]
    monkeypatch.setenv(switch, "torch")
    try:
        assert available() is False
    finally:
        available.cache_clear()  # type: ignore[attr-defined]


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a:UserWarning")  # the cache wrapper: intended
@pytest.mark.parametrize("available", [dsepconv_cuda.cupy_available, window_attention.fused_kernel_available])
def test_kernel_availability_is_a_constant_to_torch_compile(monkeypatch: pytest.MonkeyPatch,
                                                            available: Callable[[], bool]) -> None:
    # CuPy's device query is C code dynamo cannot trace: traced, it broke the compiled U-Net into
    # pieces that recompiled per shape until dynamo fell back to eager (found on an H100).
    runtime = SimpleNamespace(getDeviceCount=os.getpid)  # a C builtin returning > 0, as CuPy's is
    monkeypatch.setitem(sys.modules, "cupy", SimpleNamespace(cuda=SimpleNamespace(runtime=runtime), ndarray=type))
    cupy_runtime.cupy_sees_gpu.cache_clear()
    available.cache_clear()  # type: ignore[attr-defined]
    torch._dynamo.reset()
    try:
        def pick(x: torch.Tensor) -> torch.Tensor:
            y = x * 2  # graph work before the check, so a break would split the graph
            return y + 1 if available() else y - 1

        explained = torch._dynamo.explain(pick)(torch.zeros(3))
        assert explained.graph_break_count == 0 and explained.graph_count == 1
        assert torch.equal(torch.compile(pick, backend="eager")(torch.zeros(3)), torch.ones(3))
    finally:
        cupy_runtime.cupy_sees_gpu.cache_clear()
        available.cache_clear()  # type: ignore[attr-defined]
        torch._dynamo.reset()


def test_kernel_source_is_found_and_defines_every_dtype() -> None:
    source = dsepconv_cuda.kernel_source_path().read_text()
    for name in ("forward", "blend", "backward"):
        for suffix in ("f64", "f32", "f16", "bf16"):
            assert f"dsepconv_{name}_##SUFFIX" in source
            assert f"LDMVFI_DSEPCONV_KERNELS({suffix}," in source


@pytest.mark.parametrize("channels", [1, 3, 4, 5, 9])
def test_pack_channels_puts_four_channels_per_pixel(channels: int) -> None:
    frame = torch.randn(2, channels, 5, 7)
    packed = dsepconv_cuda.pack_channels(frame)
    groups = (channels + 3) // 4
    assert packed.shape == (2, groups, 5, 7, 4) and packed.is_contiguous()
    for c in range(4 * groups):
        expected = frame[:, c] if c < channels else torch.zeros(2, 5, 7)
        assert torch.equal(packed[:, c // 4, :, :, c % 4], expected)
