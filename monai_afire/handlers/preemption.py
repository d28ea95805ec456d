"""Preemption-safe training: on SIGTERM save a checkpoint at the next iteration boundary and stop, so a scheduler can
requeue the job and the run continues from exactly where it stopped."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from monai_afire.utils.distributed import distributed_ready

from .checkpoint import PretrainCheckpoint

__all__ = [
    "PREEMPTED_EXIT_CODE",
    "PreemptionHandler",
    "TrainingPreempted",
    "exit_if_preempted",
    "preemption_handlers",
]

#: exit status of a preempted run: ``EX_TEMPFAIL`` of sysexits.h, "a temporary failure; retry later"
PREEMPTED_EXIT_CODE = 75
_HANDLERS = "afire_preemption_handlers"


class TrainingPreempted(SystemExit):
    """Raised by :func:`exit_if_preempted` (and so by ``AFiRePretrainer.run``) after a preemption checkpoint.

    A ``SystemExit``: uncaught, the process ends quietly with ``code`` (non-zero, so Slurm's requeue logic,
    ``torchrun --max-restarts`` or a job script can tell it apart from a finished run); ``except Exception`` does not
    swallow it.
    """

    def __init__(self, code: int, message: str, checkpoint: Path | None = None) -> None:
        super().__init__(code)
        self.message = message
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        return self.message


def preemption_handlers(engine: Engine) -> list[PreemptionHandler]:
    """The :class:`PreemptionHandler` objects attached to ``engine`` (created empty)."""
    handlers = getattr(engine, _HANDLERS, None)
    if handlers is None:
        handlers = []
        setattr(engine, _HANDLERS, handlers)
    return handlers


def exit_if_preempted(engine: Engine) -> None:
    """Raise :class:`TrainingPreempted` when a :class:`PreemptionHandler` stopped ``engine``'s last run."""
    preempted = getattr(engine.state, "preempted", None)
    if preempted:
        raise TrainingPreempted(preempted["exit_code"], preempted["message"], preempted.get("checkpoint"))


def _signal_number(sig: str | int | signal.Signals) -> signal.Signals:
    if isinstance(sig, str):
        name = sig.upper() if sig.upper().startswith("SIG") else f"SIG{sig.upper()}"
        if not hasattr(signal, name):
            raise ValueError(f"PreemptionHandler: unknown signal {sig!r} (e.g. 'SIGTERM', 'SIGUSR1').")
        return signal.Signals(getattr(signal, name))
    return signal.Signals(int(sig))


class PreemptionHandler:
    """On a stop signal (SIGTERM), save a checkpoint at the next iteration boundary and stop with a non-zero code.

    Cluster schedulers end jobs with SIGTERM (Slurm at the time limit with ``--signal=TERM@60``, or on preemption)
    and SIGKILL a little later. While the engine runs, this handler turns the signals in ``signals`` into a request;
    after the next iteration (after the teacher EMA and every other handler of that iteration) it

    1. writes a checkpoint with ``checkpoint.save_now`` (which first runs the engine's pre-save checks, e.g. the NaN
       guard),
    2. waits for every process of a distributed run (so rank 0's write is complete before any process exits),
    3. stops the engine without firing ``COMPLETED`` (so nothing takes the interrupted run for a finished one) and
       records ``engine.state.preempted``; :class:`monai_afire.engines.AFiRePretrainer` then raises
       :class:`TrainingPreempted`, a ``SystemExit`` with ``exit_code`` (75, ``EX_TEMPFAIL``, by default).

    Started again (requeued), the run resumes from that checkpoint part-way through the epoch (see
    :class:`PretrainCheckpoint`). A second signal while a request is pending acts as if this handler were not there
    (the default action of SIGTERM ends the process at once).

    In a single process the request is acted on at the very next iteration boundary, with no cost per iteration. In a
    distributed run the processes must stop at the same iteration, so the request is all-reduced every
    ``check_every`` iterations (one small collective and one host-device synchronisation each time; use the logging
    interval): the stop then comes within ``check_every`` iterations.

    Signal handlers can only be installed from the main thread; elsewhere the handler warns and does nothing.

    Args:
        checkpoint: the run's :class:`PretrainCheckpoint`.
        signals: the signals that request a stop (names or numbers), e.g. ``("SIGTERM", "SIGUSR1")``.
        check_every: iterations between the all-reduced checks of a distributed run (>= 1).
        exit_code: the exit status of :class:`TrainingPreempted` (non-zero).
    """

    def __init__(
        self,
        checkpoint: PretrainCheckpoint,
        signals: Sequence[str | int] = ("SIGTERM",),
        check_every: int = 1,
        exit_code: int = PREEMPTED_EXIT_CODE,
    ) -> None:
        if not isinstance(checkpoint, PretrainCheckpoint):
            raise ValueError(f"PreemptionHandler: checkpoint must be a PretrainCheckpoint, got {type(checkpoint)}.")
        if int(check_every) < 1:
            raise ValueError(f"PreemptionHandler: check_every must be >= 1, got {check_every}.")
        if int(exit_code) == 0:
            raise ValueError("PreemptionHandler: exit_code must be non-zero (a scheduler tells a stop from an end).")
        self.checkpoint = checkpoint
        self.signals = tuple(_signal_number(s) for s in signals)
        self.check_every = int(check_every)
        self.exit_code = int(exit_code)
        self.requested: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``: signal handlers from STARTED until the run ends, the check after every iteration."""
        engine.add_event_handler(Events.STARTED, self.install)
        engine.add_event_handler(Events.STARTED, self._register_check)
        engine.add_event_handler(Events.COMPLETED, self.restore)
        engine.add_event_handler(Events.TERMINATE, self.restore)
        preemption_handlers(engine).append(self)

    def _register_check(self, engine: Engine) -> None:
        # registered when the run starts, so it runs after every other ITERATION_COMPLETED handler (EMA, logs)
        if not engine.has_event_handler(self._maybe_stop, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._maybe_stop)

    def install(self, engine: Engine | None = None) -> None:
        """Install the signal handlers (main thread only); the previous ones are kept for :meth:`restore`."""
        self.requested = None
        if engine is not None:
            engine.state.preempted = None
        if threading.current_thread() is not threading.main_thread():
            if engine is not None:
                engine.logger.warning("PreemptionHandler: not in the main thread, stop signals are not handled.")
            return
        for sig in self.signals:
            if sig not in self._previous:
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore(self, engine: Engine | None = None) -> None:
        """Put back the signal handlers that were there before :meth:`install`."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        sig = signal.Signals(signum)
        if self.requested is None:
            self.requested = sig
            return
        previous = self._previous.get(sig, signal.SIG_DFL)  # a second signal: behave as without this handler
        self.restore()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL or previous is None:
            signal.raise_signal(sig)

    def _agreed(self, engine: Engine) -> bool:
        if not distributed_ready():
            return self.requested is not None
        if engine.state.iteration % self.check_every:
            return False
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([0 if self.requested is None else 1], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _maybe_stop(self, engine: Engine) -> None:
        if not self._agreed(engine):
            return
        name = self.requested.name if self.requested is not None else "a stop signal on another process"
        path = self.checkpoint.save_now(engine) or self.checkpoint.last_saved
        if distributed_ready():
            dist.barrier()
        message = (
            f"Received {name}: saved {path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}; "
            f"stopping with exit code {self.exit_code} so that the job can be requeued (it resumes from there)."
        )
        engine.logger.warning(message)
        engine.state.preempted = {"exit_code": self.exit_code, "message": message, "checkpoint": path}
        engine.terminate(skip_completed=True)
