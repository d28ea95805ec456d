"""handlers of monai-afire."""
