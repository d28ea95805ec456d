"""losses of monai-afire."""
