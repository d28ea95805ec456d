"""Engines of monai-afire: the AFiRe pre-trainer, its Ignite handlers and token-level inference."""

from __future__ import annotations

from monai_afire.apps.classification import (
    CLASSIFICATION_DATASETS,
    classification_splits,
    classification_transforms,
    dataset_classes,
    holdout_split,
    inference_records,
    label_prevalence,
    read_class_names,
    save_class_names,
    select_classes,
)
from monai_afire.apps.cohesion import (
    CohesionReport,
    anatomy_label_names,
    cohesion_records,
    cohesion_transforms,
    load_encoder,
    run_cohesion,
    write_cohesion_report,
)
from monai_afire.apps.localization import load_afire_model, localization_cases, prepared_mask, run_localization
from monai_afire.apps.pretraining import check_batch_size, check_image_size, pretraining_records, pretraining_transforms
from monai_afire.handlers.checkpoint import PretrainCheckpoint, latest_checkpoint, load_afire_checkpoint
from monai_afire.handlers.classification import (
    AUROCReport,
    DefinedClassesROCAUCMetric,
    MeanROCAUC,
    ProbabilityCSVWriter,
    image_names,
    load_model_weights,
)
from monai_afire.handlers.loss_history import LossHistory, read_loss_history
from monai_afire.handlers.nan_guard import NonFiniteLossError, NonFiniteLossGuard
from monai_afire.handlers.prototype_freeze import FreezePrototypes
from monai_afire.handlers.schedules import (
    LearningRateSchedule,
    WarmupCosineScheduler,
    WeightDecaySchedule,
    cosine_value,
    scaled_learning_rate,
    total_iterations,
)
from monai_afire.handlers.seeding import EpochSeed, RNGStates
from monai_afire.handlers.teacher_ema import CosineEMAMomentum, TeacherEMA
from monai_afire.handlers.teacher_export import TeacherEncoderSaver, save_teacher_encoder
from monai_afire.inferers.token_inference import TokenAnomalyInferer, TokenOutputWriter, token_outputs
from monai_afire.optimizers.param_groups import weight_decay_param_groups
from monai_afire.utils.distributed import distributed_sampler, get_rank, get_world_size, init_distributed, rank0_only

from .pretrainer import AMP_DTYPES, AFiRePretrainer, unwrap_model

__all__ = [
    "CohesionReport",
    "write_cohesion_report",
    "anatomy_label_names",
    "cohesion_records",
    "cohesion_transforms",
    "load_encoder",
    "run_cohesion",
    "load_afire_model",
    "localization_cases",
    "prepared_mask",
    "run_localization",
    "CLASSIFICATION_DATASETS",
    "classification_splits",
    "classification_transforms",
    "dataset_classes",
    "holdout_split",
    "inference_records",
    "label_prevalence",
    "read_class_names",
    "save_class_names",
    "select_classes",
    "AUROCReport",
    "DefinedClassesROCAUCMetric",
    "MeanROCAUC",
    "ProbabilityCSVWriter",
    "image_names",
    "load_model_weights",
    "AFiRePretrainer",
    "AMP_DTYPES",
    "CosineEMAMomentum",
    "EpochSeed",
    "FreezePrototypes",
    "LearningRateSchedule",
    "LossHistory",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "PretrainCheckpoint",
    "RNGStates",
    "TeacherEMA",
    "TeacherEncoderSaver",
    "TokenAnomalyInferer",
    "TokenOutputWriter",
    "WarmupCosineScheduler",
    "WeightDecaySchedule",
    "check_batch_size",
    "check_image_size",
    "cosine_value",
    "distributed_sampler",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "latest_checkpoint",
    "load_afire_checkpoint",
    "pretraining_records",
    "pretraining_transforms",
    "rank0_only",
    "read_loss_history",
    "save_teacher_encoder",
    "scaled_learning_rate",
    "token_outputs",
    "total_iterations",
    "unwrap_model",
    "weight_decay_param_groups",
]
