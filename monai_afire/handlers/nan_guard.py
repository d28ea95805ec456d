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
    ``LOSS_COMPLETED`` the guard only stacks the values into the next row of a small (N, keys) buffer on the device
    (one operation, no allocation). The buffer is read every ``N`` iterations, at the end of every epoch and of the
    run, and before any checkpoint is written (checkpoint handlers call :func:`run_pre_save_checks`), so a
    non-finite loss is caught at most ``N - 1`` iterations late, named with the iteration where it first occurred
    and the values of that step, and no checkpoint of a state after it is ever written. In distributed runs the
    verdict is all-reduced at each check, so every process stops at the same iteration. Values that are not tensors
    (numbers) are checked at once.

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
        self._rows: torch.Tensor | None = None  # (check_every, len(keys)): the values of the steps since the check
        self._iterations: list[tuple[int, int]] = []  # (epoch, iteration) of each row
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

    def __call__(self, engine: Engine) -> None:
        """Record this iteration's values on the device (or check them at once with ``check_every=1``)."""
        output = engine.state.output or {}
        keys = tuple(k for k in self.output_keys if k in output)
        if not keys:
            return
        values = [output[k] for k in keys]
        if self.check_every == 1 or not all(isinstance(v, torch.Tensor) for v in values):
            numbers = [float(v.detach().float().sum()) if isinstance(v, torch.Tensor) else float(v) for v in values]
            self._raise_if_bad(engine, keys, numbers, engine.state.epoch, engine.state.iteration)
            return
        values = [v if v.ndim == 0 else v.sum() for v in values]
        if self._rows is None or keys != self._keys or self._rows.device != values[0].device:
            self._rows = torch.empty(self.check_every, len(keys), device=values[0].device)
            self._keys, self._iterations = keys, []
        elif len(self._iterations) == self.check_every:  # no check since check_every steps (e.g. check() not run)
            self.check(engine)
        with torch.no_grad():  # one stack into the next row: no host read, no allocation
            torch.stack(values, out=self._rows[len(self._iterations)])
        self._iterations.append((int(engine.state.epoch), int(engine.state.iteration)))

    def check(self, engine: Engine) -> None:
        """Read the values recorded since the last check (one synchronisation); raise if one was not finite."""
        if self._rows is None or not self._iterations:
            return
        rows = self._rows[: len(self._iterations)]
        bad_rows = ~torch.isfinite(rows).all(dim=1)
        flag = all_reduce_(bad_rows.any().to(torch.int32), "max")  # every process stops together
        if not bool(flag):
            self._iterations = []
            return
        bad = bad_rows.cpu().tolist()
        if not any(bad):
            raise NonFiniteLossError(
                f"Non-finite loss on another process (checked at epoch {engine.state.epoch}, iteration "
                f"{engine.state.iteration}). {self._last_checkpoint()}."
            )
        first = bad.index(True)
        epoch, iteration = self._iterations[first]
        self._raise_if_bad(engine, self._keys, rows[first].cpu().tolist(), epoch, iteration, late=True)

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
