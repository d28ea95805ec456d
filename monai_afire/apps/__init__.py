"""apps of monai-afire."""
