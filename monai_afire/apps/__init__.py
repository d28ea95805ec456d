"""Bundle-facing pieces of monai-afire: data factories of the bundles, evaluation runners, the shipped bundles."""

from __future__ import annotations

from .bundles import BUNDLES, bundle_dir
from .classification import (
    CLASSIFICATION_DATASETS,
    classification_splits,
    classification_transforms,
    inference_records,
    label_prevalence,
    read_class_names,
    save_class_names,
)
from .cohesion import anatomy_label_names, cohesion_records, cohesion_transforms, load_encoder, run_cohesion
from .localization import load_afire_model, localization_cases, run_localization
from .pretraining import check_batch_size, pretraining_records, pretraining_transforms

__all__ = [
    "BUNDLES",
    "bundle_dir",
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
]
