"""visualize of monai-afire."""

from .curves import plot_loss_curves  # noqa: F401
from .embeddings import plot_token_embedding  # noqa: F401
from .lesions import lesion_gallery  # noqa: F401
from .maps import plot_map_overlay, save_map_gallery  # noqa: F401
from .simcxr import simcxr_gallery  # noqa: F401
from .token_cam import TokenGradCAM, default_target_layer, tokens_to_grid, unit_normalizer  # noqa: F401
