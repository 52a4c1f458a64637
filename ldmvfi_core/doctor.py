# SPDX-License-Identifier: MIT
"""``ldmvfi doctor``: what this machine has, which code path will run, and how to fix gaps.

Every check is a small function returning a ``Check``; nothing here changes the machine.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    essential: bool = False


def _version(module: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "installed"))
    except Exception:
        return None


def check_python() -> Check:
    return Check("python", sys.version_info >= (3, 10), f"{platform.python_version()} ({sys.executable})",
                 "use Python 3.10 or newer", essential=True)


def check_torch() -> Check:
    version = _version("torch")
    return Check("torch", version is not None, version or "not installed",
                 "pip install torch (see pytorch.org for the CUDA build of your driver)", essential=True)


def check_cuda() -> Check:
    try:
        import torch
    except ImportError:
        return Check("cuda", False, "torch missing")
    if not torch.cuda.is_available():
        return Check("cuda", False, "no CUDA device: the model runs on the CPU (slow)",
                     "install a CUDA build of torch and an NVIDIA driver to use a GPU")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    detail = f"CUDA {torch.version.cuda}; " + ", ".join(f"cuda:{i} {n}" for i, n in enumerate(names))
    if len(names) > 1:
        detail += f" ({len(names)} GPUs: `ldmvfi retime --devices all` uses every one)"
    return Check("cuda", True, detail)


def check_dsepconv() -> Check:
    from ldmvfi_core.ops.dsepconv import backend_name
    from ldmvfi_core.ops.dsepconv_cuda import cupy_available

    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        device = "cpu"
    backend = backend_name(device)
    cupy = _version("cupy")
    if backend == "cuda":
        return Check("dsepconv", True, f"CUDA kernels (dsepconv, window attention) through CuPy {cupy}")
    if device == "cuda":
        why = "LDMVFI_DSEPCONV=torch is set" if os.environ.get("LDMVFI_DSEPCONV") == "torch" else (
            "CuPy not installed" if cupy is None else "CuPy cannot use the GPU")
        return Check("dsepconv", False, f"torch fallbacks for dsepconv and window attention on the GPU ({why}; slower)",
                     "pip install 'ldmvfi[cuda12]' or 'ldmvfi[cuda13]' to match your CUDA version")
    return Check("dsepconv", True, f"torch path on the CPU (CuPy {'present' if cupy_available() else 'unused'})")


def check_openimageio() -> Check:
    version = _version("OpenImageIO")
    return Check("openimageio", version is not None, version or "not installed",
                 "pip install 'ldmvfi[exr]'", essential=True)


def check_ocio() -> Check:
    try:
        from ldmvfi_core.io.colour import ocio_colorspaces, ocio_config_description

        names = ocio_colorspaces()
        return Check("ocio", True, f"{ocio_config_description()}; {len(names)} colourspaces")
    except Exception as err:
        return Check("ocio", False, f"unavailable ({err})",
                     "set $OCIO to your show's config, or use --transfer without --ocio-from/--ocio-to")


def check_av() -> Check:
    version = _version("av")
    return Check("pyav", version is not None, version or "not installed (only needed for training on video)",
                 "pip install 'ldmvfi[video]'")


def check_default_model() -> Check:
    from ldmvfi_core.interpolate import default_weights_path

    path = default_weights_path()
    if path is None:
        return Check("model", False, "no default model shipped in this build",
                     "pass --model with an official .ckpt or an ldmvfi .safetensors")
    return Check("model", True, str(path))


CHECKS: tuple[Callable[[], Check], ...] = (
    check_python, check_torch, check_cuda, check_dsepconv, check_openimageio, check_ocio, check_av,
    check_default_model,
)


def run_doctor() -> int:
    """Print one line per check (and its fix); exit status 1 if an essential piece is missing."""
    failed_essential = False
    for make in CHECKS:
        try:
            check = make()
        except Exception as err:  # a broken install must not stop the report
            check = Check(make.__name__.removeprefix("check_"), False, f"check failed: {err}")
        mark = "ok " if check.ok else "-- "
        print(f"{mark}{check.name:12s} {check.detail}")
        if not check.ok and check.fix:
            print(f"   {'':12s} fix: {check.fix}")
        failed_essential |= check.essential and not check.ok
    return 1 if failed_essential else 0
