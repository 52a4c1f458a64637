# SPDX-License-Identifier: MIT
"""The decoder's ten synthesis heads evaluated another way (inference only): as four stacked
convolutions (``FusedSynthesisHeads``), or separately with channel counts padded to multiples of 8
(``PaddedSynthesisHeads``).

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

from ldmvfi_core.ops.conv_relu import conv3x3_relu

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


def _round_up(n: int, multiple: int = 8) -> int:
    return -(-n // multiple) * multiple


def _conv_like(weight: Tensor, bias: Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], padding=weight.shape[2] // 2)
    conv = conv.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv.requires_grad_(False)


class PaddedSynthesisHeads(nn.Module):
    """The ten heads as separate convolutions whose channel counts are rounded up to multiples of
    8 (zero weights and biases: the extra channels stay exactly 0 through the ReLUs and are
    dropped), optionally with the ten first layers as one convolution (C -> 10 x 64), and
    optionally (``block_tail``, the GPU default since session 12) with the narrow heads' last
    layers as one block-diagonal convolution (``_narrow_heads``), and optionally
    (``fused_relu_dtype``; the Interpolator's GPU default in half precision since session 16) with every
    convolution that a ReLU follows run as one ``ops.conv_relu.conv3x3_relu`` call in that dtype
    (the copy's weights are kept in it, channels-last).

    Why: cuDNN's NHWC kernels want channel counts that are multiples of 8. The heads' 25-, 5- and
    3-channel layers made it pad every such input (40 padding kernels, 3.8 ms of a 43-ms compiled
    decode at 1080p, released config, H100) and run 5-channel convolutions on a slow generic
    kernel (2.0 ms). Each output sums the same products, so only float summation order can differ.
    """

    def __init__(self, decoder: nn.Module, fuse_first: bool = False, block_tail: bool = False,
                 fused_relu_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        heads = [_convs(getattr(decoder, attr)) for _, attr in HEAD_FIELDS]
        self.widths = [convs[2].out_channels for convs in heads]
        self.hidden = heads[0][0].out_channels
        if any(convs[0].out_channels != self.hidden for convs in heads):
            raise ValueError("synthesis heads differ in their first hidden width")
        with torch.no_grad():
            if fuse_first:
                self.first: nn.Conv2d | None = _conv_like(torch.cat([c[0].weight for c in heads]),
                                                          torch.cat([c[0].bias for c in heads]))
                self.first_layers = nn.ModuleList()
            else:
                self.first = None
                self.first_layers = nn.ModuleList(_conv_like(c[0].weight, c[0].bias) for c in heads)
            rest = []
            for convs in heads:
                hidden2 = _round_up(convs[1].out_channels)
                out = _round_up(convs[2].out_channels)
                layers = [_padded(convs[1].weight, convs[1].bias, hidden2, convs[1].in_channels),
                          _padded(convs[2].weight, convs[2].bias, out, hidden2),
                          _padded(convs[3].weight, convs[3].bias, out, out)]
                rest.append(nn.ModuleList(_conv_like(w, b) for w, b in layers))
        self.rest = nn.ModuleList(rest)
        # The narrow heads' last layers (8 -> 8 after padding) as one block-diagonal convolution.
        self.tail_heads = _narrow_heads(self.rest) if block_tail else ()
        self.tail: nn.Conv2d | None = None
        if self.tail_heads:
            self.tail = _block_diagonal([self.rest[i][2] for i in self.tail_heads])  # type: ignore[index]
        self.fused_relu_dtype = fused_relu_dtype
        if fused_relu_dtype is not None:
            # the custom op sees no autocast: hold the weights in the compute dtype, NHWC as cuDNN wants
            self.to(dtype=fused_relu_dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]

    def _conv_relu(self, conv: nn.Module, x: Tensor) -> Tensor:
        if self.fused_relu_dtype is None:
            return F.relu(conv(x))
        return conv3x3_relu(x.to(self.fused_relu_dtype), conv.weight, conv.bias)  # type: ignore[arg-type]

    def forward(self, feature: Tensor) -> dict[str, Tensor]:
        if self.fused_relu_dtype is not None:  # once here, not in each of the ten first layers
            feature = feature.to(self.fused_relu_dtype).contiguous(memory_format=torch.channels_last)
        if self.first is not None:
            firsts = self._conv_relu(self.first, feature).split(self.hidden, dim=1)
        else:
            firsts = tuple(self._conv_relu(conv, feature) for conv in self.first_layers)
        thirds = [self._conv_relu(layers[1], self._conv_relu(layers[0], x))
                  for x, layers in zip(firsts, self.rest, strict=True)]
        fourths: list[Tensor | None] = [None] * len(thirds)
        if self.tail is not None:
            joined = self.tail(torch.cat([thirds[i] for i in self.tail_heads], dim=1))
            for i, y in zip(self.tail_heads, joined.split(joined.shape[1] // len(self.tail_heads), dim=1),
                            strict=True):
                fourths[i] = y
        out: dict[str, Tensor] = {}
        for i, ((field, _), width, layers) in enumerate(zip(HEAD_FIELDS, self.widths, self.rest, strict=True)):
            y = fourths[i]
            if y is None:
                y = layers[2](thirds[i])
            y = y[:, :width]
            y = torch.sigmoid(y) if field in SIGMOID_FIELDS else y
            if self.fused_relu_dtype is not None:
                # Channels-last here (the copy's weights are); the warp wants NCHW, and in float32,
                # the frames' dtype, which it computes in. Converted inside the warp op, these were
                # eager copies: five transposing ones (7.8 ms of a 1080p compiled decode, session
                # 16), then twelve casts (1.2 ms, session 17); here inductor folds both into the
                # slice's own kernel.
                y = y.to(torch.float32, memory_format=torch.contiguous_format)
            out[field] = y
        return out


NARROW = 8  # padded output width of the kernel-weight and residual heads (5 and 3 channels)


def _narrow_heads(rest: nn.ModuleList) -> tuple[int, ...]:
    """Indices of the heads whose last layer is NARROW -> NARROW, when there are two or more.

    Why: cuDNN runs an 8 -> 8 channel 3x3 convolution at full resolution on a kernel made for wide
    ones (0.57 ms at 1088x1928 on an H100, session 12, where inductor's Triton template takes 0.13
    ms); five of them were 2.9 of a 36-ms decode. One block-diagonal 40 -> 40 convolution does the
    same sums (the zero blocks add exact zeros) as one wide product."""
    narrow = tuple(i for i, layers in enumerate(rest) if layers[2].in_channels == NARROW  # type: ignore[index]
                   and layers[2].out_channels == NARROW)  # type: ignore[index]
    return narrow if len(narrow) >= 2 else ()


def _block_diagonal(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """One convolution equal to ``convs`` applied to consecutive channel blocks of its input."""
    first = convs[0]
    o, i = first.out_channels, first.in_channels
    weight = first.weight.new_zeros((o * len(convs), i * len(convs), *first.weight.shape[2:]))
    for n, conv in enumerate(convs):
        weight[n * o:(n + 1) * o, n * i:(n + 1) * i] = conv.weight
    bias = torch.cat([conv.bias for conv in convs])  # type: ignore[misc]  # heads' convs have biases
    return _conv_like(weight, bias)


def pad_heads(decoder: nn.Module, fuse_first: bool = False, block_tail: bool = False,
              fused_relu_dtype: torch.dtype | None = None) -> PaddedSynthesisHeads:
    """Make ``decoder`` run its heads padded to multiples of 8 channels from now on (a copy of the
    current weights, outside the state dict, like ``fuse_heads``)."""
    padded = PaddedSynthesisHeads(decoder, fuse_first, block_tail, fused_relu_dtype)
    object.__setattr__(decoder, "fused_heads", padded)
    return padded
