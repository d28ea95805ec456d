from __future__ import annotations

import unittest

import torch
from monai.data import Dataset
from monai.transforms import Compose, Lambdad, RandomizableTransform
from parameterized import parameterized
from torch.utils.data import DataLoader

from monai_afire.apps import pretraining_records, pretraining_transforms
from monai_afire.data import ResumableSampler, SeededDataset, item_seed
from tests.tiny import TmpDirTestCase, write_films


class RandomValued(RandomizableTransform):
    """Adds a random number drawn from its own state to ``item["value"]`` (a stand-in for the lesion transform)."""

    def __init__(self) -> None:
        RandomizableTransform.__init__(self, prob=1.0)

    def __call__(self, item):
        return {**item, "noise": float(self.R.uniform())}


def seeded_set(n: int = 10, seed: int = 3) -> SeededDataset:
    data = [{"value": float(i)} for i in range(n)]
    return SeededDataset(Dataset(data, Compose([Lambdad("value", lambda v: v), RandomValued()])), seed=seed)


def stream(loader: DataLoader, sampler: ResumableSampler, epochs: range, start: int = 0) -> list[tuple]:
    out = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        if epoch == epochs[0] and start:
            sampler.set_start(start)
        for batch in loader:
            out += list(zip(batch["value"].tolist(), batch["noise"].tolist()))
    return out


class TestResumableSampler(unittest.TestCase):
    def test_order_is_a_function_of_seed_and_epoch(self):
        a, b = ResumableSampler(range(20), seed=1), ResumableSampler(range(20), seed=1)
        a.set_epoch(2)
        b.set_epoch(2)
        self.assertEqual(list(a), list(b))
        self.assertEqual(sorted(a), list(range(20)))
        b.set_epoch(3)
        self.assertNotEqual(list(a), list(b))
        self.assertEqual((a.num_replicas, a.rank), (1, 0))  # no process group: one process

    @parameterized.expand([(0,), (1,), (7,), (20,)])
    def test_start_skips_once(self, start):
        sampler = ResumableSampler(range(20), seed=0)
        sampler.set_epoch(1)
        full = list(sampler)
        sampler.set_start(start)
        self.assertEqual(list(sampler), full[start:])
        self.assertEqual(list(sampler), full)  # the next pass starts at 0 again
        self.assertEqual(len(sampler), 20)

    def test_shards_and_keys(self):
        shards = [ResumableSampler(range(10), seed=0, num_replicas=2, rank=r, with_epoch=True) for r in (0, 1)]
        for s in shards:
            s.set_epoch(4)
        keys = [list(s) for s in shards]
        self.assertEqual({e for k in keys for e, _ in k}, {4})
        self.assertEqual(sorted(i for k in keys for _, i in k), list(range(10)))
        with self.assertRaisesRegex(ValueError, "start must be in"):
            shards[0].set_start(6)


class TestSeededDataset(unittest.TestCase):
    def test_item_randomness_depends_on_seed_epoch_index_only(self):
        ds = seeded_set()
        first = ds[(1, 4)]
        ds[(1, 5)], ds[(2, 4)]  # other draws in between change nothing
        self.assertEqual(ds[(1, 4)], first)
        self.assertNotEqual(ds[(2, 4)]["noise"], first["noise"])
        self.assertNotEqual(seeded_set(seed=4)[(1, 4)]["noise"], first["noise"])
        self.assertEqual(first["value"], 4.0)
        self.assertEqual(len(ds), 10)
        self.assertNotEqual(item_seed(0, 1, 2), item_seed(0, 2, 1))
        with self.assertRaisesRegex(ValueError, "index or"):
            ds[(1, 2, 3)]
        with self.assertRaisesRegex(ValueError, "map-style"):
            SeededDataset(iter([]))

    @parameterized.expand([(0,), (2,)])
    def test_resumed_stream_equals_uninterrupted_with_any_workers(self, workers):
        ds = seeded_set()
        reference = stream(*seeded_loader(ds, workers), epochs=range(1, 4))
        part = stream(*seeded_loader(ds, workers), epochs=range(1, 2))[:6]  # epoch 1 stopped after 3 batches
        rest = stream(*seeded_loader(ds, workers), epochs=range(1, 4), start=6)
        self.assertEqual(part + rest, reference)
        self.assertEqual(len({noise for _, noise in reference}), len(reference))  # fresh noise per epoch and item
        self.assertEqual(reference, stream(*seeded_loader(ds, 0), epochs=range(1, 4)))  # as without workers


def seeded_loader(ds: SeededDataset, workers: int) -> tuple[DataLoader, ResumableSampler]:
    sampler = ResumableSampler(ds, seed=5, with_epoch=True)
    kwargs = {"num_workers": workers, "persistent_workers": True} if workers else {}
    return DataLoader(ds, batch_size=2, sampler=sampler, drop_last=True, **kwargs), sampler


class TestSeededLesions(TmpDirTestCase):
    def test_lesion_transform_is_reseeded_through_wrappers(self):
        write_films(self.tmp, n=3)
        inner = Dataset(pretraining_records(self.tmp), pretraining_transforms(32))
        wrapped = SeededDataset(torch.utils.data.Subset(inner, [0, 1, 2]), seed=0)
        a, b = wrapped[(1, 2)], wrapped[(1, 2)]
        torch.testing.assert_close(a["lesion_mask"], b["lesion_mask"])
        self.assertFalse(torch.equal(a["lesion_mask"], wrapped[(2, 2)]["lesion_mask"]))


if __name__ == "__main__":
    unittest.main()
