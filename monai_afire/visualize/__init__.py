"""visualize of monai-afire."""

from .lesions import lesion_gallery  # noqa: F401
