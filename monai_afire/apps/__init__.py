"""Applications of monai-afire: the bundles' data factories, evaluation runners and downstream evaluation of encoders
(frozen probes, k-NN, fine-tuning), and the shipped bundles."""

from __future__ import annotations

from .bundles import BUNDLES, bundle_dir
from .classification import (
    CLASSIFICATION_DATASETS,
    check_trained_model,
    classification_splits,
    classification_transforms,
    inference_records,
    label_prevalence,
    read_class_names,
    read_model_config,
    save_class_names,
    save_model_config,
)
from .cohesion import anatomy_label_names, cohesion_records, cohesion_transforms, load_encoder, run_cohesion
from .finetune import finetune_classifier, image_batches, predict_scores, train_classifier, training_prevalence
from .localization import load_afire_model, localization_cases, mean_film_maps, run_localization, smooth_maps
from .pretraining import check_batch_size, pretraining_records, pretraining_transforms
from .probes import (
    POOL_MODES,
    AttentionPoolingProbe,
    LinearProbe,
    encode_tokens,
    fit_attention_probe,
    knn_scores,
    pool_tokens,
    select_knn_k,
)
from .summaries import (
    classification_summary,
    evaluation_summary,
    inference_summary,
    pretraining_summary,
    report_summary,
    split_sizes,
    token_inference_summary,
)

__all__ = [
    "BUNDLES",
    "bundle_dir",
    "CLASSIFICATION_DATASETS",
    "check_trained_model",
    "classification_summary",
    "evaluation_summary",
    "inference_summary",
    "pretraining_summary",
    "read_model_config",
    "report_summary",
    "save_model_config",
    "split_sizes",
    "token_inference_summary",
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
    "mean_film_maps",
    "pretraining_records",
    "pretraining_transforms",
    "read_class_names",
    "run_cohesion",
    "run_localization",
    "save_class_names",
    "smooth_maps",
    "AttentionPoolingProbe",
    "LinearProbe",
    "POOL_MODES",
    "encode_tokens",
    "finetune_classifier",
    "fit_attention_probe",
    "image_batches",
    "knn_scores",
    "pool_tokens",
    "predict_scores",
    "select_knn_k",
    "train_classifier",
    "training_prevalence",
]
