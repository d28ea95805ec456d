"""Per-iteration schedules of AFiRe: learning rate (warm-up + cosine, batch-size scaled) and weight decay (cosine).

Both are Ignite ``ParamScheduler`` objects driven by the engine's iteration counter: before each step their event
index is set from ``engine.state.iteration``, so a run resumed from a checkpoint continues the schedule exactly
where it stopped (Ignite's own counters are not part of the engine state).
"""

from __future__ import annotations

import math
from typing import Any

from ignite.engine import Engine, Events
from ignite.handlers import CosineAnnealingScheduler, ParamScheduler
from torch.optim import Optimizer

__all__ = [
    "LearningRateSchedule",
    "WarmupCosineScheduler",
    "WeightDecaySchedule",
    "cosine_value",
    "scaled_learning_rate",
    "total_iterations",
]


def scaled_learning_rate(
    base_lr: float, batch_size: int, world_size: int = 1, reference_batch_size: int = 256
) -> float:
    """Linear scaling rule: ``base_lr * batch_size * world_size / reference_batch_size``."""
    if batch_size < 1 or world_size < 1:
        raise ValueError(f"scaled_learning_rate: batch_size ({batch_size}) and world_size ({world_size}) must be >= 1.")
    return float(base_lr) * batch_size * world_size / reference_batch_size


def cosine_value(step: int, total: int, start: float, end: float) -> float:
    """Half-cosine from ``start`` (step 0) to ``end`` (step ``total``), constant after."""
    if step <= 0:
        return float(start)
    if total <= 0:
        return float(end)
    t = min(max(step, 0), total) / total
    return float(end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t)))


def total_iterations(engine: Engine) -> int:
    """``max_epochs * epoch_length`` of an engine."""
    if engine.state.epoch_length is None or engine.state.max_epochs is None:
        raise RuntimeError("schedules: the engine's epoch_length and max_epochs must be known before it starts.")
    return int(engine.state.max_epochs) * int(engine.state.epoch_length)


class WarmupCosineScheduler(ParamScheduler):
    """Linear warm-up from 0 to ``peak`` over ``warmup`` events, then a half-cosine to ``end`` at ``total`` events."""

    def __init__(
        self, optimizer: Optimizer, param_name: str, peak: float, end: float, warmup: int, total: int, **kwargs: Any
    ) -> None:
        super().__init__(optimizer, param_name, **kwargs)
        self.peak, self.end, self.warmup, self.total = float(peak), float(end), int(warmup), int(total)
        self._state_attrs += ["peak", "end", "warmup", "total"]

    def get_param(self) -> float:
        """Value at the current event index."""
        i = self.event_index
        if i < self.warmup:
            return self.peak * (i + 1) / self.warmup
        return cosine_value(i - self.warmup, self.total - self.warmup, self.peak, self.end)


class _IterationSynced:
    """Attach an Ignite ParamScheduler at ITERATION_STARTED, its event index set from the engine's iteration."""

    scheduler: ParamScheduler

    def _build(self, engine: Engine) -> ParamScheduler:
        raise NotImplementedError

    def attach(self, engine: Engine) -> None:
        """Register on ``engine`` (MONAI handler convention)."""
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_STARTED, self._step)

    def _start(self, engine: Engine) -> None:
        self.scheduler = self._build(engine)

    def _step(self, engine: Engine) -> None:
        # the engine's iteration (restored by a checkpoint) drives the schedule; Ignite's own counter is not saved
        self.scheduler.event_index = int(engine.state.iteration) - 1
        self.scheduler(engine)


class LearningRateSchedule(_IterationSynced):
    """Learning rate per iteration: linear warm-up to ``lr`` then cosine to ``min_lr`` (AFiRe's update rule).

    Args:
        optimizer: the optimiser (all parameter groups get the learning rate).
        lr: peak learning rate; use :func:`scaled_learning_rate` for ``base_lr * total_batch / 256``.
        warmup_epochs: epochs of linear warm-up (clipped to the run's length).
        min_lr: final learning rate.
    """

    def __init__(self, optimizer: Optimizer, lr: float, warmup_epochs: float = 10, min_lr: float = 1e-6) -> None:
        if lr <= 0 or min_lr < 0 or warmup_epochs < 0:
            raise ValueError(
                f"LearningRateSchedule: need lr > 0, min_lr >= 0, warmup_epochs >= 0; got {lr}, "
                f"{min_lr}, {warmup_epochs}."
            )
        self.optimizer, self.lr, self.warmup_epochs, self.min_lr = optimizer, float(lr), warmup_epochs, float(min_lr)

    def _build(self, engine: Engine) -> ParamScheduler:
        total = total_iterations(engine)
        warmup = min(int(round(self.warmup_epochs * engine.state.epoch_length)), total)
        return WarmupCosineScheduler(self.optimizer, "lr", self.lr, self.min_lr, warmup, total)


class WeightDecaySchedule(_IterationSynced):
    """Weight decay per iteration: cosine from ``start`` to ``end`` on one parameter group only.

    Args:
        optimizer: the optimiser.
        start: initial weight decay (0.04 in the paper).
        end: final weight decay (0.4).
        param_group_index: the decayed group (0 with :func:`monai_afire.optimizers.weight_decay_param_groups`);
            other groups keep their value (0 for biases and norms).
    """

    def __init__(self, optimizer: Optimizer, start: float = 0.04, end: float = 0.4, param_group_index: int = 0) -> None:
        if not 0 <= param_group_index < len(optimizer.param_groups):
            raise ValueError(
                f"WeightDecaySchedule: param_group_index {param_group_index} out of range for "
                f"{len(optimizer.param_groups)} parameter groups."
            )
        self.optimizer, self.start, self.end, self.index = optimizer, float(start), float(end), param_group_index

    def _build(self, engine: Engine) -> ParamScheduler:
        total = total_iterations(engine)
        return CosineAnnealingScheduler(
            self.optimizer, "weight_decay", self.start, self.end, cycle_size=max(total, 2), param_group_index=self.index
        )
