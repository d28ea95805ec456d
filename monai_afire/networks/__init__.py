"""networks of monai-afire."""

from __future__ import annotations

from .afire import AFiRe, EncoderWithHead
from .decoder import AnomalyRemovalDecoder
from .encoder import VIT_PRESETS, AFiReEncoder
from .position_embedding import sincos_position_embedding
from .pretrained import extract_encoder_state_dict, load_pretrained_encoder
from .prototype_head import SpatialPrototypeHead

__all__ = [
    "AFiRe",
    "AFiReEncoder",
    "AnomalyRemovalDecoder",
    "EncoderWithHead",
    "SpatialPrototypeHead",
    "VIT_PRESETS",
    "extract_encoder_state_dict",
    "load_pretrained_encoder",
    "sincos_position_embedding",
]
