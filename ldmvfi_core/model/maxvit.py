# SPDX-License-Identifier: MIT
"""MaxViT window attention (Tu et al. 2022) as used by LDMVFI.

One block = local attention inside ``w x w`` windows of neighbouring pixels ("block"), then
sparse attention over ``w x w`` pixels spread ``H/w`` apart ("grid"); each followed by a
feed-forward. Used three ways:

* ``MaxAttentionBlock``: self-attention (autoencoder mid blocks, every U-Net level);
* ``SpatialCrossAttentionWithMax``: the decoder's MaxCA, queries from the decoder features,
  keys/values from the two neighbour frames' encoder features (paper Sec. 3.1).

Parameter names follow the official modules so checkpoints load unchanged.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ldmvfi_core.ops import window_attention


@lru_cache(maxsize=32)
def _relative_position_index(window: int, device: torch.device) -> Tensor:
    """(n, n) index into the ((2w-1)^2, heads) bias table, n = w*w tokens, row-major."""
    # Built outside inference mode: a cached inference tensor could not be used by training later.
    with torch.inference_mode(False):
        pos = torch.arange(window, device=device)
        grid = torch.stack(torch.meshgrid(pos, pos, indexing="ij")).flatten(1)  # (2, n)
        rel = grid[:, :, None] - grid[:, None, :] + (window - 1)  # (2, n, n)
        return rel[0] * (2 * window - 1) + rel[1]


def _drop_stacks_after_load(module: nn.Module, _incompatible_keys: object) -> None:
    if isinstance(module, Attention):
        module.drop_stacks()


class Attention(nn.Module):
    """Multi-head attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, dim_head: int, window: int) -> None:
        super().__init__()
        if dim % dim_head:
            raise ValueError(f"attention width {dim} is not a multiple of head width {dim_head}")
        self.heads = dim // dim_head
        self.dim_head = dim_head
        self.window = window
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.Dropout(0.0))
        self.rel_pos_bias = nn.Embedding((2 * window - 1) ** 2, self.heads)
        self._bias_cache: tuple[tuple[object, ...], Tensor] | None = None
        # Inference only (``fuse_projections``): the projections that read the same tensor stacked
        # into one weight, so they run as one matmul. Not saved with the model.
        self.stacked_qkv: Tensor | None
        self.stacked_kv: Tensor | None
        self.register_buffer("stacked_qkv", None, persistent=False)
        self.register_buffer("stacked_kv", None, persistent=False)
        # New weights make a stack stale: loading drops it (fuse again after loading).
        self.register_load_state_dict_post_hook(_drop_stacks_after_load)

    def drop_stacks(self) -> None:
        self.stacked_qkv = self.stacked_kv = None

    def fuse_projections(self, self_attention: bool) -> None:
        """Stack ``to_q``/``to_k``/``to_v`` (self-attention) or ``to_k``/``to_v`` (cross-attention)
        into one weight for inference: one matmul instead of three or two, the same dot products.

        Why: in the U-Net each projection is a small GEMM of a few thousand tokens that fills a
        fraction of a GPU. The stack is a copy of the weights as they are now (cast them first):
        it is used only while the weights want no gradient and keep its dtype, is dropped when a
        state dict is loaded, and goes stale if the weights are changed in place otherwise."""
        weights = [layer.weight.detach() for layer in (self.to_q, self.to_k, self.to_v)]
        self.stacked_qkv = torch.cat(weights) if self_attention else None
        self.stacked_kv = None if self_attention else torch.cat(weights[1:])

    def position_bias(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The (1, heads, n, n) relative position bias, contiguous (so SDPA can use its fused kernels).

        Without gradients it is built once and reused until the table changes (every U-Net step
        would otherwise gather it again: one gather, one copy and one cast per attention).
        """
        table = self.rel_pos_bias.weight
        if torch.compiler.is_compiling() or (torch.is_grad_enabled() and table.requires_grad):
            return self._build_bias(dtype, device)  # a compiled graph keeps no Python-side cache
        key = (dtype, device, table._version, table.data_ptr(), torch.is_inference_mode_enabled())
        if self._bias_cache is None or self._bias_cache[0] != key:
            self._bias_cache = (key, self._build_bias(dtype, device))
        return self._bias_cache[1]

    def _build_bias(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        index = _relative_position_index(self.window, device)
        return rearrange(self.rel_pos_bias(index), "i j h -> 1 h i j").to(dtype).contiguous()

    def _usable(self, stack: Tensor | None) -> Tensor | None:
        """``stack`` while the weights are frozen and in its dtype, else None (unstacked)."""
        weight = self.to_q.weight
        if stack is None or weight.requires_grad or stack.dtype != weight.dtype:
            return None
        return stack

    def _projections(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        qkv, kv = self._usable(self.stacked_qkv), self._usable(self.stacked_kv)
        if context is None and qkv is not None:
            q, k, v = F.linear(x, qkv).chunk(3, dim=-1)  # views: no copies
            return q, k, v
        if context is not None and kv is not None:
            k, v = F.linear(context, kv).chunk(2, dim=-1)
            return self.to_q(x), k, v
        context = x if context is None else context
        return self.to_q(x), self.to_k(context), self.to_v(context)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """x, context: (batch_windows, tokens, dim) -> (batch_windows, tokens, dim); no context:
        self-attention."""
        q, k, v = self._projections(x, context)
        bias = self.position_bias(q.dtype, q.device)
        if window_attention.can_fuse(q, self.heads):  # GPU inference: one warp per (window, head)
            return self.to_out(window_attention.window_attention(q, k, v, bias, self.heads))
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(0.0), nn.Linear(dim * mult, dim),
            nn.Dropout(0.0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PreNormResidual(nn.Module):
    """``fn(LN(x), LN(context)) + x``: the same LayerNorm normalises queries and context."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        normed = self.norm(x)
        if isinstance(self.fn, Attention):
            return self.fn(normed, None if context is None else self.norm(context)) + x
        return self.fn(normed) + x


def _to_blocks(x: Tensor, w: int) -> Tensor:
    return rearrange(x, "b d (x w1) (y w2) -> b x y (w1 w2) d", w1=w, w2=w)


def _from_blocks(x: Tensor, w: int, height: int) -> Tensor:
    return rearrange(x, "b x y (w1 w2) d -> b d (x w1) (y w2)", w1=w, w2=w, x=height // w)


def _to_grid(x: Tensor, w: int) -> Tensor:
    return rearrange(x, "b d (w1 x) (w2 y) -> b x y (w1 w2) d", w1=w, w2=w)


def _from_grid(x: Tensor, w: int, height: int) -> Tensor:
    return rearrange(x, "b x y (w1 w2) d -> b d (w1 x) (w2 y)", w1=w, w2=w, x=height // w)


def _check_tiles(x: Tensor, w: int) -> None:
    if x.shape[-2] % w or x.shape[-1] % w:
        raise ValueError(
            f"feature map {tuple(x.shape[-2:])} is not a multiple of the {w}x{w} attention window"
        )


class _MaxAttentionCore(nn.Module):
    """Block attention + FF, then grid attention + FF (no outer residual)."""

    def __init__(self, dim: int, dim_head: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.attn_block = PreNormResidual(dim, Attention(dim, dim_head, window))
        self.ff_block = PreNormResidual(dim, FeedForward(dim))
        self.attn_grid = PreNormResidual(dim, Attention(dim, dim_head, window))
        self.ff_grid = PreNormResidual(dim, FeedForward(dim))

    def _attend(self, x: Tensor, context: Tensor | None) -> Tensor:
        w, height = self.window, x.shape[-2]
        _check_tiles(x, w)
        stages = ((_to_blocks, _from_blocks, self.attn_block, self.ff_block),
                  (_to_grid, _from_grid, self.attn_grid, self.ff_grid))
        for split, merge, attn, ff in stages:
            tokens = split(x, w)
            shape = tokens.shape
            tokens = tokens.flatten(0, 2)
            ctx = None if context is None else split(context, w).flatten(0, 2)
            tokens = ff(attn(tokens, ctx))
            x = merge(tokens.reshape(shape), w, height)
        # The merge is a strided view. Eager GroupNorm copies such input itself, but the op it
        # decomposes to under torch.compile (AOTAutograd) refuses some of them on the CPU (one
        # sample, one window a side), so hand the next layer a plain layout. Same values.
        return x.contiguous()

    def fuse_projections(self, self_attention: bool) -> None:
        for attention in (self.attn_block.fn, self.attn_grid.fn):
            if isinstance(attention, Attention):
                attention.fuse_projections(self_attention)


class MaxAttentionBlock(_MaxAttentionCore):
    """MaxViT self-attention block on a (B, C, H, W) feature map."""

    def forward(self, x: Tensor) -> Tensor:
        return self._attend(x, None)


class SqueezeExcitation(nn.Module):
    def __init__(self, dim: int, shrinkage: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * shrinkage)
        self.gate = nn.Sequential(
            _SpatialMean(), nn.Linear(dim, hidden, bias=False), nn.SiLU(),
            nn.Linear(hidden, dim, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)[:, :, None, None]


class _SpatialMean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


def mbconv(dim_in: int, dim_out: int, expansion: int = 4) -> nn.Sequential:
    """MobileNet inverted-residual conv (no residual: used where channels change)."""
    hidden = dim_out * expansion
    return nn.Sequential(
        nn.Conv2d(dim_in, hidden, 1), nn.BatchNorm2d(hidden), nn.GELU(),
        nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.BatchNorm2d(hidden), nn.GELU(),
        SqueezeExcitation(hidden), nn.Conv2d(hidden, dim_out, 1), nn.BatchNorm2d(dim_out),
    )


class SpatialCrossAttentionWithMax(_MaxAttentionCore):
    """MaxCA: decoder features attend to the concatenated neighbour features (B, 2C, H, W)."""

    def __init__(self, dim: int, dim_head: int, window: int) -> None:
        super().__init__(dim, dim_head, window)
        self.proj_in = mbconv(2 * dim, dim)
        # Present in the official checkpoint but never called by the official forward.
        self.out_conv = nn.Sequential(SqueezeExcitation(2 * dim), nn.Conv2d(2 * dim, dim, 3, padding=1))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        return self._attend(x, self.proj_in(context))


def fuse_attention_projections(module: nn.Module) -> int:
    """Stack the q/k/v projections of every MaxViT block in ``module`` for inference
    (``Attention.fuse_projections``); call it after the weights are loaded and cast.
    Returns the number of blocks."""
    blocks = [m for m in module.modules() if isinstance(m, _MaxAttentionCore)]
    for block in blocks:
        block.fuse_projections(self_attention=not isinstance(block, SpatialCrossAttentionWithMax))
    return len(blocks)
