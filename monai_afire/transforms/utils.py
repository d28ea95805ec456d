"""Checks shared by the transforms of monai-afire (the patch-size check: :func:`monai_afire.utils.check_patch_size`)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

from monai_afire.utils.deprecation import moved_names

__all__ = ["require_keys"]


def require_keys(owner: str, keys: Iterable[Hashable], data: Mapping[Hashable, object]) -> None:
    """Raise a ValueError naming ``owner`` and the keys of ``keys`` that ``data`` lacks, and listing what it has."""
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{owner}: key(s) {missing} not in the data; expected one of {sorted(map(str, data))}.")


__getattr__ = moved_names(__name__, {"check_patch_size": "monai_afire.utils:check_patch_size"})  # one release
