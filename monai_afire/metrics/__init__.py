"""Evaluation metrics of monai-afire: AUROC tables, localisation scores and anatomy cluster cohesion."""

from __future__ import annotations

from .classification import (
    AUROCResult,
    BootstrapInterval,
    auroc_markdown,
    bootstrap_auroc_difference,
    bootstrap_mean_auroc,
    mean_auroc,
    multilabel_auroc,
    per_class_bootstrap,
    write_auroc_csv,
    write_auroc_markdown,
)
from .cohesion import cohesion_metrics, evaluate_cohesion, token_anatomy_labels, token_embeddings
from .localization import (
    bootstrap_mean_difference,
    box_from_map,
    box_hits,
    check_boxes,
    localization_case_scores,
    localization_markdown,
    localization_scores,
    localization_summary,
    pixel_auroc,
    pointing_game,
    resized_boxes,
    write_localization_markdown,
)

__all__ = [
    "AUROCResult",
    "BootstrapInterval",
    "auroc_markdown",
    "bootstrap_auroc_difference",
    "bootstrap_mean_auroc",
    "mean_auroc",
    "multilabel_auroc",
    "per_class_bootstrap",
    "write_auroc_csv",
    "write_auroc_markdown",
    "cohesion_metrics",
    "evaluate_cohesion",
    "token_anatomy_labels",
    "token_embeddings",
    "bootstrap_mean_difference",
    "box_from_map",
    "box_hits",
    "check_boxes",
    "localization_case_scores",
    "localization_markdown",
    "localization_scores",
    "localization_summary",
    "pixel_auroc",
    "pointing_game",
    "resized_boxes",
    "write_localization_markdown",
]
