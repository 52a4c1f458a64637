# SPDX-License-Identifier: MIT
"""The decoder's ten synthesis heads as four convolutions (inference only).

Each head is ``conv3x3(C->64) relu conv3x3(64->32) relu conv3x3(32->k) relu conv3x3(k->k)``
(+ sigmoid for the mask), all at full frame resolution: 40 convolutions that each read the
full-resolution feature or a 64/32-channel intermediate. Stacked, the first layers of all heads
are one convolution (C -> 10*64) and the other three are grouped convolutions (one group per
head); heads with fewer outputs are zero-padded to the widest (their extra channels stay exactly
zero through the ReLU and are dropped). Each output channel sums the same products as before, so
only the order of float accumulation can differ.

The fused copy holds its own weights: build it after the last weight change (``fuse_heads``
does, for an inference model) and drop it before training again (``unfuse_heads``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (DecoderHeads field, Decoder attribute) in output order.
HEAD_FIELDS = (
    ("vertical1", "moduleKernelVertical1"),
    ("horizontal1", "moduleKernelHorizontal1"),
    ("offset_x1", "moduleAlpha1"),
    ("offset_y1", "moduleBeta1"),
    ("vertical2", "moduleKernelVertical2"),
    ("horizontal2", "moduleKernelHorizontal2"),
    ("offset_x2", "moduleAlpha2"),
    ("offset_y2", "moduleBeta2"),
    ("mask", "moduleMask"),
    ("residual", "moduleResidual"),
)
SIGMOID_FIELDS = frozenset({"mask"})


def _convs(head: nn.Sequential) -> list[nn.Conv2d]:
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    if len(convs) != 4:
        raise ValueError(f"a synthesis head has 4 convolutions, found {len(convs)}")
    return convs


def _padded(weight: Tensor, bias: Tensor, out: int, inp: int) -> tuple[Tensor, Tensor]:
    """Zero-pad a conv weight (o, i, 3, 3) to (out, inp, 3, 3) and its bias to (out,)."""
    w = weight.new_zeros((out, inp, *weight.shape[2:]))
    w[: weight.shape[0], : weight.shape[1]] = weight
    b = bias.new_zeros((out,))
    b[: bias.shape[0]] = bias
    return w, b


class FusedSynthesisHeads(nn.Module):
    """All synthesis heads of a ``Decoder`` in one stack; ``forward`` returns them by field name."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        heads = [_convs(getattr(decoder, attr)) for _, attr in HEAD_FIELDS]
        self.widths = [convs[2].out_channels for convs in heads]
        self.groups = len(heads)
        widest = max(self.widths)
        hidden1, hidden2 = heads[0][0].out_channels, heads[0][1].out_channels
        with torch.no_grad():
            layer1 = (torch.cat([c[0].weight for c in heads]), torch.cat([c[0].bias for c in heads]))
            layer2 = (torch.cat([c[1].weight for c in heads]), torch.cat([c[1].bias for c in heads]))
            padded3 = [_padded(c[2].weight, c[2].bias, widest, hidden2) for c in heads]
            padded4 = [_padded(c[3].weight, c[3].bias, widest, widest) for c in heads]
            layer3 = (torch.cat([w for w, _ in padded3]), torch.cat([b for _, b in padded3]))
            layer4 = (torch.cat([w for w, _ in padded4]), torch.cat([b for _, b in padded4]))
        if layer1[0].shape[0] != hidden1 * self.groups or layer2[0].shape[1] != hidden1:
            raise ValueError("synthesis heads differ in their hidden widths; they cannot be stacked")
        self.weights = nn.ParameterList(
            nn.Parameter(t.detach().clone(), requires_grad=False) for layer in (layer1, layer2, layer3, layer4)
            for t in layer
        )
        self.widest = widest

    def forward(self, feature: Tensor) -> dict[str, Tensor]:
        w = list(self.weights)
        x = F.relu(F.conv2d(feature, w[0], w[1], padding=1))
        x = F.relu(F.conv2d(x, w[2], w[3], padding=1, groups=self.groups))
        x = F.relu(F.conv2d(x, w[4], w[5], padding=1, groups=self.groups))
        x = F.conv2d(x, w[6], w[7], padding=1, groups=self.groups)
        out: dict[str, Tensor] = {}
        for g, ((field, _), width) in enumerate(zip(HEAD_FIELDS, self.widths, strict=True)):
            y = x[:, g * self.widest : g * self.widest + width]
            out[field] = torch.sigmoid(y) if field in SIGMOID_FIELDS else y
        return out


def fuse_heads(decoder: nn.Module) -> FusedSynthesisHeads:
    """Make ``decoder`` run its heads fused from now on; the fused weights copy the current ones.

    The fused module is kept outside the decoder's parameters (its state dict is unchanged);
    it lives on the device and dtype of the decoder's heads at this moment."""
    fused = FusedSynthesisHeads(decoder)
    object.__setattr__(decoder, "fused_heads", fused)  # not a registered submodule: keys stay official
    return fused


def unfuse_heads(decoder: nn.Module) -> None:
    """Back to the ten separate heads (e.g. before the weights change again)."""
    object.__setattr__(decoder, "fused_heads", None)
