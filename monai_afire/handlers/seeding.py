"""Reproducible randomness for pre-training: per-epoch seeds and a checkpointable snapshot of the RNG states."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data.utils import set_rnd
from monai.utils import set_determinism

__all__ = ["EpochSeed", "RNGStates"]


class RNGStates:
    """The Python, NumPy, torch (and CUDA) RNG states as a checkpointable object (``state_dict`` of tensors/ints)."""

    def state_dict(self) -> dict[str, Any]:
        """Current RNG states; loadable with ``torch.load(weights_only=True)``."""
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {
            "python": random.getstate(),
            "numpy": {
                "kind": kind,
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the RNG states of :meth:`state_dict`."""
        py = state["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        torch.set_rng_state(state["torch"].cpu())
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class EpochSeed:
    """Seed every RNG (and the random transforms of ``dataset``) with ``seed + epoch`` at each epoch start.

    Each epoch's random lesions and shuffling then depend only on the seed and the epoch number, so a run resumed
    from an epoch checkpoint reproduces an uninterrupted run exactly (CPU, ``num_workers=0`` or seeded workers).
    An epoch that starts mid-way (a run resumed from a mid-epoch checkpoint) is not reseeded: the checkpoint has
    restored the RNG states of that point (:class:`RNGStates`). For lesions that do not depend on the loader's
    workers at all, give every item its own seed with :class:`monai_afire.data.SeededDataset` and
    :class:`monai_afire.data.ResumableSampler`.

    Args:
        seed: base seed.
        dataset: a MONAI dataset (or any object with random transforms) to reseed; None to skip.
        deterministic: also ask PyTorch for deterministic algorithms (``monai.utils.set_determinism``).
    """

    def __init__(self, seed: int = 0, dataset: Any = None, deterministic: bool = False) -> None:
        self.seed, self.dataset, self.deterministic = int(seed), dataset, bool(deterministic)

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``."""
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        epoch_length = engine.state.epoch_length
        if epoch_length and engine.state.iteration % epoch_length:
            return  # resumed mid-epoch: keep the RNG states the checkpoint restored
        seed = self.seed + int(engine.state.epoch)
        if self.deterministic:
            set_determinism(seed=seed)
        else:
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
        if self.dataset is not None:
            set_rnd(self.dataset, seed)
