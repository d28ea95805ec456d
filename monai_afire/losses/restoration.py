"""Anomaly-removal restoration loss."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["AnomalyRemovalRestorationLoss"]


class AnomalyRemovalRestorationLoss(_Loss):
    """Mean squared error between the restored and the clean image, optionally weighting lesion pixels more.

    ``mean((1 + lesion_weight * [lesion_mask > 0]) * (reconstruction - clean) ** 2)``; with ``lesion_weight=0``
    (default) it is the plain MSE over the whole image.

    Args:
        lesion_weight: extra weight (>= 0) on pixels where the lesion mask is positive.
    """

    def __init__(self, lesion_weight: float = 0.0) -> None:
        super().__init__()
        if lesion_weight < 0:
            raise ValueError(f"AnomalyRemovalRestorationLoss: lesion_weight must be >= 0, got {lesion_weight}.")
        self.lesion_weight = float(lesion_weight)

    def forward(
        self, reconstruction: torch.Tensor, clean: torch.Tensor, lesion_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss of ``reconstruction`` against ``clean`` (same shape); ``lesion_mask`` broadcastable to them."""
        if reconstruction.shape != clean.shape:
            raise ValueError(
                f"AnomalyRemovalRestorationLoss: reconstruction {tuple(reconstruction.shape)} and clean "
                f"{tuple(clean.shape)} must have the same shape."
            )
        squared = (reconstruction.float() - clean.float()) ** 2
        if self.lesion_weight == 0:
            return squared.mean()
        if lesion_mask is None:
            raise ValueError("AnomalyRemovalRestorationLoss: lesion_weight > 0 needs lesion_mask.")
        weight = 1.0 + self.lesion_weight * (lesion_mask > 0).float()
        return (squared * weight).mean()
