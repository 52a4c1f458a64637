# SPDX-License-Identifier: MIT
"""Average the weights of training checkpoints of one lineage ("model soup", weight averaging).

Checkpoints fine-tuned from one parent at a small rate stay in the parent's basin, so the mean
of their weights is a model too, and often a better one than the mean of its members: each
run's weight noise is partly its own and averages out (the variance the self-ensemble,
``--ensemble``, removes at render time, here at no cost per frame). Session 11's soups of flat
arms landed between their members, never above the best: keep the members' scores beside it.

The model's floating-point tensors are averaged (BatchNorm's running statistics too: close to,
not exactly, the statistics of the averaged weights); integer buffers are counters
(``num_batches_tracked``), not weights, and keep the largest count. Checkpoints that all keep a
moving average (stage 2's U-Net; stage 1 with ``--ae-ema``) also get the mean of their averages,
the weights that ship; when only some keep one, the soup has none and its live mean ships. The
result is a training checkpoint without optimiser state or discriminator, like a carried one:
start stage 2 from it with ``--init-from``, probe it with ``tools/ae_probe.py``, or ``--resume``
stage 1 from it (fresh Adam moments, the first checkpoint's data position).

    python -m ldmvfi_core.train.soup runs/soup/checkpoints/step_00020353.pt \
        runs/s9a/checkpoints/step_00019097.pt runs/s11a/checkpoints/step_00020353.pt ...
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ldmvfi_core.train.carry import slim
from ldmvfi_core.train.checkpoint import TrainCheckpointError, load_checkpoint, save_checkpoint
from ldmvfi_core.train.loop import checkpoint_inference_state


def average_checkpoints(paths: Sequence[str | os.PathLike[str]],
                        weights: Sequence[float] | None = None, *, averages: bool = False) -> dict[str, Any]:
    """A checkpoint whose model is the (weighted) mean of the models of ``paths``.

    All must be of one stage and one config with the same tensor names and shapes; the first
    names the result's config and options. ``weights`` default to equal; they are normalised.
    ``averages``: each member counts with its moving average where it keeps one (the weights it
    would ship), its live weights where not, and the result keeps no average. That is how a
    start without one (a shipped model) mixes with arms that kept one.
    """
    if len(paths) < 2:
        raise ValueError("average at least two checkpoints")
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"{len(weights)} weights for {len(paths)} checkpoints: give one non-negative weight each")
    total = float(sum(weights))
    states = [load_checkpoint(p) for p in paths]
    if averages:
        states = [_average_as_model(s) for s in states]
    first, first_path = states[0], Path(paths[0])
    for state, path in zip(states[1:], paths[1:], strict=True):
        _check_compatible(first, first_path, state, Path(path))
    shares = [w / total for w in weights]
    model = _mean_state([s["model"] for s in states], shares)
    ema = None  # the moving averages are the weights that ship, so average them too
    if all(s.get("ema") for s in states):
        ema = {"decay": first["ema"]["decay"], "num_updates": max(int(s["ema"]["num_updates"]) for s in states),
               "shadow": _mean_state([s["ema"]["shadow"] for s in states], shares)}
    # The first checkpoint's layout, slimmed as a carried one; no member's discriminator fits the mean.
    return {**slim(first), "model": model, "ema": ema, "discriminator": None,
            "step": max(int(s["step"]) for s in states),
            "soup": {"sources": [str(p) for p in paths], "steps": [int(s["step"]) for s in states],
                     "weights": shares}}


def _average_as_model(state: dict[str, Any]) -> dict[str, Any]:
    if not state.get("ema"):
        return state
    return {**state, "model": checkpoint_inference_state(state), "ema": None}


def _mean_state(states: Sequence[dict[str, torch.Tensor]], shares: Sequence[float]) -> dict[str, torch.Tensor]:
    """Floating-point tensors: the weighted mean (summed in float64); integer ones are counters
    (``num_batches_tracked``), not weights, and keep the largest value."""
    mean: dict[str, torch.Tensor] = {}
    for name, tensor in states[0].items():
        if tensor.is_floating_point():
            total = sum(state[name].double() * share for state, share in zip(states, shares, strict=True))
            mean[name] = torch.as_tensor(total).to(tensor.dtype)
        else:
            mean[name] = torch.stack([state[name] for state in states]).amax(dim=0)
    return mean


def _check_compatible(first: dict[str, Any], first_path: Path, other: dict[str, Any], path: Path) -> None:
    if other["stage"] != first["stage"]:
        raise TrainCheckpointError(f"{path}: stage {other['stage']}, {first_path} is stage {first['stage']}")
    if other["config"] != first["config"]:
        raise TrainCheckpointError(f"{path}: another model config than {first_path}'s")
    if other["model"].keys() != first["model"].keys():
        extra = sorted(set(other["model"]) ^ set(first["model"]))
        raise TrainCheckpointError(f"{path}: tensor names differ from {first_path}'s, e.g. {extra[0]}")
    for name, tensor in other["model"].items():
        if tensor.shape != first["model"][name].shape:
            raise TrainCheckpointError(f"{path}: {name} has shape {tuple(tensor.shape)}, "
                                       f"{first_path} has {tuple(first['model'][name].shape)}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="average the weights of training checkpoints of one lineage")
    p.add_argument("out", help="the averaged checkpoint (.pt) to write")
    p.add_argument("checkpoints", nargs="+", help="two or more training checkpoints of one stage and config")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per checkpoint (default: equal)")
    p.add_argument("--averages", action="store_true",
                   help="take each checkpoint's moving average (--ae-ema; stage 2's EMA) where it keeps one")
    args = p.parse_args(argv)
    try:
        soup = average_checkpoints(args.checkpoints, args.weights, averages=args.averages)
    except (TrainCheckpointError, ValueError) as err:
        raise SystemExit(f"soup: {err}") from None
    print(f"wrote {save_checkpoint(soup, args.out)} (mean of {len(args.checkpoints)}, step {soup['step']})")


if __name__ == "__main__":
    main()
