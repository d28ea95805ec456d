"""A data stream that can stop anywhere and start again at the same item with the same randomness.

Two pieces make a pre-training epoch reproducible item by item, whatever the number of loader workers and wherever
the run was interrupted:

- :class:`ResumableSampler`: the order of an epoch depends only on ``(seed, epoch)`` (shuffled, sharded over the
  processes of a distributed run), and an epoch can start part-way (``set_start``), so a run resumed from a
  mid-epoch checkpoint reads exactly the items it had not read yet. With ``with_epoch=True`` it yields
  ``(epoch, index)`` keys instead of bare indices.
- :class:`SeededDataset`: for such a key it seeds the random transforms (the Synthetic Lesion Mask) from
  ``(seed, epoch, index)`` before reading the item, so every item's lesion is fixed by where it is in the data stream,
  not by which worker process made it or by what that worker made before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from monai.data.utils import set_rnd
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from monai_afire.utils.distributed import get_rank, get_world_size

__all__ = ["ResumableSampler", "SeededDataset", "item_seed"]


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for item ``index`` in epoch ``epoch`` of a run seeded with ``seed`` (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1)[0])


class ResumableSampler(DistributedSampler):
    """Seeded, shuffling, process-sharded sampler whose epochs can start part-way.

    It is PyTorch's :class:`~torch.utils.data.distributed.DistributedSampler` (so MONAI's workflows call
    ``set_epoch`` at every epoch start, and the order of an epoch is a function of ``seed`` and the epoch alone), with
    the number of processes and the rank taken from :mod:`monai_afire.utils.distributed` (1 and 0 without a process
    group), plus:

    - ``set_start(n)``: the next epoch iterated skips its first ``n`` items of this process (the items of the
      iterations a resumed run has already done); later epochs start at 0 again.
      :class:`monai_afire.engines.AFiRePretrainer` calls it at every epoch start from ``engine.state.iteration``.
    - ``with_epoch=True``: items are ``(epoch, index)`` pairs, for :class:`SeededDataset`.

    ``len`` is the full number of items per process per epoch, also for an epoch that starts part-way (the trainer's
    epoch length is the loader's full length and Ignite counts the resumed epoch from where it stopped).

    Args:
        dataset: the dataset (only its length is used).
        shuffle: shuffle each epoch (with ``seed + epoch``).
        seed: base seed of the shuffling (the same on every process).
        drop_last: drop the tail that does not divide evenly over the processes (else it is padded).
        num_replicas: processes; :func:`~monai_afire.utils.get_world_size` when None.
        rank: this process; :func:`~monai_afire.utils.get_rank` when None.
        with_epoch: yield ``(epoch, index)`` keys instead of indices.
    """

    def __init__(
        self,
        dataset: Dataset | Sequence,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        with_epoch: bool = False,
    ) -> None:
        super().__init__(
            dataset,  # type: ignore[arg-type]
            num_replicas=get_world_size() if num_replicas is None else num_replicas,
            rank=get_rank() if rank is None else rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.with_epoch = bool(with_epoch)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` items of this process in the next epoch iterated (0 <= start <= len)."""
        if not 0 <= int(start) <= self.num_samples:
            raise ValueError(
                f"ResumableSampler: start must be in [0, {self.num_samples}] (items per process and epoch), got "
                f"{start}."
            )
        self.start = int(start)

    def __iter__(self) -> Iterator[Any]:
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        if self.with_epoch:
            epoch = int(self.epoch)
            return iter([(epoch, i) for i in indices[start:]])
        return iter(indices[start:])

    def __len__(self) -> int:
        return self.num_samples


def _randomised_parts(dataset: Any) -> list[Any]:
    """The ``transform`` of ``dataset`` and of the datasets it wraps (``.dataset`` chains: Subset, RepeatedDataset)."""
    parts, seen = [], set()
    while dataset is not None and id(dataset) not in seen:
        seen.add(id(dataset))
        transform = getattr(dataset, "transform", None)
        if transform is not None:
            parts.append(transform)
        dataset = getattr(dataset, "dataset", None)
    return parts


class SeededDataset(Dataset):
    """Seed the random transforms of every item from ``(seed, epoch, index)`` before reading it.

    Given a key ``(epoch, index)`` (as :class:`ResumableSampler` with ``with_epoch=True`` yields them), the random
    transforms are seeded with :func:`item_seed` through MONAI's ``set_rnd`` and ``dataset[index]`` is returned. Each
    item's random lesion is then a function of the seed, the epoch and the index alone: the same with 0 or 16
    loader workers, with persistent workers, and in a run resumed part-way through an epoch. The copies of a film in a
    :class:`~monai_afire.data.RepeatedDataset`-like wrapper have different indices, hence different lesions.

    A bare integer index reads ``dataset[index]`` without reseeding (the wrapped dataset's own randomness).

    The transforms are found through the ``transform`` attribute of ``dataset`` and of the datasets it wraps
    (``dataset.dataset``, ...), e.g. MONAI's ``Dataset``/``CacheDataset``; pass ``transform`` to name them yourself.
    Worker processes each own a copy, so this is safe with process-based loaders; do not share one instance
    between threads.

    Args:
        dataset: a map-style dataset.
        seed: base seed of the run.
        transform: the randomised object(s) to seed (anything MONAI's ``set_rnd`` accepts); found as above when None.
    """

    def __init__(self, dataset: Dataset | Sequence, seed: int = 0, transform: Any = None) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise ValueError(f"SeededDataset: need a map-style dataset with a length, got {type(dataset).__name__}.")
        self.dataset = dataset
        self.seed = int(seed)
        self.randomised = _randomised_parts(dataset) if transform is None else [transform]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            if len(key) != 2:
                raise ValueError(f"SeededDataset: a key must be an index or (epoch, index), got {key!r}.")
            epoch, index = int(key[0]), int(key[1])
            set_rnd(self.randomised, item_seed(self.seed, epoch, index))
            return self.dataset[index]
        return self.dataset[key]
