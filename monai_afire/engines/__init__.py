"""engines of monai-afire."""
