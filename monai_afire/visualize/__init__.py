"""Figures of monai-afire (matplotlib): lesion galleries, anomaly-map overlays, token Grad-CAM, embeddings, curves."""

from __future__ import annotations

from .curves import plot_loss_curves, read_loss_history
from .embeddings import plot_token_embedding
from .lesions import lesion_gallery
from .maps import plot_map_overlay, save_map_gallery
from .simcxr import simcxr_gallery
from .token_cam import TokenGradCAM, default_target_layer, tokens_to_grid, unit_normalizer

__all__ = [
    "TokenGradCAM",
    "default_target_layer",
    "lesion_gallery",
    "plot_loss_curves",
    "plot_map_overlay",
    "plot_token_embedding",
    "read_loss_history",
    "save_map_gallery",
    "simcxr_gallery",
    "tokens_to_grid",
    "unit_normalizer",
]
