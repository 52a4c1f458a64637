# SPDX-License-Identifier: MIT
"""View consistency (stage 1, ours): the ensemble's gain, trained into the model.

Session 10 found that averaging the shipped model over symmetric views of a pair (swapped,
mirrored, transposed: ``ldmvfi_core.ensemble``) adds about 1 dB, i.e. the model's answers for
the same pair seen differently disagree far more than their mean misses the truth. This term
shows each step's batch a second time in one random view (the same for the whole batch) and
penalises the L1 between the two reconstructions, the second turned back. Both copies also count
as ordinary training samples; the flow-teacher and smoothness terms see only the first copy,
whose teacher flows they were computed for.
"""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import Tensor

from ldmvfi_core.ensemble import ALL_VIEWS, View, orient, unorient
from ldmvfi_core.model.autoencoder import DecoderHeads


def random_view(height: int, width: int, generator: torch.Generator | None = None) -> View:
    """One of the fifteen views other than the identity; transposed ones only for square crops."""
    choices = [v for v in ALL_VIEWS[1:] if height == width or "t" not in v.orientation]
    return choices[int(torch.randint(len(choices), (), generator=generator))]


def turn_triplets(frames: Tensor, view: View) -> Tensor:
    """Triplets (B, 3, C, H, W) seen in ``view``: turned, and with the neighbours swapped if it
    reverses (the true middle frame stays in the middle)."""
    turned = orient(frames, view.orientation)
    return turned.flip(1) if view.reverse else turned


def view_consistency(reconstruction: Tensor, turned_reconstruction: Tensor, view: View) -> Tensor:
    """Mean L1 (float32) between a reconstruction and the same pair's reconstruction in ``view``,
    turned back."""
    back = unorient(turned_reconstruction.float(), view.orientation)
    return (reconstruction.float() - back).abs().mean()


def first_items(heads: DecoderHeads, count: int) -> DecoderHeads:
    """The decoder heads of the batch's first ``count`` samples (views, no copies)."""
    return DecoderHeads(**{f.name: getattr(heads, f.name)[:count] for f in fields(heads)})
