"""Figures of monai-afire (matplotlib): lesion galleries, anomaly-map figures, overlays, token Grad-CAM, curves."""

from __future__ import annotations

from .anomaly import AnomalyFigure, plot_anomaly_cases, token_auroc, write_anomaly_figure
from .curves import plot_loss_curves, read_loss_history
from .embeddings import plot_token_embedding
from .lesions import lesion_gallery
from .maps import plot_map_overlay, save_map_gallery
from .simcxr import simcxr_gallery
from .token_cam import TokenGradCAM, default_target_layer, tokens_to_grid, unit_normalizer

__all__ = [
    "AnomalyFigure",
    "TokenGradCAM",
    "default_target_layer",
    "lesion_gallery",
    "plot_anomaly_cases",
    "plot_loss_curves",
    "plot_map_overlay",
    "plot_token_embedding",
    "read_loss_history",
    "save_map_gallery",
    "simcxr_gallery",
    "token_auroc",
    "tokens_to_grid",
    "unit_normalizer",
    "write_anomaly_figure",
]
