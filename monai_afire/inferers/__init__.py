"""Inferers of monai-afire: token features and label-free anomaly maps, of the teacher or the student."""

from __future__ import annotations

from .anomaly_maps import NETWORKS, NO_LESION_PROTOTYPE, anomaly_maps, lesion_probability, token_values_to_image
from .token_inference import ANOMALY_KINDS, TokenAnomalyInferer, TokenOutputWriter, token_outputs

__all__ = [
    "ANOMALY_KINDS",
    "NETWORKS",
    "NO_LESION_PROTOTYPE",
    "TokenAnomalyInferer",
    "TokenOutputWriter",
    "anomaly_maps",
    "lesion_probability",
    "token_outputs",
    "token_values_to_image",
]
