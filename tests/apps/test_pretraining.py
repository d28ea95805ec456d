"""The pre-training data chain: a flat Compose that MONAI's CacheDataset caches up to the lesion."""

from __future__ import annotations

import torch
from monai.data import CacheDataset
from monai.transforms import Compose

from monai_afire.apps import pretraining_transforms
from monai_afire.transforms import RandSyntheticLesiond
from tests.tiny import TmpDirTestCase, write_films


class TestPretrainingTransforms(TmpDirTestCase):
    def test_cache_dataset_caches_the_prepared_film(self):
        write_films(self.tmp, n=3, size=40)
        files = [{"image": str(p)} for p in sorted(self.tmp.glob("*.png"))]
        transform = pretraining_transforms(32)
        self.assertFalse(any(isinstance(t, Compose) for t in transform.transforms), "nested Compose: nothing cached")
        dataset = CacheDataset(files, transform=transform, progress=False)
        cached = dataset._cache[0]
        self.assertIsInstance(cached["image"], torch.Tensor)  # prepared, not the file path
        self.assertEqual(tuple(cached["image"].shape), (1, 32, 32))
        self.assertNotIn("lesion_mask", cached)  # the lesion is drawn at every access
        first, second = dataset[0], dataset[0]
        torch.testing.assert_close(first["clean"], second["clean"])
        self.assertFalse(torch.equal(first["lesion_mask"], second["lesion_mask"]))
        self.assertEqual(sum(isinstance(t, RandSyntheticLesiond) for t in transform.transforms), 1)
