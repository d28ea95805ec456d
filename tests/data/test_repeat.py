"""RepeatedDataset: several lesioned copies of every film per epoch, each with its own lesion."""

from __future__ import annotations

import itertools
import unittest

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, Dataset
from monai.data.utils import set_rnd
from monai.transforms import Compose
from parameterized import parameterized

from monai_afire.data import RepeatedDataset
from monai_afire.transforms import RandSyntheticLesiond

FILMS, COPIES, SIZE = 6, 5, 32


def films() -> list[dict]:
    """Films told apart by their "index"; a bright body so that the lesion texture is positive."""
    rng = np.random.default_rng(0)
    out = []
    for index in range(FILMS):
        image = np.zeros((1, SIZE, SIZE), dtype=np.float32)
        image[:, 4:28, 6:26] = 0.5 + 0.3 * rng.random((1, 24, 20))
        out.append({"image": image, "index": index})
    return out


class TestRepeatedDataset(unittest.TestCase):
    def test_length_and_indexing(self):
        data = RepeatedDataset(list("abc"), copies=3)
        self.assertEqual(len(data), 9)
        self.assertEqual([data[i] for i in range(9)], list("abcabcabc"))
        self.assertEqual(data[-1], "c")
        with self.assertRaises(IndexError):
            data[9]
        self.assertEqual(len(RepeatedDataset(list("ab"))), 2)

    @parameterized.expand([(0,), (-2,), (1.5,), (True,), ("5",)])
    def test_bad_copies(self, copies):
        with self.assertRaisesRegex(ValueError, "copies must be an integer >= 1"):
            RepeatedDataset([1, 2], copies=copies)
        with self.assertRaisesRegex(ValueError, "length"):
            RepeatedDataset(iter([1, 2]), copies=2)

    @parameterized.expand([("Dataset", 0), ("CacheDataset", 0), ("Dataset", 2)])
    def test_every_copy_of_a_film_gets_its_own_lesion(self, kind, workers):
        transform = Compose([RandSyntheticLesiond(keys="image")])
        base = (
            Dataset(films(), transform)
            if kind == "Dataset"
            else CacheDataset(films(), transform, progress=False)
        )
        data = RepeatedDataset(base, copies=COPIES)
        loader = DataLoader(data, batch_size=4, shuffle=True, num_workers=workers)
        epochs = []
        for epoch in range(2):
            set_rnd(data, 100 + epoch)  # what EpochSeed does: it reaches the wrapped dataset's transform
            masks: dict[int, list[torch.Tensor]] = {i: [] for i in range(FILMS)}
            for batch in loader:
                for index, mask in zip(batch["index"].tolist(), batch["lesion_mask"]):
                    masks[index].append(torch.as_tensor(mask))
            self.assertEqual(len(loader), FILMS * COPIES // 4 + 1)
            for index, copies in masks.items():
                self.assertEqual(len(copies), COPIES, f"film {index}")
                for a, b in itertools.combinations(copies, 2):
                    self.assertTrue(a.any() and b.any())
                    self.assertFalse(torch.equal(a, b), f"two copies of film {index} share a lesion")
            ordered = [m for i in range(FILMS) for m in sorted(masks[i], key=lambda t: float(t.sum()))]
            epochs.append(torch.stack(ordered))
        self.assertFalse(torch.equal(epochs[0], epochs[1]), "the second epoch repeated the first one's lesions")

    def test_epoch_seed_makes_the_epoch_reproducible(self):
        data = RepeatedDataset(Dataset(films(), Compose([RandSyntheticLesiond(keys="image")])), copies=COPIES)
        runs = []
        for _ in range(2):
            set_rnd(data, 7)
            runs.append(torch.stack([torch.as_tensor(data[i]["lesion_mask"]) for i in range(len(data))]))
        torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


if __name__ == "__main__":
    unittest.main()
