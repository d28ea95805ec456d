"""utils of monai-afire."""
