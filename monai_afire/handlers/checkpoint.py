"""Atomic checkpoints of a pre-training run, every N iterations and at epoch ends, and resume from the newest one."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

from monai_afire.networks.pretrained import ENCODER_CONFIG_KEY, EncoderConfigState
from monai_afire.utils.distributed import get_rank
from monai_afire.utils.wrappers import unwrap_model

from .nan_guard import run_pre_save_checks
from .seeding import RNGStates

__all__ = ["PretrainCheckpoint", "latest_checkpoint"]

PREFIX = "afire"


_TEMPORARY = re.compile(r"tmp[A-Za-z0-9_]{8}")  # a temporary file of an atomic write (tempfile.NamedTemporaryFile)


def _checkpoints(directory: str | Path, prefix: str = PREFIX) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of the checkpoints in ``directory``, oldest first."""
    found = []
    for path in Path(directory).glob(f"{prefix}_checkpoint_*.pt"):
        step = path.stem.rsplit("_", 1)[-1]
        if step.isdigit():
            found.append((int(step), path))
    return sorted(found)


def latest_checkpoint(directory: str | Path, prefix: str = PREFIX) -> Path | None:
    """The checkpoint of ``directory`` with the highest iteration (``{prefix}_checkpoint_<iteration>.pt``)."""
    found = _checkpoints(directory, prefix)
    return found[-1][1] if found else None


class PretrainCheckpoint:
    """Save the whole training state every ``save_every_iterations`` iterations and every ``save_interval`` epochs;
    resume from the newest checkpoint at start, also part-way through an epoch.

    A checkpoint (``{checkpoint_dir}/afire_checkpoint_<iteration>.pt``) holds ``model`` (the AFiRe state dict:
    student, teacher (the EMA), decoder), ``encoder_config`` (the encoder's settings, so the file describes itself;
    checked on resume), ``optimizer``, ``loss`` (the prototype state), ``trainer`` (Ignite's engine
    state: iteration, epoch length, and the state entries handlers register, e.g. the partial epoch sums of
    :class:`LossHistory`), ``rng`` (Python, NumPy, torch and CUDA RNG states) and ``scaler`` (fp16 AMP). Only rank 0
    writes, atomically (a temporary file of the folder renamed into place), so a kill during the write leaves the
    previous checkpoints intact. The write uses no collective of its own (Ignite's ``DiskSaver`` would set up
    ``ignite.distributed`` at the first save, a new process group on every rank, which fails in a group restarted by
    ``torchrun --max-restarts`` that had created one before).
    The newest ``n_saved`` checkpoints of the folder are kept, also across restarts.

    Saves happen after every other handler of the iteration or epoch (they are registered when the run starts), so a
    checkpoint holds the teacher after its EMA step and the loss history with this iteration, and only after the
    pre-save checks of the engine passed (:class:`NonFiniteLossGuard`): no state after a non-finite loss is saved.

    At ``Events.STARTED`` the newest checkpoint (if ``resume``) is loaded with ``weights_only=True`` and
    ``map_location``. From an epoch-end checkpoint training continues with the next epoch; from a mid-epoch one
    Ignite continues the epoch at the next iteration, and :class:`monai_afire.engines.AFiRePretrainer` starts its
    :class:`~monai_afire.data.ResumableSampler` at the next batch, so the run goes on exactly as if it had not
    stopped (see :class:`~monai_afire.data.SeededDataset` for lesions that do not depend on the loader's workers).

    Args:
        checkpoint_dir: folder of the checkpoints (created).
        model: the AFiRe model (wrappers are unwrapped).
        optimizer: the optimiser.
        loss_function: the AFiReLoss (its prototype state is saved).
        save_interval: save every this many epochs (the last epoch is always saved).
        n_saved: checkpoints kept (the newest by iteration; None keeps all).
        resume: load the newest checkpoint at start.
        map_location: device the checkpoint tensors are loaded to; ``"cpu"`` is always safe.
        save_every_iterations: also save every this many iterations (None or 0: only at epoch ends).
        stop_signals: signals (e.g. ``("SIGTERM",)``) on which to save at the next iteration boundary and stop the
            run with a non-zero exit code: a :class:`~monai_afire.handlers.PreemptionHandler` of this checkpoint is
            attached with them. None or empty: no signal handling.
        signal_check_every: the PreemptionHandler's ``check_every`` (distributed runs agree on a stop every this
            many iterations).
        exit_code: the PreemptionHandler's ``exit_code``.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_function: nn.Module | None = None,
        save_interval: int = 1,
        n_saved: int | None = 2,
        resume: bool = True,
        map_location: Any = "cpu",
        save_every_iterations: int | None = None,
        stop_signals: Sequence[str | int] | None = None,
        signal_check_every: int = 1,
        exit_code: int | None = None,
    ) -> None:
        if int(save_interval) < 1:
            raise ValueError(f"PretrainCheckpoint: save_interval must be >= 1, got {save_interval}.")
        if n_saved is not None and int(n_saved) < 1:
            raise ValueError(f"PretrainCheckpoint: n_saved must be >= 1 or None, got {n_saved}.")
        if save_every_iterations is not None and int(save_every_iterations) < 0:
            raise ValueError(f"PretrainCheckpoint: save_every_iterations must be >= 0, got {save_every_iterations}.")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.objects: dict[str, Any] = {"model": unwrap_model(model), "optimizer": optimizer, "rng": RNGStates()}
        self.objects[ENCODER_CONFIG_KEY] = EncoderConfigState(model)  # the encoder's settings, checked on resume
        if loss_function is not None:
            self.objects["loss"] = loss_function
        self.save_interval, self.resume, self.map_location = int(save_interval), resume, map_location
        self.n_saved = None if n_saved is None else int(n_saved)
        self.save_every_iterations = int(save_every_iterations or 0)
        self.preemption: Any = None
        if stop_signals:
            from .preemption import PREEMPTED_EXIT_CODE, PreemptionHandler

            code = PREEMPTED_EXIT_CODE if exit_code is None else exit_code
            self.preemption = PreemptionHandler(self, stop_signals, signal_check_every, code)
        self.resumed_from: Path | None = None
        self.last_saved: Path | None = None
        self._saved_iteration: int | None = None

    def _to_save(self, engine: Engine) -> dict[str, Any]:
        objects = dict(self.objects, trainer=engine)
        scaler = getattr(engine, "scaler", None)
        if scaler is not None:
            objects["scaler"] = scaler
        return objects

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``: resume at STARTED; the savers are added then, after every other handler."""
        engine.add_event_handler(Events.STARTED, self.load_latest)
        engine.add_event_handler(Events.STARTED, self._register_savers)
        if self.preemption is not None:
            self.preemption.attach(engine)

    def _register_savers(self, engine: Engine) -> None:
        if not engine.has_event_handler(self._save_epoch, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._save_epoch)
        if self.save_every_iterations and not engine.has_event_handler(self._save_iteration):
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_every_iterations), self._save_iteration)

    def load_latest(self, engine: Engine) -> None:
        """Load the newest checkpoint of ``checkpoint_dir`` into the objects and the engine (if ``resume``)."""
        if get_rank() == 0 and self.checkpoint_dir.is_dir():
            for stale in self.checkpoint_dir.iterdir():  # left by a kill during an atomic write
                if _TEMPORARY.fullmatch(stale.name) and stale.is_file():
                    stale.unlink(missing_ok=True)
        path = latest_checkpoint(self.checkpoint_dir) if self.resume else None
        if path is None:
            return
        try:
            state = torch.load(path, map_location=self.map_location, weights_only=True)
        except Exception as e:
            raise RuntimeError(f"PretrainCheckpoint: cannot read checkpoint {path}: {e}") from e
        max_epochs, epoch_length = engine.state.max_epochs, engine.state.epoch_length
        trainer_state = dict(state.get("trainer", {}))
        for key in engine.state_dict_user_keys:  # state entries added after the checkpoint was written
            trainer_state.setdefault(key, None)
        saved_length, iteration = trainer_state.get("epoch_length"), int(trainer_state.get("iteration", 0))
        if epoch_length and saved_length and saved_length != epoch_length and iteration % saved_length:
            raise ValueError(
                f"PretrainCheckpoint: {path} was written part-way through an epoch of {saved_length} iterations, but "
                f"this run's epochs have {epoch_length}: resume with the same data, batch size and number of "
                "processes, or from an epoch-end checkpoint."
            )
        state = dict(state, trainer=trainer_state)
        to_load = {k: v for k, v in self._to_save(engine).items() if k in state}
        try:
            Checkpoint.load_objects(to_load=to_load, checkpoint=state)
        except RuntimeError as e:
            raise ValueError(
                f"PretrainCheckpoint: {path} does not match this model/optimiser: it was written by another run "
                f"(another architecture or recipe?) and this run would resume from it: {e}\nResume it with its "
                "own settings, or start this run in another folder (--bundle_root or --ckpt_dir)."
            ) from e
        engine.state.max_epochs = max_epochs
        self.resumed_from = path
        self._saved_iteration = engine.state.iteration
        where = (
            ""
            if not engine.state.epoch_length
            else (
                f" (epoch {engine.state.epoch + 1}, after {engine.state.iteration % engine.state.epoch_length} of its "
                f"{engine.state.epoch_length} iterations)"
                if engine.state.iteration % engine.state.epoch_length
                else ""
            )
        )
        engine.logger.info(
            f"Resumed from {path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}{where}."
        )
        if engine.state.epoch >= max_epochs:
            engine.terminate()

    def _save_epoch(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        if epoch % self.save_interval == 0 or epoch >= engine.state.max_epochs:
            self.save_now(engine)

    def _save_iteration(self, engine: Engine) -> None:
        self.save_now(engine)

    def save(self, engine: Engine) -> None:
        """Write a checkpoint when the epoch is a multiple of ``save_interval`` or the last one (epoch-end saver)."""
        self._save_epoch(engine)

    def save_now(self, engine: Engine) -> Path | None:
        """Write a checkpoint of the current iteration (once per iteration) after the engine's pre-save checks.

        Call it on every process of a distributed run (the checks may all-reduce; rank 0 writes). Returns the file
        (also on the other ranks, where nothing is written) or None when this iteration was already saved.
        """
        iteration = int(engine.state.iteration)
        if iteration == self._saved_iteration:
            return None
        run_pre_save_checks(engine)
        path = self.checkpoint_dir / f"{PREFIX}_checkpoint_{iteration}.pt"
        if get_rank() == 0:
            state = {name: obj.state_dict() for name, obj in self._to_save(engine).items()}
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            # atomic: written to a temporary file of the folder, then renamed into place; a kill during the write
            # leaves the earlier checkpoints intact (the temporary file is removed at the next start)
            tmp = tempfile.NamedTemporaryFile(delete=False, dir=self.checkpoint_dir)
            try:
                with tmp:
                    torch.save(state, tmp.file)
                os.replace(tmp.name, path)
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)
                raise
        self._saved_iteration = iteration
        self.last_saved = path
        if get_rank() == 0 and self.n_saved is not None:
            for _, old in _checkpoints(self.checkpoint_dir)[: -self.n_saved]:
                old.unlink(missing_ok=True)
        return self.last_saved
