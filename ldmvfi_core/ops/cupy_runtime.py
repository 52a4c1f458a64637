# SPDX-License-Identifier: MIT
"""Loading and launching our CUDA sources (``kernels/*.cu``) through CuPy, on torch's stream.

Nothing here imports CuPy at module import time. Sources are compiled by NVRTC at first use, with
our own headers (``kernels/*.cuh``) pasted in place of their ``#include`` lines, so CuPy's on-disk
kernel cache (``~/.cupy/kernel_cache``) keys on the whole text: a header change recompiles.
Tensors go to the kernels as raw device pointers (zero copy), and every launch goes on
``torch.cuda.current_stream()``, so kernels order correctly with torch's own work and CUDA graphs
capture them.
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

DTYPE_SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64"}
_INCLUDE = re.compile(r'^#include "([\w.]+\.cuh)"[ \t]*$', re.MULTILINE)


def kernel_source_path(name: str) -> Path:
    """``kernels/<name>``: installed as package data, or at the top of a source checkout."""
    packaged = resources.files("ldmvfi_core").joinpath("kernels").joinpath(name)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "kernels" / name


def kernel_source(name: str) -> str:
    """The text of ``kernels/<name>`` with our ``#include "x.cuh"`` lines replaced by the headers."""
    return _INCLUDE.sub(lambda m: kernel_source_path(m.group(1)).read_text(), kernel_source_path(name).read_text())


# A constant to torch.compile: traced, CuPy's device query (C code) broke the graph inside every
# attention block, and dynamo recompiled the pieces per shape until it ran them eagerly.
@functools.cache
@torch.compiler.assume_constant_result
def cupy_sees_gpu() -> bool:
    """CuPy imports and sees a GPU."""
    try:
        import cupy

        return bool(cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:  # ImportError, or a CUDA driver/runtime mismatch: callers fall back to torch
        return False


# Also a constant: traced, the environment lookup and the cached query were one more thing for
# dynamo to get wrong (session 10's max-autotune compile failed in here).
@torch.compiler.assume_constant_result
def kernel_enabled(switch: str) -> bool:
    """CuPy sees a GPU and the environment variable ``switch`` is not ``torch`` (which forces an
    op's pure-torch path, e.g. ``LDMVFI_DSEPCONV=torch``)."""
    if os.environ.get(switch, "").lower() == "torch":
        return False
    return cupy_sees_gpu()


@functools.cache
def compiled_module(source_name: str, device_index: int, defines: tuple[str, ...] = ()) -> Any:
    """The CuPy ``RawModule`` of ``kernels/<source_name>`` on one GPU, compiled once per process."""
    import cupy

    with cupy.cuda.Device(device_index):
        options = ("--std=c++17", *(f"-D{d}" for d in defines))
        module = cupy.RawModule(code=kernel_source(source_name), options=options)
        module.compile()
    return module


def device_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


class _StreamHandle:
    """The CUDA stream protocol (``__cuda_stream__``) around a raw ``cudaStream_t``."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.handle)


@functools.lru_cache(maxsize=64)
def _cupy_stream(handle: int, index: int) -> Any:
    """A CuPy view of torch's stream ``handle`` (no new stream is created)."""
    import cupy

    with cupy.cuda.Device(index):
        if hasattr(cupy.cuda.Stream, "from_external"):  # CuPy >= 14
            return cupy.cuda.Stream.from_external(_StreamHandle(handle))
        return cupy.cuda.ExternalStream(handle, index)


def launch(kernel: Any, device: torch.device, grid: int, block: int, args: tuple[Any, ...]) -> None:
    """Run ``kernel`` on torch's current stream of ``device``.

    ``args``: tensors (passed as device pointers), ``None`` (a null pointer), ints (int32) and
    floats (float32), in the kernel's parameter order.
    """
    import cupy

    index = device_index(device)

    def pack(a: Any) -> Any:
        if isinstance(a, Tensor):
            return np.uint64(a.data_ptr())
        if a is None:
            return np.uint64(0)
        if isinstance(a, float):
            return np.float32(a)
        return np.int32(a)

    stream = _cupy_stream(torch.cuda.current_stream(device).cuda_stream, index)
    with cupy.cuda.Device(index), stream:
        kernel((grid,), (block,), tuple(pack(a) for a in args))
