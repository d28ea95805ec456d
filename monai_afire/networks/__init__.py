"""networks of monai-afire."""

from __future__ import annotations

from monai_afire.inferers.anomaly_maps import anomaly_maps, lesion_probability, token_values_to_image

from .afire import AFiRe, EncoderWithHead
from .classifier import AFiReClassifier, build_classifier, layer_decay_param_groups
from .decoder import AnomalyRemovalDecoder
from .encoder import VIT_PRESETS, AFiReEncoder
from .position_embedding import sincos_position_embedding
from .pretrained import extract_encoder_state_dict, load_pretrained_encoder
from .prototype_head import SpatialPrototypeHead
from .transformer import transformer_blocks

__all__ = [
    "AFiRe",
    "AFiReClassifier",
    "anomaly_maps",
    "build_classifier",
    "layer_decay_param_groups",
    "lesion_probability",
    "token_values_to_image",
    "AFiReEncoder",
    "AnomalyRemovalDecoder",
    "EncoderWithHead",
    "SpatialPrototypeHead",
    "VIT_PRESETS",
    "extract_encoder_state_dict",
    "load_pretrained_encoder",
    "sincos_position_embedding",
    "transformer_blocks",
]
