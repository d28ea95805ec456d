"""optimizers of monai-afire."""
