"""Networks of monai-afire: the encoder, prototype head, decoder, the AFiRe model, the classifier, weight loading."""

from __future__ import annotations

from monai_afire.utils.deprecation import moved_modules, moved_names

from .afire import AFiRe, EncoderWithHead
from .classifier import AFiReClassifier, build_classifier
from .decoder import AnomalyRemovalDecoder
from .encoder import VIT_PRESETS, AFiReEncoder
from .position_embedding import sincos_position_embedding
from .pretrained import (
    checkpoint_has_lesion_prototype,
    extract_encoder_state_dict,
    load_afire_checkpoint,
    load_pretrained_encoder,
)
from .prototype_head import SpatialPrototypeHead
from .transformer import transformer_blocks

__all__ = [
    "AFiRe",
    "AFiReClassifier",
    "build_classifier",
    "AFiReEncoder",
    "AnomalyRemovalDecoder",
    "EncoderWithHead",
    "SpatialPrototypeHead",
    "VIT_PRESETS",
    "extract_encoder_state_dict",
    "load_afire_checkpoint",
    "checkpoint_has_lesion_prototype",
    "load_pretrained_encoder",
    "sincos_position_embedding",
    "transformer_blocks",
]

#: names that moved out of ``monai_afire.networks``; deprecated aliases for one release.
MOVED_NAMES = {
    "anomaly_maps": "monai_afire.inferers:anomaly_maps",
    "lesion_probability": "monai_afire.inferers:lesion_probability",
    "token_values_to_image": "monai_afire.inferers:token_values_to_image",
    "layer_decay_param_groups": "monai_afire.optimizers:layer_decay_param_groups",
}
__getattr__ = moved_names(__name__, MOVED_NAMES)
moved_modules(__name__, {"anomaly_maps": "monai_afire.inferers.anomaly_maps"})
