"""Teacher EMA handler: :meth:`AFiRe.update_teacher` after every optimiser step, with AFiRe's cosine momentum."""

from __future__ import annotations

import torch.nn as nn
from ignite.engine import Engine, Events

from monai_afire.utils.wrappers import unwrap_model

from .schedules import cosine_value, total_iterations

__all__ = ["CosineEMAMomentum", "TeacherEMA"]


class CosineEMAMomentum:
    """Cosine schedule of the teacher momentum, from ``start`` at event 1 to ``end`` at event ``total``.

    Called with an event index it gives Ignite's EMA momentum, the student's weight ``1 - teacher momentum`` (for
    :class:`ignite.handlers.EMAHandler`); :meth:`teacher` gives the teacher momentum itself.
    """

    def __init__(self, total: int, start: float = 0.996, end: float = 1.0) -> None:
        self.total, self.start, self.end = int(total), float(start), float(end)

    def teacher(self, event_index: int) -> float:
        """Teacher momentum at event ``event_index`` (1-based; constant after ``total``)."""
        return cosine_value(event_index - 1, self.total - 1, self.start, self.end)

    def __call__(self, event_index: int) -> float:
        return 1.0 - self.teacher(event_index)


class TeacherEMA:
    """Exponential moving average of the student into the teacher after every optimiser step.

    At each ``ITERATION_COMPLETED`` it calls ``model.update_teacher(m)`` (the one EMA step of the project, see
    :meth:`monai_afire.networks.AFiRe.update_teacher`) with the teacher momentum ``m`` of :class:`CosineEMAMomentum`
    at the engine's iteration, a cosine from ``momentum`` to ``final_momentum`` over the run. The schedule follows
    ``engine.state.iteration``, so a run resumed from a checkpoint continues it exactly. ``engine.state.ema_momentum``
    holds the student's weight ``1 - m`` of the last step (Ignite's EMA convention).

    Args:
        model: the AFiRe model (a DDP/compile wrapper is unwrapped).
        momentum: teacher momentum at the first iteration (0.996).
        final_momentum: teacher momentum at the last iteration (1.0).
    """

    def __init__(self, model: nn.Module, momentum: float = 0.996, final_momentum: float = 1.0) -> None:
        if not 0.0 < momentum <= final_momentum <= 1.0:
            raise ValueError(f"TeacherEMA: need 0 < momentum <= final_momentum <= 1, got {momentum}, {final_momentum}.")
        model = unwrap_model(model)
        if not callable(getattr(model, "update_teacher", None)):
            raise ValueError(
                f"TeacherEMA: expected an AFiRe model with student, teacher and update_teacher(), "
                f"got {type(model).__name__}."
            )
        self.model = model
        self.momentum, self.final_momentum = float(momentum), float(final_momentum)

    def attach(self, engine: Engine) -> None:
        """Register on ``engine`` at ``ITERATION_COMPLETED``."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        schedule = CosineEMAMomentum(total_iterations(engine), self.momentum, self.final_momentum)
        iteration = int(engine.state.iteration)
        engine.state.ema_momentum = schedule(iteration)
        self.model.update_teacher(schedule.teacher(iteration))
