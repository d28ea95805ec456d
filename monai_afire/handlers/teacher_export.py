"""Save the teacher encoder (the network kept after pre-training) with its settings when training completes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
from ignite.engine import Engine, Events

from monai_afire.networks.pretrained import encoder_checkpoint
from monai_afire.utils.distributed import get_rank
from monai_afire.utils.wrappers import unwrap_model

__all__ = ["TeacherEncoderSaver", "save_teacher_encoder"]


def save_teacher_encoder(model: nn.Module, path: str | Path) -> Path:
    """Write the teacher encoder to ``path`` atomically (temporary file, then rename).

    The file is self-describing: ``{"model": teacher encoder state dict, "encoder_config": its settings}`` (see
    :func:`monai_afire.networks.encoder_checkpoint`; plain tensors, numbers and strings, so it loads with
    ``weights_only=True``). ``load_pretrained_encoder(path)`` builds the encoder from it without further settings;
    ``python -m monai.bundle ckpt_export network_def --ckpt_file <path> --key_in_ckpt model`` exports it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = encoder_checkpoint(unwrap_model(model).teacher_encoder())
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


class TeacherEncoderSaver:
    """At ``Events.COMPLETED`` (rank 0 only) save the teacher encoder to ``path`` with :func:`save_teacher_encoder`.

    Args:
        model: the AFiRe model.
        path: output file, e.g. ``models/teacher_encoder.pt``.
    """

    def __init__(self, model: nn.Module, path: str | Path) -> None:
        self.model, self.path = model, Path(path)

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if get_rank() == 0:
            save_teacher_encoder(self.model, self.path)
            engine.logger.info(f"Teacher encoder saved to {self.path}")
