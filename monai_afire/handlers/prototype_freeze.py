"""Keep the student's prototype banks fixed during the first epoch(s) of pre-training."""

from __future__ import annotations

import torch.nn as nn
from ignite.engine import Engine
from monai.engines.utils import IterationEvents

from monai_afire.utils.wrappers import unwrap_model

__all__ = ["FreezePrototypes"]


class FreezePrototypes:
    """Drop the gradients of ``model.prototype_parameters()`` while ``engine.state.epoch <= epochs``.

    Runs at ``IterationEvents.BACKWARD_COMPLETED`` (before clipping and the optimiser step); a parameter whose
    gradient is None is skipped by the optimiser, so the banks (and their AdamW moments) stay unchanged.

    Args:
        model: the AFiRe model (wrappers are unwrapped).
        epochs: number of leading epochs with frozen prototypes (1 in the paper).
    """

    def __init__(self, model: nn.Module, epochs: int = 1) -> None:
        model = unwrap_model(model)
        if not hasattr(model, "prototype_parameters"):
            raise ValueError(f"FreezePrototypes: {type(model).__name__} has no prototype_parameters().")
        self.parameters = list(model.prototype_parameters())
        self.epochs = int(epochs)

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``."""
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch <= self.epochs:
            for p in self.parameters:
                p.grad = None
