"""Applications of monai-afire: downstream evaluation of encoders (frozen probes, k-NN, fine-tuning)."""

from __future__ import annotations

from .finetune import finetune_classifier, image_batches, predict_scores, train_classifier, training_prevalence
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

__all__ = [
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
