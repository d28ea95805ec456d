"""Engines of monai-afire: the AFiRe pre-trainer, its Ignite handlers and token-level inference."""

from __future__ import annotations

from .checkpoint import PretrainCheckpoint, checkpoint_has_lesion_prototype, latest_checkpoint, load_afire_checkpoint
from .classification_data import (
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
from .classification_handlers import (
    AUROCReport,
    DefinedClassesROCAUCMetric,
    MeanROCAUC,
    ProbabilityCSVWriter,
    image_names,
    load_model_weights,
)
from .distributed import distributed_sampler, get_rank, get_world_size, init_distributed, rank0_only
from .localization_eval import load_afire_model, localization_cases, prepared_mask, run_localization
from .loss_history import LossHistory, read_loss_history
from .nan_guard import NonFiniteLossError, NonFiniteLossGuard
from .param_groups import weight_decay_param_groups
from .pretrain_data import check_batch_size, check_image_size, pretraining_records, pretraining_transforms
from .pretrainer import AMP_DTYPES, CLIP_GRAD_MODES, AFiRePretrainer, clip_gradients, unwrap_model
from .prototype_freeze import FreezePrototypes
from .representation_eval import (
    CohesionReport,
    anatomy_label_names,
    cohesion_records,
    cohesion_transforms,
    load_encoder,
    run_cohesion,
    write_cohesion_report,
)
from .schedules import (
    LearningRateSchedule,
    WarmupCosineScheduler,
    WeightDecaySchedule,
    cosine_value,
    scaled_learning_rate,
    total_iterations,
)
from .seeding import EpochSeed, RNGStates
from .teacher_ema import CosineEMAMomentum, TeacherEMA
from .teacher_export import TeacherEncoderSaver, save_teacher_encoder
from .token_inference import TokenAnomalyInferer, TokenOutputWriter, token_outputs

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
    "CLIP_GRAD_MODES",
    "clip_gradients",
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
    "checkpoint_has_lesion_prototype",
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
