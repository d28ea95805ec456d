"""Engines of monai-afire: the AFiRe pre-training trainer, a ``monai.engines.Trainer``."""

from __future__ import annotations

from monai_afire.utils.deprecation import moved_modules, moved_names

from .pretrainer import AMP_DTYPES, CLIP_GRAD_MODES, AFiRePrepareBatch, AFiRePretrainer, clip_gradients

__all__ = ["AFiRePrepareBatch", "AFiRePretrainer", "AMP_DTYPES", "CLIP_GRAD_MODES", "clip_gradients"]

_H, _A, _U = "monai_afire.handlers", "monai_afire.apps", "monai_afire.utils"
#: names that ``monai_afire.engines`` exported before the layout split; deprecated aliases for one release.
MOVED_NAMES = {
    **{
        name: f"{_H}:{name}"
        for name in (
            "AUROCReport",
            "CohesionReport",
            "EpochSeed",
            "FreezePrototypes",
            "LearningRateSchedule",
            "LossHistory",
            "MeanROCAUC",
            "NonFiniteLossError",
            "NonFiniteLossGuard",
            "PretrainCheckpoint",
            "ProbabilityCSVWriter",
            "TeacherEMA",
            "TeacherEncoderSaver",
            "WeightDecaySchedule",
            "latest_checkpoint",
            "save_teacher_encoder",
            "scaled_learning_rate",
        )
    },
    "CosineEMAMomentum": f"{_H}.teacher_ema:CosineEMAMomentum",
    "DefinedClassesROCAUCMetric": f"{_H}.classification:DefinedClassesROCAUCMetric",
    "RNGStates": f"{_H}.seeding:RNGStates",
    "WarmupCosineScheduler": f"{_H}.schedules:WarmupCosineScheduler",
    "cosine_value": f"{_H}.schedules:cosine_value",
    "image_names": f"{_H}.classification:image_names",
    "total_iterations": f"{_H}.schedules:total_iterations",
    "write_cohesion_report": f"{_H}.cohesion:write_cohesion_report",
    **{
        name: f"{_A}:{name}"
        for name in (
            "CLASSIFICATION_DATASETS",
            "anatomy_label_names",
            "check_batch_size",
            "classification_splits",
            "classification_transforms",
            "cohesion_records",
            "cohesion_transforms",
            "inference_records",
            "label_prevalence",
            "load_afire_model",
            "load_encoder",
            "localization_cases",
            "pretraining_records",
            "pretraining_transforms",
            "read_class_names",
            "run_cohesion",
            "run_localization",
            "save_class_names",
        )
    },
    "dataset_classes": f"{_A}.classification:dataset_classes",
    "prepared_mask": f"{_A}.localization:prepared_mask",
    "select_classes": f"{_A}.classification:select_classes",
    **{
        name: f"{_U}:{name}"
        for name in (
            "check_image_size",
            "distributed_sampler",
            "get_rank",
            "get_world_size",
            "init_distributed",
            "rank0_only",
            "unwrap_model",
        )
    },
    "load_model_weights": f"{_U}:load_weights",
    "holdout_split": "monai_afire.data:holdout_split",
    "load_afire_checkpoint": "monai_afire.networks:load_afire_checkpoint",
    "read_loss_history": "monai_afire.visualize:read_loss_history",
    "weight_decay_param_groups": "monai_afire.optimizers:weight_decay_param_groups",
    "TokenAnomalyInferer": "monai_afire.inferers:TokenAnomalyInferer",
    "TokenOutputWriter": "monai_afire.inferers:TokenOutputWriter",
    "token_outputs": "monai_afire.inferers:token_outputs",
}
#: modules of ``monai_afire.engines`` before the layout split -> their new place (and names that went elsewhere).
MOVED_MODULES = {
    "checkpoint": (
        f"{_H}.checkpoint",
        {"load_afire_checkpoint": "monai_afire.networks.pretrained:load_afire_checkpoint"},
    ),
    "classification_data": (f"{_A}.classification", {"holdout_split": "monai_afire.data.splits:holdout_split"}),
    "classification_handlers": (f"{_H}.classification", {"load_model_weights": f"{_U}.state_dict:load_weights"}),
    "distributed": f"{_U}.distributed",
    "localization_eval": f"{_A}.localization",
    "loss_history": (f"{_H}.loss_history", {"read_loss_history": "monai_afire.visualize.curves:read_loss_history"}),
    "nan_guard": f"{_H}.nan_guard",
    "param_groups": "monai_afire.optimizers.param_groups",
    "pretrain_data": (f"{_A}.pretraining", {"check_image_size": f"{_U}.checks:check_image_size"}),
    "prototype_freeze": f"{_H}.prototype_freeze",
    "representation_eval": (
        f"{_A}.cohesion",
        {
            "CohesionReport": f"{_H}.cohesion:CohesionReport",
            "write_cohesion_report": f"{_H}.cohesion:write_cohesion_report",
        },
    ),
    "schedules": f"{_H}.schedules",
    "seeding": f"{_H}.seeding",
    "teacher_ema": f"{_H}.teacher_ema",
    "teacher_export": f"{_H}.teacher_export",
    "token_inference": "monai_afire.inferers.token_inference",
}
__getattr__ = moved_names(__name__, MOVED_NAMES)
moved_modules(__name__, MOVED_MODULES)
