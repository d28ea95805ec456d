"""Save the teacher encoder (the network kept after pre-training) as a bare state dict when training completes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
from ignite.engine import Engine, Events

from monai_afire.utils.distributed import get_rank
from monai_afire.utils.wrappers import unwrap_model

__all__ = ["TeacherEncoderSaver", "save_teacher_encoder"]


def save_teacher_encoder(model: nn.Module, path: str | Path) -> Path:
    """Write ``model.teacher_encoder().state_dict()`` to ``path`` atomically (temporary file, then rename).

    The file loads into ``AFiReEncoder(**config)`` directly, into :func:`monai_afire.networks.load_pretrained_encoder`,
    and into ``python -m monai.bundle ckpt_export --net_id encoder --ckpt_file <path>``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = unwrap_model(model).teacher_encoder().state_dict()
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
