"""data of monai-afire."""
