# SPDX-License-Identifier: MIT
"""Make the pixels of planned frames: model in-betweens (recursive midpoints) or fallbacks.

``FrameRenderer`` keeps two caches, both keyed by what a frame *is*: encoded source frames and
synthesised nodes (``plan.Node``). A node is the midpoint of its two parents on the next
coarser dyadic grid, so an output frame at t = 3/8 costs the nodes 1/2, 1/4 and 3/8, and the
neighbouring output frames reuse them. Caches hold the frames of the current source pair, plus
the later pairs' nodes of a batch (the renderer works through the plan in time order).

With ``batch`` > 1, a node is computed in one model call with the rest of its group
(``plan.batch_groups``: the same fraction of up to ``batch`` neighbouring pairs), always padded to
``batch`` items, so its pixels depend only on the plan, not on the chunk that asks for it.

``render(node, upcoming)`` queues the sampling of the next node the caller will render before it
decodes ``node`` (or, if that node needs a parent node not decoded yet, the parent's): on a GPU
the two stages then share the card (``Interpolator.start_sampling``), and the next node samples
while this one's file is written. The pixels are the same either way.

With ``prealign``, each source pair's camera move is measured once on the host, from the plate's
pixels, never from the GPU, on a thread of its own ahead of need (``retime/moves.py``); every pair
of the recursion is shifted by its share of it (``ldmvfi_core.prealign``): a node between times
ta and tb of the source interval by half of (tb - ta) of the move. A group's items share one
canvas, as large as its largest shift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ldmvfi_core.interpolate import Interpolator, PreparedFrame, SampledLatents, stack_prepared
from ldmvfi_core.io.exr import Window
from ldmvfi_core.prealign import aligned_canvases, crop_canvas, fills_from_partner, fuse_candidates, pair_disagreement
from ldmvfi_core.retime.moves import PairMoves
from ldmvfi_core.retime.plan import Method, Node, node_seed
from ldmvfi_core.retime.sources import SourcePlate

OtherChannels = Literal["warp", "nearest"]


@dataclass(frozen=True)
class RenderSettings:
    method: Method = "ldmvfi"
    steps: int = 0  # 0: the model's own
    eta: float = 1.0
    seed: int = 0
    other_channels: OtherChannels = "warp"
    batch: int = 1  # in-betweens per model call (see plan.batch_groups)
    prealign: bool = False  # also shift each moving pair by its share of the camera move, and fuse the two


@dataclass(frozen=True)
class _Sampling:
    """A group's latents, queued and not yet decoded, with the pair they were sampled between."""

    members: tuple[Node, ...]
    lefts: PreparedFrame
    rights: PreparedFrame
    latents: SampledLatents
    margin: tuple[int, int] = (0, 0)  # (x, y) of the canvas the pairs sit on (prealign)
    plain: _Sampling | None = None  # with a margin: the same pairs unshifted, fused with these


@dataclass(frozen=True)
class _Alignment:
    """A pair's pre-alignment (``ldmvfi_core.prealign``); the default: none."""

    shift: tuple[int, int] = (0, 0)
    from_partner: bool = False


class FrameRenderer:
    def __init__(self, plate: SourcePlate, settings: RenderSettings, interpolator: Interpolator | None,
                 groups: Mapping[Node, tuple[Node, ...]] | None = None) -> None:
        if settings.method == "ldmvfi" and interpolator is None:
            raise ValueError("the ldmvfi method needs a model")
        self.plate = plate
        self.settings = settings
        self.interpolator = interpolator
        self.groups = dict(groups or {})
        self._nodes: dict[Node, Tensor] = {}
        # (item, window, shift, margin, the partner filling its uncovered strips or None)
        self._prepared: dict[tuple[int | Node, Window, tuple[int, int], tuple[int, int], int | Node | None],
                             PreparedFrame] = {}
        self._moves = PairMoves(plate) if settings.prealign else None
        self._units: dict[tuple[int, Window], Tensor] = {}  # source frames on the device (prealign's canvases)
        self._sampling: dict[Node, _Sampling] = {}
        self._pair = -(2**63)

    def window(self, node: Node) -> Window:
        return self.plate.working_window(node.frame_a, node.frame_b)

    def render(self, node: Node, upcoming: Node | None = None) -> np.ndarray:
        """(H, W, C) float32 plate values (model channel order) over ``window(node)``.

        ``upcoming``: the node the caller renders next, if it knows; its sampling starts early."""
        return self.render_later(node, upcoming)()

    def render_later(self, node: Node, upcoming: Node | None = None) -> Callable[[], np.ndarray]:
        """``render`` with the wait left to the caller: the node's work and its download are
        queued now, and the returned call gives its pixels once they are on the host (on any
        thread: the retimer calls it on its writer's). Why: the thread that feeds the GPU then
        queues the next in-between while this one decodes, instead of waiting for it."""
        self._forget_before(node.frame_a)
        window = self.window(node)
        if self.settings.method == "blend":
            t = float(node.time)
            a = self.plate.linear_pixels(node.frame_a, window)
            b = self.plate.linear_pixels(node.frame_b, window)
            blended = ((1.0 - t) * a + t * b).astype(np.float32)
            return lambda: blended
        self._queue(node, window)
        if upcoming is not None:
            self._start_ahead(upcoming)
        out = self._node_output(node, window)[0].permute(1, 2, 0)
        # back to plate values on the model's device (the transfer there, not on this thread)
        rgb_later = self.plate.decode_rgb_later(torch.cat([(out[..., :3] + 1.0) / 2.0, out[..., 3:]], dim=-1))
        nearest: np.ndarray | None = None
        if self.settings.other_channels == "nearest" and out.shape[-1] > 3:
            # read here: the plate is this thread's (its cache is not shared with the writer's)
            nearest = self.plate.linear_pixels(node.frame_a if node.time <= 0.5 else node.frame_b, window)

        def pixels() -> np.ndarray:
            rgb = rgb_later()
            if nearest is not None:
                rgb[..., 3:] = nearest[..., 3:]
            return rgb.astype(np.float32, copy=False)

        return pixels

    def _forget_before(self, frame_a: int) -> None:
        if frame_a == self._pair:
            return
        self._pair = frame_a
        self._nodes = {n: v for n, v in self._nodes.items() if n.frame_a >= frame_a}
        self._prepared = {k: v for k, v in self._prepared.items() if _frame_of(k[0]) >= frame_a}
        self._units = {k: v for k, v in self._units.items() if k[0] >= frame_a}
        if self._moves is not None:
            self._moves.forget_before(frame_a)

    def _node_output(self, node: Node, window: Window) -> Tensor:
        if node not in self._nodes:
            self._queue(node, window)
            self._finish_group(node)
        return self._nodes[node]

    def _queue(self, node: Node, window: Window) -> None:
        """Start ``node``'s sampling unless it is decoded or already queued."""
        if node not in self._nodes and node not in self._sampling:
            self._start_group(node, window)

    def _start_ahead(self, node: Node) -> None:
        """Queue ``node``'s sampling now, unless it is done or queued. A node whose parent node is
        not decoded yet cannot sample before that decode: its parent starts ahead instead."""
        if node in self._nodes or node in self._sampling:
            return
        waiting = [parent for parent in node.parents() if isinstance(parent, Node) and parent not in self._nodes]
        for parent in waiting:
            self._start_ahead(parent)
        if not waiting:
            self._start_group(node, self.window(node))

    def _start_group(self, node: Node, window: Window) -> None:
        """Queue the sampling of ``node`` and its group members of the same frame size, in one
        call of ``batch`` items (with ``batch`` 1, ``node`` alone)."""
        s = self.settings
        interp = self.interpolator
        assert interp is not None
        members = tuple(m for m in self.groups.get(node, (node,)) if self.window(m) == window)
        padded = members + (members[-1],) * (s.batch - len(members))  # constant shape: same kernels
        alignments = [self._alignment_of(m) for m in padded]
        margin = (max(abs(a.shift[0]) for a in alignments), max(abs(a.shift[1]) for a in alignments))
        seeds = [node_seed(s.seed, m) for m in padded]
        pairs = list(zip(padded, alignments, strict=True))
        lefts = stack_prepared([self._prepare_side(m, window, a, margin, 0) for m, a in pairs])
        rights = stack_prepared([self._prepare_side(m, window, a, margin, 1) for m, a in pairs])
        latents = interp.start_sampling(lefts, rights, steps=s.steps, eta=s.eta, seed=seeds)
        plain = None
        if margin != (0, 0):  # the unshifted pairs too: prealign fuses both (prealign.fuse_candidates)
            plain_lefts = stack_prepared([self._prepare(m.parents()[0], window) for m in padded])
            plain_rights = stack_prepared([self._prepare(m.parents()[1], window) for m in padded])
            plain = _Sampling(members, plain_lefts, plain_rights,
                              interp.start_sampling(plain_lefts, plain_rights, steps=s.steps, eta=s.eta, seed=seeds))
        sampling = _Sampling(members, lefts, rights, latents, margin, plain)
        for member in members:
            self._sampling[member] = sampling

    def _finish_group(self, node: Node) -> None:
        """Decode the group ``node`` was queued with."""
        interp = self.interpolator
        assert interp is not None
        sampling = self._sampling[node]
        out = interp.finish_decoding(sampling.latents, sampling.lefts, sampling.rights)
        window = self.window(sampling.members[0])
        size = (window.height, window.width)
        out = crop_canvas(out, sampling.margin, size)
        if sampling.plain is not None:
            plain = sampling.plain
            plain_out = interp.finish_decoding(plain.latents, plain.lefts, plain.rights)
            out = fuse_candidates(plain_out, out, _disagreement(plain, (0, 0), size),
                                  _disagreement(sampling, sampling.margin, size))
        for i, member in enumerate(sampling.members):
            self._nodes[member] = out[i : i + 1]
            self._sampling.pop(member, None)

    def _prepare_side(self, node: Node, window: Window, alignment: _Alignment, margin: tuple[int, int],
                      side: int) -> PreparedFrame:
        """``node``'s left (``side`` 0) or right parent, encoded; with a ``margin`` (prealign), on
        the pair's canvas (``aligned_canvases``). Kept for the other pairs that use it the same way."""
        parents = node.parents()
        if margin == (0, 0):
            return self._prepare(parents[side], window)
        sx, sy = alignment.shift
        shift = (sx, sy) if side == 0 else (-sx, -sy)
        partner = parents[1 - side] if alignment.from_partner else None  # fills the strip the shift uncovers
        key = (parents[side], window, shift, margin, partner)
        if key not in self._prepared:
            interp = self.interpolator
            assert interp is not None
            own = self._model_units(parents[side], window, keep=True)
            other = own if partner is None else self._model_units(partner, window, keep=True)
            canvas = aligned_canvases(own, other, shift, margin, from_partner=partner is not None)[0]
            self._prepared[key] = interp.prepare_model_units(canvas)
        return self._prepared[key]

    def _prepare(self, item: int | Node, window: Window) -> PreparedFrame:
        key = (item, window, (0, 0), (0, 0), None)
        if key not in self._prepared:
            interp = self.interpolator
            assert interp is not None
            self._prepared[key] = interp.prepare_model_units(self._model_units(item, window))
        return self._prepared[key]

    def _model_units(self, item: int | Node, window: Window, keep: bool = False) -> Tensor:
        """(1, C, H, W) in the model's units on its device: a decoded node, or a source frame.
        ``keep``: keep a source frame for its other uses (a pre-aligned frame is on several
        canvases: one upload); without it the frame is freed once encoded, as a 4K peak wants."""
        if isinstance(item, Node):
            return self._node_output(item, window)
        if (item, window) in self._units:
            return self._units[item, window]
        interp = self.interpolator
        assert interp is not None
        # the plate has refused or repaired NaN/Inf on reading (its nonfinite policy), and checking
        # again on the device would make this thread wait for the GPU: none here
        units = interp.to_model_units(self.plate.model_tensor(item, window, interp.device).permute(2, 0, 1)[None])
        if keep:
            self._units[item, window] = units
        return units

    def _alignment_of(self, node: Node) -> _Alignment:
        """How ``node``'s pair is pre-aligned: its left parent's whole-pixel shift (the right one
        moves the other way), and whether uncovered strips take the other frame's pixels."""
        move = self._moves.move(node.frame_a, node.frame_b) if self._moves is not None else None
        if move is None:
            return _Alignment()
        left, right = node.parents()  # source frames sit at 0 and 1 of their interval
        end = float(right.time) if isinstance(right, Node) else 1.0
        start = float(left.time) if isinstance(left, Node) else 0.0
        return _Alignment(move.half_shift(end - start), fills_from_partner(move))

    def close(self) -> None:
        """Stop the thread that measures camera moves (prealign)."""
        if self._moves is not None:
            self._moves.close()


def _disagreement(sampling: _Sampling, margin: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """``pair_disagreement`` of a sampling's pairs over the window of ``size`` on their canvas."""
    lefts, rights = (side.padding.crop(side.encoded.frame) for side in (sampling.lefts, sampling.rights))
    return crop_canvas(pair_disagreement(lefts, rights), margin, size)


def _frame_of(item: int | Node) -> int:
    return item.frame_a if isinstance(item, Node) else item
