"""Stop pre-training at the first non-finite loss, before the optimiser step can corrupt the weights."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from ignite.engine import Engine
from monai.engines.utils import IterationEvents

__all__ = ["NonFiniteLossError", "NonFiniteLossGuard"]


class NonFiniteLossError(RuntimeError):
    """Raised by :class:`NonFiniteLossGuard`."""


class NonFiniteLossGuard:
    """Check the loss and its components at ``IterationEvents.LOSS_COMPLETED``; raise on NaN or inf.

    Raising before ``backward``/``step`` keeps the weights of the last good iteration, and no checkpoint of the broken
    state is written (checkpoints are saved at iteration/epoch completion). The message names the epoch, the
    iteration, the non-finite components and the newest checkpoint in ``checkpoint_dir`` (if given).

    Args:
        output_keys: the entries of ``engine.state.output`` to check.
        checkpoint_dir: where the checkpoints are written (only for the message).
    """

    def __init__(
        self,
        output_keys: tuple[str, ...] = ("loss", "structure", "category", "restoration"),
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self.output_keys = tuple(output_keys)
        self.checkpoint_dir = checkpoint_dir

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``."""
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)

    def _last_checkpoint(self) -> str:
        if self.checkpoint_dir is None:
            return "no checkpoint directory given"
        files = sorted(Path(self.checkpoint_dir).glob("*.pt"), key=lambda p: p.stat().st_mtime)
        return f"last good checkpoint: {files[-1]}" if files else f"no checkpoint yet in {self.checkpoint_dir}"

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output or {}
        bad = []
        for key in self.output_keys:
            if key not in output:
                continue
            value = output[key]
            value = float(value.detach().float().sum()) if isinstance(value, torch.Tensor) else float(value)
            if not math.isfinite(value):
                bad.append(f"{key}={value}")
        if bad:
            raise NonFiniteLossError(
                f"Non-finite loss at epoch {engine.state.epoch}, iteration {engine.state.iteration}: "
                f"{', '.join(bad)}. Training stopped before the optimiser step; {self._last_checkpoint()}. "
                "Lower the learning rate or check the input data."
            )
