"""Anomaly-removal restoration loss."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["IMAGENET_STD", "RESTORATION_TARGETS", "AnomalyRemovalRestorationLoss", "normalized_scale"]

#: per-channel standard deviations of the ImageNet normalisation (R, G, B) that the authors apply to the films
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``"normalized"``: MSE on ImageNet-normalised pixels (authors'); ``"raw"``: MSE on the [0, 1] pixels
RESTORATION_TARGETS = ("normalized", "raw")


def normalized_scale(channels: int, std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """Per-channel factor (C,) that turns squared [0, 1] residuals into squared ImageNet-normalised ones.

    A grey film (1 channel) is copied to the 3 channels, so its factor is ``mean(1 / std_c ** 2)`` (about 19.6);
    a 3-channel image gets ``1 / std_c ** 2`` per channel. The means of the normalisation cancel in a difference.

    Raises:
        ValueError: for any other number of channels.
    """
    inverse = torch.tensor([1.0 / s**2 for s in std], dtype=torch.float64)
    if channels == 1:
        return inverse.mean().reshape(1)
    if channels == len(std):
        return inverse
    raise ValueError(
        f"AnomalyRemovalRestorationLoss: target='normalized' needs 1 (grey, copied to {len(std)}) or {len(std)} "
        f"channels, got {channels}; use target='raw'."
    )


class AnomalyRemovalRestorationLoss(_Loss):
    """Mean squared error between the restored and the clean image, optionally weighting lesion pixels more.

    ``mean(w_c * (1 + lesion_weight * [lesion_mask > 0]) * (reconstruction - clean) ** 2)`` over batch, channels and
    pixels, with ``w_c`` from ``target``:

    - ``"normalized"`` (default, the authors'): the error is measured on ImageNet-normalised pixels, as the authors
      feed the films (a grey film copied to 3 channels, stds 0.229/0.224/0.225). The images stay in [0, 1]; the
      loss is the same as normalising both and taking the MSE, i.e. ``w_c = 1 / std_c ** 2`` for RGB and
      ``mean_c(1 / std_c ** 2)`` (about 19.6) for one grey channel. See :func:`normalized_scale`.
    - ``"raw"``: ``w_c = 1``, the MSE on [0, 1] pixels (the earlier monai-afire default; about 19.6x weaker).

    Args:
        lesion_weight: extra weight (>= 0) on pixels where the lesion mask is positive.
        target: ``"normalized"`` or ``"raw"``.
    """

    def __init__(self, lesion_weight: float = 0.0, target: str = "normalized") -> None:
        super().__init__()
        if lesion_weight < 0:
            raise ValueError(f"AnomalyRemovalRestorationLoss: lesion_weight must be >= 0, got {lesion_weight}.")
        if target not in RESTORATION_TARGETS:
            raise ValueError(
                f"AnomalyRemovalRestorationLoss: target must be one of {list(RESTORATION_TARGETS)}, got {target!r}."
            )
        self.lesion_weight = float(lesion_weight)
        self.target = target

    def forward(
        self, reconstruction: torch.Tensor, clean: torch.Tensor, lesion_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss of ``reconstruction`` against ``clean`` (same shape, (B, C, *spatial)); ``lesion_mask``
        broadcastable to them."""
        if reconstruction.shape != clean.shape:
            raise ValueError(
                f"AnomalyRemovalRestorationLoss: reconstruction {tuple(reconstruction.shape)} and clean "
                f"{tuple(clean.shape)} must have the same shape."
            )
        squared = (reconstruction.float() - clean.float()) ** 2
        if self.lesion_weight > 0:
            if lesion_mask is None:
                raise ValueError("AnomalyRemovalRestorationLoss: lesion_weight > 0 needs lesion_mask.")
            squared = squared * (1.0 + self.lesion_weight * (lesion_mask > 0).float())
        if self.target == "raw":
            return squared.mean()
        if squared.ndim < 2:
            raise ValueError(
                f"AnomalyRemovalRestorationLoss: target='normalized' needs (B, C, *spatial) images, got "
                f"{tuple(squared.shape)}."
            )
        scale = normalized_scale(squared.shape[1]).to(device=squared.device, dtype=squared.dtype)
        per_channel = squared.transpose(0, 1).reshape(squared.shape[1], -1).mean(dim=1)
        return (per_channel * scale).mean()
