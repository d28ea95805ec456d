"""MONAI transforms of monai-afire: the Synthetic Lesion Mask and radiograph preparation."""

from __future__ import annotations

from .tokens import patch_labels

__all__ = ["patch_labels"]
