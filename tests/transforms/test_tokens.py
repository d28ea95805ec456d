import unittest

import torch
from monai.networks.blocks import PatchEmbeddingBlock
from parameterized import parameterized

from monai_afire.transforms import patch_labels


class TestPatchLabels(unittest.TestCase):
    @parameterized.expand([(2, (32, 48)), (3, (16, 32, 16))])
    def test_matches_patch_embedding_order(self, dims, spatial):
        """A mask that covers one patch marks the token whose embedding that patch alone changes."""
        patch = 8
        embed = PatchEmbeddingBlock(
            1, spatial, patch, 16, 2, proj_type="conv", pos_embed_type="none", spatial_dims=dims
        )
        base = torch.zeros(1, 1, *spatial)
        grid = [s // patch for s in spatial]
        target = [g - 1 if i == 0 else 1 for i, g in enumerate(grid)]
        mask = torch.zeros_like(base)
        region = tuple(slice(t * patch, (t + 1) * patch) for t in target)
        mask[(0, 0) + region] = 1.0
        labels = patch_labels(mask, patch)
        with torch.no_grad():
            changed = (embed(base + mask) - embed(base)).abs().sum(-1)[0] > 0
        self.assertEqual(labels.shape, (1, len(changed)))
        self.assertTrue(torch.equal(labels[0], changed))
        self.assertEqual(int(labels.sum()), 1)

    def test_threshold(self):
        mask = torch.zeros(2, 1, 16, 16)
        mask[0, 0, :2, :2] = 1.0  # covers 4 of 64 pixels of the first patch: mean 1/16
        self.assertTrue(patch_labels(mask, 8)[0, 0])
        self.assertFalse(patch_labels(mask, 8, threshold=0.1)[0, 0])
        self.assertFalse(patch_labels(mask, 8)[1].any())

    @parameterized.expand([((1, 16, 16), 8), ((1, 2, 16, 16), 8), ((1, 1, 16, 16), 5)])
    def test_bad_input(self, shape, patch):
        with self.assertRaises(ValueError):
            patch_labels(torch.zeros(shape), patch)


if __name__ == "__main__":
    unittest.main()
