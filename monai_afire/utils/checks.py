"""The one check that a patch size tiles an image, shared by transforms, networks, metrics and bundle start-up."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["check_image_size", "check_patch_size"]


def check_patch_size(
    owner: str, spatial_shape: int | Sequence[int], patch_size: int | Sequence[int]
) -> tuple[int, ...]:
    """The patch as one int per spatial axis, after checking that it tiles ``spatial_shape`` exactly.

    Args:
        owner: name shown at the start of the error message (the caller, or the setting being checked).
        spatial_shape: the image's spatial size: one int per axis, or one int for every axis.
        patch_size: the patch side: one int per axis, or one int for every axis.

    Raises:
        ValueError: the lengths differ, or a side is not a positive multiple of its patch side; the message
            suggests the nearest size that fits.
    """
    spatial_seq = isinstance(spatial_shape, Sequence)
    patch_seq = isinstance(patch_size, Sequence)
    dims = len(spatial_shape) if spatial_seq else len(patch_size) if patch_seq else 1  # type: ignore[arg-type]
    spatial = tuple(int(s) for s in spatial_shape) if spatial_seq else (int(spatial_shape),) * dims  # type: ignore
    patch = tuple(int(p) for p in patch_size) if patch_seq else (int(patch_size),) * dims  # type: ignore
    if len(patch) != len(spatial):
        raise ValueError(f"{owner}: patch_size {patch_size} and the spatial shape {spatial_shape} differ in length.")
    if any(p < 1 or s < p or s % p for s, p in zip(spatial, patch)):
        fits = tuple(max(p, 1) * max(1, round(s / max(p, 1))) for s, p in zip(spatial, patch))
        raise ValueError(
            f"{owner}: the spatial shape {spatial_shape} must be a positive multiple of patch_size {patch_size} "
            f"on every axis (e.g. {fits[0] if not spatial_seq else fits})."
        )
    return patch


def check_image_size(image_size: int | Sequence[int], patch_size: int | Sequence[int]) -> None:
    """Bundle start-up check: :func:`check_patch_size` for the ``image_size`` and ``patch_size`` settings."""
    check_patch_size("image_size", image_size, patch_size)
