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


@dataclass(frozen=True)
class _Sampling:
    """A group's latents, queued and not yet decoded, with the pair they were sampled between."""

    members: tuple[Node, ...]
    lefts: PreparedFrame
    rights: PreparedFrame
    latents: SampledLatents


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
        self._prepared: dict[tuple[int | Node, Window], PreparedFrame] = {}
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
        lefts = stack_prepared([self._prepare(m.parents()[0], window) for m in padded])
        rights = stack_prepared([self._prepare(m.parents()[1], window) for m in padded])
        latents = interp.start_sampling(lefts, rights, steps=s.steps, eta=s.eta,
                                        seed=[node_seed(s.seed, m) for m in padded])
        sampling = _Sampling(members, lefts, rights, latents)
        for member in members:
            self._sampling[member] = sampling

    def _finish_group(self, node: Node) -> None:
        """Decode the group ``node`` was queued with."""
        interp = self.interpolator
        assert interp is not None
        sampling = self._sampling[node]
        out = interp.finish_decoding(sampling.latents, sampling.lefts, sampling.rights)
        for i, member in enumerate(sampling.members):
            self._nodes[member] = out[i : i + 1]
            self._sampling.pop(member, None)

    def _prepare(self, item: int | Node, window: Window) -> PreparedFrame:
        key = (item, window)
        if key not in self._prepared:
            interp = self.interpolator
            assert interp is not None
            if isinstance(item, Node):
                self._prepared[key] = interp.prepare_model_units(self._node_output(item, window))
            else:
                # the plate has refused or repaired NaN/Inf on reading (its nonfinite policy), and
                # checking again on the device would make this thread wait for the GPU
                self._prepared[key] = interp.prepare(self.plate.model_tensor(item, window, interp.device),
                                                     check_finite=False)
        return self._prepared[key]


def _frame_of(item: int | Node) -> int:
    return item.frame_a if isinstance(item, Node) else item
