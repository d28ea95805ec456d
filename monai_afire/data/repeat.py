"""A dataset that visits every item several times per pass: AFiRe's lesioned copies of each film per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

__all__ = ["RepeatedDataset"]


class RepeatedDataset(Dataset):
    """Every item of ``dataset`` ``copies`` times in one pass: index ``i`` reads ``dataset[i % len(dataset)]``.

    The authors of AFiRe store 5 lesioned copies of every film, so one of their epochs is 5 passes over the films,
    each film with 5 different synthetic lesions. This wrapper gives the same epoch without storing anything: the
    wrapped dataset runs its random transforms (the Synthetic Lesion Mask) on every access, so each copy of a film
    gets a fresh lesion. That holds for MONAI's ``Dataset``, ``CacheDataset`` and ``PersistentDataset`` (they cache
    only the transforms before the first random one); a dataset that caches random results would repeat them.

    Iteration-counted schedules follow the longer epoch by themselves: the trainer's epoch length is the loader's
    length, so warm-up, prototype freezing and the first-epoch prototype replacement last ``copies`` times as many
    iterations. A shuffling sampler spreads the copies of a film over the epoch, as the authors' shuffled files.
    Per-epoch reseeding (:class:`monai_afire.engines.EpochSeed`, MONAI's ``set_rnd``) reaches the wrapped dataset's
    transforms through this object.

    Args:
        dataset: a map-style dataset (with ``__len__`` and ``__getitem__``).
        copies: visits of every item per pass (>= 1; 1 gives the dataset unchanged).

    Raises:
        ValueError: when ``copies`` is not an integer >= 1 or ``dataset`` has no length.
    """

    def __init__(self, dataset: Dataset | Sequence, copies: int = 1) -> None:
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise ValueError(f"RepeatedDataset: copies must be an integer >= 1, got {copies!r}.")
        if not hasattr(dataset, "__len__"):
            raise ValueError(f"RepeatedDataset: the dataset ({type(dataset).__name__}) must have a length.")
        self.dataset = dataset
        self.copies = copies

    def __len__(self) -> int:
        return self.copies * len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"RepeatedDataset: index {index} out of range for {size} items.")
        return self.dataset[index % len(self.dataset)]  # type: ignore[arg-type]
