# SPDX-License-Identifier: MIT
"""The learning rate of every training step, as a pure function of the global step.

Two optional parts on top of the run's rate, both resumable because they depend on the step only:

* a linear ramp over ``ramp_steps`` steps from ``ramp_start``, used after resuming from a
  checkpoint without optimiser state (``train/carry.py`` drops it to fit a device loan). A fresh
  Adam's first update moves every weight by about the full rate whatever its gradient (its
  moment estimates hold one sample): it knocked a trained autoencoder's L1 from about 0.041 to
  0.058 on resuming at step 9046. The ramp lets the moments fill first.
* a linear decay from the run's rate at ``decay_start`` to ``final`` at ``decay_end``, constant
  after. Why: late in training the rate sets the loss floor (session 7: L1 0.028 while a ramp was
  below 1e-4, 0.032 at the lineage's 6.4e-4), and slices that resume mid-decay continue it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RateSchedule:
    rate: float
    ramp_start: int = 0
    ramp_steps: int = 0
    decay_start: int | None = None
    decay_end: int | None = None
    final: float | None = None

    def __post_init__(self) -> None:
        decay = (self.decay_start, self.decay_end, self.final)
        if any(v is not None for v in decay) and any(v is None for v in decay):
            raise ValueError("a learning-rate decay needs its start step, end step and final rate together")
        if self.decay_start is not None and self.decay_end is not None:
            if not 0 <= self.decay_start < self.decay_end:
                raise ValueError(f"learning-rate decay from step {self.decay_start} to {self.decay_end}: "
                                 "the end must come after the start")
            if self.final is not None and self.final <= 0:
                raise ValueError(f"final learning rate {self.final} must be above 0")
        if self.ramp_steps < 0:
            raise ValueError(f"ramp of {self.ramp_steps} steps")

    @property
    def ramp_until(self) -> int | None:
        return self.ramp_start + self.ramp_steps if self.ramp_steps else None

    def at(self, step: int) -> float:
        """The rate of the step that takes the model from ``step`` to ``step + 1``."""
        rate = self.rate
        if self.decay_start is not None and self.decay_end is not None and self.final is not None \
                and step > self.decay_start:
            done = min(1.0, (step - self.decay_start) / (self.decay_end - self.decay_start))
            rate = self.rate + done * (self.final - self.rate)
        if self.ramp_steps and self.ramp_start <= step < self.ramp_start + self.ramp_steps:
            rate *= (step - self.ramp_start + 1) / self.ramp_steps
        return rate

    def apply(self, optimizers: Iterable[torch.optim.Optimizer], step: int) -> float:
        """Set every parameter group's rate for ``step``, also over the rate a restored optimiser
        state brought (so a rate given on a resume takes effect); returns it."""
        rate = self.at(step)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = rate
        return rate
