"""Stop pre-training at a non-finite loss, before anything of the broken state is saved."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents

from monai_afire.utils.distributed import all_reduce_

__all__ = ["NonFiniteLossError", "NonFiniteLossGuard", "pre_save_checks", "run_pre_save_checks"]

_PRE_SAVE = "afire_pre_save_checks"


class NonFiniteLossError(RuntimeError):
    """Raised by :class:`NonFiniteLossGuard`."""


def pre_save_checks(engine: Engine) -> list[Callable[[Engine], None]]:
    """The checks registered on ``engine`` that must pass before any state of it is written (created empty)."""
    checks = getattr(engine, _PRE_SAVE, None)
    if checks is None:
        checks = []
        setattr(engine, _PRE_SAVE, checks)
    return checks


def run_pre_save_checks(engine: Engine) -> None:
    """Run the checks of :func:`pre_save_checks` (a checkpoint handler calls this before it writes)."""
    for check in pre_save_checks(engine):
        check(engine)


class NonFiniteLossGuard:
    """Raise :class:`NonFiniteLossError` when the loss or one of its components is NaN or infinite.

    With ``check_every=1`` every iteration is checked at ``IterationEvents.LOSS_COMPLETED``, before ``backward`` and
    the optimiser step, so the weights of the last good iteration are kept; reading the loss on the host costs one
    host-device synchronisation per step.

    With ``check_every=N > 1`` (what long GPU runs want) nothing is read on the host in between: at every
    ``LOSS_COMPLETED`` the guard only adds, on the device, a flag of "some value not finite" and the values and
    iteration of the first such step. The flag is read every ``N`` iterations, at the end of every epoch and at the
    end of the run, and before any checkpoint is written (checkpoint handlers call :func:`run_pre_save_checks`), so
    a non-finite loss is caught at most ``N - 1`` iterations late, named with the iteration where it first occurred,
    and no checkpoint of a state after it is ever written. In distributed runs the flag is all-reduced at each
    check, so every process stops at the same iteration.

    The message names the epoch, the iteration, the non-finite components and the newest checkpoint in
    ``checkpoint_dir`` (if given).

    Args:
        output_keys: the entries of ``engine.state.output`` to check (tensors or numbers).
        checkpoint_dir: where the checkpoints are written (only for the message).
        check_every: iterations between host-side checks (>= 1).
    """

    def __init__(
        self,
        output_keys: tuple[str, ...] = ("loss", "structure", "category", "restoration"),
        checkpoint_dir: str | Path | None = None,
        check_every: int = 1,
    ) -> None:
        if int(check_every) < 1:
            raise ValueError(f"NonFiniteLossGuard: check_every must be >= 1, got {check_every}.")
        self.output_keys = tuple(output_keys)
        self.checkpoint_dir = checkpoint_dir
        self.check_every = int(check_every)
        self._reset()

    def _reset(self) -> None:
        self._bad: torch.Tensor | None = None  # bool, any non-finite value since the last check
        self._first_iteration: torch.Tensor | None = None  # int64, iteration of the first one (-1: none)
        self._first_epoch: torch.Tensor | None = None
        self._first_values: torch.Tensor | None = None  # the checked values at that iteration
        self._keys: tuple[str, ...] = ()

    def attach(self, engine: Engine) -> None:
        """Register on ``engine`` (and as a pre-save check of its checkpoint handlers)."""
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)
        if self.check_every > 1:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.check_every), self.check)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.check)
            engine.add_event_handler(Events.COMPLETED, self.check)
        engine.add_event_handler(Events.STARTED, lambda _: self._reset())
        pre_save_checks(engine).append(self.check)

    def _last_checkpoint(self) -> str:
        if self.checkpoint_dir is None:
            return "no checkpoint directory given"
        files = sorted(Path(self.checkpoint_dir).glob("*.pt"), key=lambda p: p.stat().st_mtime)
        return f"last good checkpoint: {files[-1]}" if files else f"no checkpoint yet in {self.checkpoint_dir}"

    def _values(self, engine: Engine) -> tuple[tuple[str, ...], torch.Tensor | None]:
        output = engine.state.output or {}
        keys, values = [], []
        for key in self.output_keys:
            if key not in output:
                continue
            value = output[key]
            keys.append(key)
            if isinstance(value, torch.Tensor):
                values.append(value.detach().float().sum())
            else:
                values.append(torch.tensor(float(value)))
        if not values:
            return (), None
        device = next((v.device for v in values if v.device.type != "cpu"), values[0].device)
        return tuple(keys), torch.stack([v.to(device, non_blocking=True) for v in values])

    def __call__(self, engine: Engine) -> None:
        """Add this iteration's values to the device-side record (and check at once with ``check_every=1``)."""
        keys, values = self._values(engine)
        if values is None:
            return
        if self.check_every == 1:
            self._raise_if_bad(engine, keys, values.cpu().tolist(), engine.state.epoch, engine.state.iteration)
            return
        bad_now = ~torch.isfinite(values).all()
        if self._bad is None or keys != self._keys:
            self._keys = keys
            self._bad = bad_now.clone()
            self._first_iteration = torch.where(bad_now, engine.state.iteration, -1)
            self._first_epoch = torch.where(bad_now, engine.state.epoch, -1)
            self._first_values = values.clone()
            return
        new = bad_now & (self._first_iteration < 0)
        self._first_iteration = torch.where(new, engine.state.iteration, self._first_iteration)
        self._first_epoch = torch.where(new, engine.state.epoch, self._first_epoch)
        self._first_values = torch.where(new, values, self._first_values)
        self._bad |= bad_now

    def check(self, engine: Engine) -> None:
        """Read the device-side record (one synchronisation); raise if a value was not finite since the last check."""
        if self._bad is None:
            return
        flag = all_reduce_(self._bad.to(torch.int32), "max")  # every process stops together
        if not bool(flag):
            return
        if not bool(self._bad):
            raise NonFiniteLossError(
                f"Non-finite loss on another process (checked at epoch {engine.state.epoch}, iteration "
                f"{engine.state.iteration}). {self._last_checkpoint()}."
            )
        iteration, epoch = int(self._first_iteration), int(self._first_epoch)  # type: ignore[arg-type]
        self._raise_if_bad(engine, self._keys, self._first_values.cpu().tolist(), epoch, iteration, late=True)

    def _raise_if_bad(
        self, engine: Engine, keys: tuple[str, ...], values: list[float], epoch: int, iteration: int, late: bool = False
    ) -> None:
        bad = [f"{k}={v}" for k, v in zip(keys, values) if not math.isfinite(v)]
        if not bad:
            return
        when = (
            f"Training stopped at iteration {engine.state.iteration} (checked every {self.check_every} iterations): "
            "the optimiser stepped with it, so the weights in memory are not usable, and no checkpoint was written "
            "after it"
            if late
            else "Training stopped before the optimiser step"
        )
        raise NonFiniteLossError(
            f"Non-finite loss at epoch {epoch}, iteration {iteration}: {', '.join(bad)}. {when}; "
            f"{self._last_checkpoint()}. Lower the learning rate or check the input data."
        )
