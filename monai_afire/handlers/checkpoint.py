"""Atomic checkpoints of a pre-training run and resume from the newest one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from monai_afire.networks.pretrained import ENCODER_CONFIG_KEY, EncoderConfigState
from monai_afire.utils.wrappers import unwrap_model

from .seeding import RNGStates

__all__ = ["PretrainCheckpoint", "latest_checkpoint"]

PREFIX = "afire"


def latest_checkpoint(directory: str | Path, prefix: str = PREFIX) -> Path | None:
    """The checkpoint of ``directory`` with the highest iteration (``{prefix}_checkpoint_<iteration>.pt``)."""
    found = []
    for path in Path(directory).glob(f"{prefix}_checkpoint_*.pt"):
        step = path.stem.rsplit("_", 1)[-1]
        if step.isdigit():
            found.append((int(step), path))
    return max(found)[1] if found else None


class PretrainCheckpoint:
    """Save the whole training state at the end of every ``save_interval`` epochs; resume from the newest at start.

    A checkpoint (``{checkpoint_dir}/afire_checkpoint_<iteration>.pt``) holds ``model`` (the AFiRe state dict:
    student, teacher, decoder), ``encoder_config`` (the encoder's settings, so the file describes itself; checked
    on resume), ``optimizer``, ``loss`` (the prototype state), ``trainer`` (epoch, iteration),
    ``rng`` (Python, NumPy, torch RNG states) and ``scaler`` (fp16 AMP). It is written by Ignite's
    :class:`~ignite.handlers.Checkpoint` through :class:`~ignite.handlers.DiskSaver` with ``atomic=True`` (a
    temporary file renamed into place), so a kill during the write leaves the previous checkpoints intact. At
    ``Events.STARTED`` the newest checkpoint (if ``resume``) is loaded with ``weights_only=True`` and
    ``map_location``; training continues with the next epoch. Only rank 0 writes in distributed runs.

    Args:
        checkpoint_dir: folder of the checkpoints (created).
        model: the AFiRe model (wrappers are unwrapped).
        optimizer: the optimiser.
        loss_function: the AFiReLoss (its prototype state is saved).
        save_interval: save every this many epochs (the last epoch is always saved).
        n_saved: checkpoints kept.
        resume: load the newest checkpoint at start.
        map_location: device the checkpoint tensors are loaded to; ``"cpu"`` is always safe.
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
    ) -> None:
        if int(save_interval) < 1:
            raise ValueError(f"PretrainCheckpoint: save_interval must be >= 1, got {save_interval}.")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.objects: dict[str, Any] = {"model": unwrap_model(model), "optimizer": optimizer, "rng": RNGStates()}
        self.objects[ENCODER_CONFIG_KEY] = EncoderConfigState(model)  # the encoder's settings, checked on resume
        if loss_function is not None:
            self.objects["loss"] = loss_function
        self.save_interval, self.n_saved, self.resume, self.map_location = (
            int(save_interval),
            n_saved,
            resume,
            map_location,
        )
        self.resumed_from: Path | None = None
        self._checkpoint: Checkpoint | None = None

    def _to_save(self, engine: Engine) -> dict[str, Any]:
        objects = dict(self.objects, trainer=engine)
        scaler = getattr(engine, "scaler", None)
        if scaler is not None:
            objects["scaler"] = scaler
        return objects

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``: resume at STARTED, save at EPOCH_COMPLETED."""
        engine.add_event_handler(Events.STARTED, self.load_latest)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def load_latest(self, engine: Engine) -> None:
        """Load the newest checkpoint of ``checkpoint_dir`` into the objects and the engine (if ``resume``)."""
        path = latest_checkpoint(self.checkpoint_dir) if self.resume else None
        if path is None:
            return
        try:
            state = torch.load(path, map_location=self.map_location, weights_only=True)
        except Exception as e:
            raise RuntimeError(f"PretrainCheckpoint: cannot read checkpoint {path}: {e}") from e
        max_epochs = engine.state.max_epochs
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
        engine.logger.info(f"Resumed from {path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}.")
        if engine.state.epoch >= max_epochs:
            engine.terminate()

    def save(self, engine: Engine) -> None:
        """Write a checkpoint when the epoch is a multiple of ``save_interval`` or the last one."""
        epoch = engine.state.epoch
        if epoch % self.save_interval and epoch < engine.state.max_epochs:
            return
        if self._checkpoint is None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            saver = DiskSaver(str(self.checkpoint_dir), atomic=True, require_empty=False)
            self._checkpoint = Checkpoint(
                self._to_save(engine),
                saver,
                filename_prefix=PREFIX,
                n_saved=self.n_saved,
                global_step_transform=lambda e, _: e.state.iteration,
            )
        self._checkpoint(engine)
