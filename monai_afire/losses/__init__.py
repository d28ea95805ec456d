"""losses of monai-afire."""

from __future__ import annotations

from .afire_loss import AFiReLoss
from .anatomy_consistency import AnatomyConsistencyLoss
from .restoration import IMAGENET_STD, AnomalyRemovalRestorationLoss, normalized_scale
from .sinkhorn import sinkhorn_knopp

__all__ = [
    "AFiReLoss",
    "AnatomyConsistencyLoss",
    "AnomalyRemovalRestorationLoss",
    "IMAGENET_STD",
    "normalized_scale",
    "sinkhorn_knopp",
]
