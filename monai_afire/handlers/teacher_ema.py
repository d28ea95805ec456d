"""Teacher EMA handler: Ignite's EMAHandler updating ``model.teacher``, with AFiRe's cosine momentum schedule."""

from __future__ import annotations

import torch.nn as nn
from ignite.engine import Engine, Events
from ignite.handlers import EMAHandler, LambdaStateScheduler

from monai_afire.engines.pretrainer import unwrap_model

from .schedules import cosine_value, total_iterations

__all__ = ["CosineEMAMomentum", "TeacherEMA"]


class CosineEMAMomentum:
    """Ignite's EMA momentum (1 - teacher momentum) for event ``i``: teacher momentum cosine ``start`` -> ``end``."""

    def __init__(self, total: int, start: float = 0.996, end: float = 1.0) -> None:
        self.total, self.start, self.end = int(total), float(start), float(end)

    def __call__(self, event_index: int) -> float:
        return 1.0 - cosine_value(event_index - 1, self.total - 1, self.start, self.end)


class TeacherEMA:
    """Exponential moving average of the student into the teacher after every optimiser step.

    Uses :class:`ignite.handlers.EMAHandler` on ``model.student`` with ``ema_model`` pointed at ``model.teacher``;
    Ignite's momentum is 1 minus AFiRe's, scheduled per iteration by a
    :class:`ignite.handlers.LambdaStateScheduler` (teacher momentum cosine from ``momentum`` to ``final_momentum``).
    The current Ignite momentum is ``engine.state.ema_momentum``.

    Args:
        model: the AFiRe model (a DDP/compile wrapper is unwrapped).
        momentum: teacher momentum at the first iteration (0.996).
        final_momentum: teacher momentum at the last iteration (1.0).
    """

    def __init__(self, model: nn.Module, momentum: float = 0.996, final_momentum: float = 1.0) -> None:
        if not 0.0 < momentum <= final_momentum <= 1.0:
            raise ValueError(f"TeacherEMA: need 0 < momentum <= final_momentum <= 1, got {momentum}, {final_momentum}.")
        model = unwrap_model(model)
        if not hasattr(model, "student") or not hasattr(model, "teacher"):
            raise ValueError(
                f"TeacherEMA: expected an AFiRe model with student and teacher, got {type(model).__name__}."
            )
        self.momentum, self.final_momentum = float(momentum), float(final_momentum)
        self.ema = EMAHandler(model.student, momentum=1.0 - self.momentum if momentum < 1 else 1e-12)
        self.ema.ema_model = model.teacher  # update the model's own teacher, not a private copy
        self.scheduler: LambdaStateScheduler | None = None

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``: the momentum scheduler first, then the EMA update, both at ITERATION_COMPLETED."""
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._schedule)
        self.ema.attach(engine, name="ema_momentum", warn_if_exists=False)

    def _start(self, engine: Engine) -> None:
        lam = CosineEMAMomentum(total_iterations(engine), self.momentum, self.final_momentum)
        self.scheduler = LambdaStateScheduler(lam, param_name="ema_momentum", create_new=True)

    def _schedule(self, engine: Engine) -> None:
        # driven by the engine's iteration (restored from checkpoints); the scheduler increments before evaluating
        self.scheduler.event_index = int(engine.state.iteration) - 1  # type: ignore[union-attr]
        self.scheduler(engine)  # type: ignore[misc]
