"""Pre-training data: records from a folder or a dataset reader, the SLM transform chain and start-up checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai.transforms import Compose, EnsureTyped

__all__ = ["check_batch_size", "pretraining_records", "pretraining_transforms"]


def check_batch_size(num_images: int, batch_size: int, world_size: int = 1, drop_last: bool = True) -> None:
    """Raise ValueError when ``batch_size * world_size`` images are more than the data set holds (no batch)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if drop_last and batch_size * world_size > num_images:
        raise ValueError(
            f"batch_size {batch_size} x {world_size} process(es) is larger than the data set ({num_images} images): "
            "no full batch can be formed; lower batch_size or add images."
        )


def pretraining_records(
    dataset_dir: str | Path,
    reader: str = "folder",
    check_images: bool = False,
    skip_unreadable: bool = False,
    **reader_kwargs: Any,
) -> list[dict[str, Any]]:
    """Image records (dicts with ``"image"``) for pre-training; labels are ignored.

    Args:
        dataset_dir: a folder of radiographs (PNG/JPEG/DICOM/NIfTI, searched recursively) for ``reader="folder"``, or
            the root of a data set for a named reader of :func:`monai_afire.data.load_dataset` (``"chestxray14"``,
            ``"simcxr"``, ``"chexpert"``, ``"mimic"``, ``"rsna"``, ``"vindr"``; for ``"csv"`` the CSV file, with
            ``image_column`` in ``reader_kwargs``).
        reader: ``"folder"`` or a data set name.
        check_images: check every file up front (it exists and its header reads) and name all the bad ones.
        skip_unreadable: with ``check_images``, leave unreadable files out (counted in the log) instead of stopping.
        reader_kwargs: arguments of the reader (e.g. ``split``).

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist.
        ValueError: it holds no image, or (with ``check_images``) some images are unreadable (each named).
    """
    from monai_afire.data import check_records, load_dataset, reader_kwargs_for_check

    root = Path(str(dataset_dir)).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset_dir {root} does not exist; pass --dataset_dir with a folder of radiographs.")
    if root.is_dir() and not any(root.iterdir()):
        raise ValueError(f"dataset_dir {root} is empty; it must hold radiographs (PNG, JPEG, DICOM or NIfTI).")
    records, _ = load_dataset(reader, root, **reader_kwargs_for_check(reader, reader_kwargs, check_images))
    if not records:
        raise ValueError(f"dataset_dir {root} gave no image with reader {reader!r}.")
    records = [{"image": r["image"]} for r in records]
    if check_images:
        records = check_records(records, skip_unreadable, what=f"data set at {root}")
    return records


def pretraining_transforms(image_size: int = 224, **lesion_kwargs: Any) -> Compose:
    """File path -> prepared radiograph (``radiograph_transforms``) -> Synthetic Lesion Mask -> tensors.

    The output dict holds ``"image"`` (lesioned), ``"clean"`` and ``"lesion_mask"``, each (1, S, S). The chain is one
    flat ``Compose``, so that MONAI's ``CacheDataset`` caches the prepared film (it caches up to the first random
    member, and a nested ``Compose`` counts as random: nothing would be cached).

    Args:
        image_size: side S of the images.
        lesion_kwargs: arguments of :class:`monai_afire.transforms.RandSyntheticLesiond`.
    """
    from monai_afire.transforms import RandSyntheticLesiond, radiograph_transforms

    return Compose(
        [
            radiograph_transforms(image_size=image_size, keys=("image",)),
            RandSyntheticLesiond(keys="image", clean_key="clean", mask_key="lesion_mask", **lesion_kwargs),
            EnsureTyped(keys=("image", "clean", "lesion_mask"), track_meta=False),
        ]
    ).flatten()
