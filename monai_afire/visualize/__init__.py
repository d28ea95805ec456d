"""visualize of monai-afire."""
