"""monai-afire: AFiRe self-supervised pre-training for radiographs, as a MONAI extension."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
