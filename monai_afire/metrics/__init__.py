"""metrics of monai-afire."""
