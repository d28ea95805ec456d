"""networks of monai-afire."""
