"""Ignite handlers of monai-afire (MONAI's ``attach(engine)`` convention): teacher EMA, schedules, frozen prototypes,
NaN guard, seeding, loss history, checkpoints, preemption, teacher export, classification and cohesion reports."""

from __future__ import annotations

from .checkpoint import PretrainCheckpoint, latest_checkpoint
from .classification import (
    UNDEFINED,
    AUROCReport,
    MeanROCAUC,
    ProbabilityCSVWriter,
    defined_metric_is_better,
    format_metric,
    log_epoch_metrics,
)
from .cohesion import CohesionReport
from .loss_history import LossHistory
from .nan_guard import NonFiniteLossError, NonFiniteLossGuard
from .preemption import PREEMPTED_EXIT_CODE, PreemptionHandler, TrainingPreempted, exit_if_preempted
from .prototype_freeze import FreezePrototypes
from .schedules import LearningRateSchedule, WeightDecaySchedule, scaled_learning_rate
from .seeding import EpochSeed
from .teacher_ema import TeacherEMA
from .teacher_export import TeacherEncoderSaver, save_teacher_encoder

__all__ = [
    "AUROCReport",
    "CohesionReport",
    "EpochSeed",
    "FreezePrototypes",
    "LearningRateSchedule",
    "LossHistory",
    "MeanROCAUC",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "PREEMPTED_EXIT_CODE",
    "PreemptionHandler",
    "PretrainCheckpoint",
    "ProbabilityCSVWriter",
    "TeacherEMA",
    "TeacherEncoderSaver",
    "TrainingPreempted",
    "WeightDecaySchedule",
    "UNDEFINED",
    "defined_metric_is_better",
    "format_metric",
    "exit_if_preempted",
    "latest_checkpoint",
    "log_epoch_metrics",
    "save_teacher_encoder",
    "scaled_learning_rate",
]
