"""inferers of monai-afire."""
