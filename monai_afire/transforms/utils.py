"""Checks shared by the transforms of monai-afire."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

__all__ = ["check_patch_size", "require_keys"]


def require_keys(owner: str, keys: Iterable[Hashable], data: Mapping[Hashable, object]) -> None:
    """Raise a ValueError naming ``owner`` and the keys of ``keys`` that ``data`` lacks, and listing what it has."""
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{owner}: key(s) {missing} not in the data; expected one of {sorted(map(str, data))}.")


def check_patch_size(owner: str, spatial_shape: Sequence[int], patch_size: int | Sequence[int]) -> tuple[int, ...]:
    """The patch as one int per spatial axis; a ValueError naming ``owner`` when it does not divide the shape."""
    spatial = tuple(int(s) for s in spatial_shape)
    patch = (int(patch_size),) * len(spatial) if isinstance(patch_size, int) else tuple(int(p) for p in patch_size)
    if len(patch) != len(spatial) or any(p <= 0 or s % p for s, p in zip(spatial, patch)):
        raise ValueError(f"{owner}: patch_size {patch_size} must divide the spatial shape {spatial}.")
    return patch
