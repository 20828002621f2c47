"""The released configs' learning-rate schedule: mmcv's ``PolyLrUpdaterHook`` with linear warmup, per step.

At step ``i`` of ``T`` (0-based, the step the optimiser is about to take) a group whose initial learning
rate is ``base`` gets::

    regular = (base - min_lr) * (1 - i / T) ** power + min_lr
    lr      = regular * (1 - (1 - i / W) * (1 - start_factor))   while i < W (warmup steps)
    lr      = regular                                            afterwards

Unlike transformers' ``polynomial`` schedule, the decay runs over all ``T`` steps (warmup included) and
the warmup multiplies the decayed rate instead of ramping from zero; ``min_lr`` is an absolute floor
shared by all groups, so a group at 10x the base rate decays to the same floor. Each group is scheduled
from its own initial rate, which keeps the parameter-wise multipliers throughout training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class PolySchedule:
    """Poly decay to ``min_lr`` over ``total_steps`` with an optional linear warmup (mmcv semantics)."""

    total_steps: int
    power: float = 0.9
    min_lr: float = 0.0
    warmup_steps: int = 0
    warmup_start_factor: float = 1e-6

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"The schedule needs at least one step; got total_steps={self.total_steps}.")
        if not 0.0 <= self.warmup_start_factor <= 1.0:
            raise ValueError(f"warmup_start_factor must lie in [0, 1]; got {self.warmup_start_factor}.")

    def learning_rate(self, base_lr: float, step: int) -> float:
        """The learning rate of a group starting at ``base_lr`` for optimiser step ``step``."""
        progress = min(step, self.total_steps) / self.total_steps
        regular = (base_lr - self.min_lr) * (1.0 - progress) ** self.power + self.min_lr
        if step < self.warmup_steps:
            regular *= 1.0 - (1.0 - step / self.warmup_steps) * (1.0 - self.warmup_start_factor)
        return regular

    def scheduler(self, optimizer: torch.optim.Optimizer) -> LambdaLR:
        """A ``LambdaLR`` applying the schedule to every group of ``optimizer`` from its initial rate."""
        factors = [partial(_factor, self, group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
        return LambdaLR(optimizer, factors)


def _factor(schedule: PolySchedule, base_lr: float, step: int) -> float:
    """``LambdaLR`` multiplies the initial rate by this; a group at rate 0 stays at 0."""
    return schedule.learning_rate(base_lr, step) / base_lr if base_lr else 0.0
