from __future__ import annotations

import unittest

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from parameterized import parameterized

from monai_afire.metrics import cohesion_metrics, evaluate_cohesion, token_anatomy_labels, token_embeddings
from monai_afire.networks import AFiReEncoder
from monai_afire.transforms import patch_labels


class AngleEncoder(nn.Module):
    """Toy encoder: each patch's mean intensity v becomes the unit token (cos v, sin v)."""

    patch_size = (4, 4)

    def forward(self, x):
        v = F.avg_pool2d(x, 4).flatten(1) * (np.pi / 2)
        return torch.stack([v.cos(), v.sin()], dim=-1)


def _anatomy(batch=3):
    """Patch-aligned label map 16 x 16 with labels 0..3 by quadrant; images equal the labels / 3."""
    a = torch.zeros(batch, 1, 16, 16, dtype=torch.long)
    a[:, :, :8, 8:] = 1
    a[:, :, 8:, :8] = 2
    a[:, :, 8:, 8:] = 3
    return a


class TestTokenAnatomyLabels(unittest.TestCase):
    def test_majority_label(self):
        a = torch.zeros(1, 1, 4, 8, dtype=torch.long)
        a[0, 0, :, :3] = 7  # 12 of 16 pixels of patch 0 are 7
        a[0, 0, :2, 4:] = 2  # half of patch 1: tie with 0 -> lower label wins
        a[0, 0, :3, 4:] = 2  # 12 of 16: 2 wins
        np.testing.assert_array_equal(token_anatomy_labels(a, 4), [[7, 2]])

    def test_raster_order_matches_patch_labels(self):
        a = torch.zeros(2, 1, 12, 8, dtype=torch.long)
        a[0, 0, 4:8, 4:8] = 1
        a[1, 0, 8:12, 0:4] = 1
        np.testing.assert_array_equal(token_anatomy_labels(a, 4).bool(), patch_labels(a.float(), 4))

    def test_channel_masks_and_3d(self):
        masks = torch.zeros(1, 2, 8, 8)
        masks[0, 0, :4] = 1
        masks[0, 1, 4:, 4:] = 1
        np.testing.assert_array_equal(token_anatomy_labels(masks, 4), [[1, 1, 0, 2]])
        vol = torch.zeros(1, 1, 4, 4, 8, dtype=torch.long)
        vol[..., 4:] = 5
        np.testing.assert_array_equal(token_anatomy_labels(vol, 4), [[0, 5]])

    @parameterized.expand(
        [
            ("ndim", torch.zeros(4, 4), 2),
            ("divide", torch.zeros(1, 1, 6, 6), 4),
            ("float", torch.full((1, 1, 4, 4), 0.5), 2),
            ("negative", torch.full((1, 1, 4, 4), -1), 2),
        ]
    )
    def test_bad_input(self, _, anatomy, patch):
        with self.assertRaises(ValueError):
            token_anatomy_labels(anatomy, patch)


class TestCohesionMetrics(unittest.TestCase):
    def test_identical_embeddings_per_anatomy(self):
        rng = np.random.default_rng(0)
        labels = np.repeat(np.arange(4), 30)
        centres = rng.normal(size=(4, 8))
        m = cohesion_metrics(centres[labels], labels, groups=np.tile(np.arange(6), 20))
        self.assertGreater(m["silhouette"], 0.999)
        self.assertEqual((m["nmi"], m["ari"], m["knn_accuracy"]), (1.0, 1.0, 1.0))
        self.assertEqual((m["num_tokens"], m["num_labels"]), (120, 4))

    def test_random_embeddings_score_low(self):
        rng = np.random.default_rng(1)
        labels = np.repeat(np.arange(4), 40)
        m = cohesion_metrics(rng.normal(size=(160, 8)), labels)
        self.assertLess(m["silhouette"], 0.1)
        self.assertLess(m["ari"], 0.2)
        self.assertLess(m["knn_accuracy"], 0.6)

    def test_ignore_subsample_tsne(self):
        rng = np.random.default_rng(2)
        labels = np.repeat(np.arange(3), 40)
        x = np.eye(3)[labels] + 0.01 * rng.normal(size=(120, 3))
        m = cohesion_metrics(
            torch.as_tensor(x),
            torch.as_tensor(labels),
            ignore_labels=(0,),
            max_samples=50,
            tsne=True,
            tsne_kwargs={"max_iter": 250, "method": "exact"},
        )
        self.assertEqual(m["num_tokens"], 50)
        self.assertEqual(m["num_labels"], 2)
        self.assertEqual(m["embedding_2d"].shape, (50, 2))
        self.assertEqual(set(m["embedding_labels"].tolist()), {1, 2})
        self.assertEqual(m["ari"], 1.0)

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "at least 2"):
            cohesion_metrics(np.zeros((5, 2)), np.zeros(5))
        with self.assertRaisesRegex(ValueError, "embeddings"):
            cohesion_metrics(np.zeros((5, 2)), np.zeros(4))


class TestTokenEmbeddings(unittest.TestCase):
    def _loader(self):
        a = _anatomy()
        return [{"image": a.float() / 3, "anatomy": a}, {"image": a[:1].float() / 3, "anatomy": a[:1]}]

    def test_known_encoder_gives_perfect_cohesion(self):
        x, y, g = token_embeddings(AngleEncoder(), self._loader())
        self.assertEqual(x.shape, (4 * 16, 2))
        np.testing.assert_array_equal(np.bincount(y), [16, 16, 16, 16])
        np.testing.assert_array_equal(np.unique(g), [0, 1, 2, 3])
        m = evaluate_cohesion(AngleEncoder(), self._loader())
        self.assertGreater(m["silhouette"], 0.999)
        self.assertEqual((m["nmi"], m["ari"], m["knn_accuracy"]), (1.0, 1.0, 1.0))

    def test_afire_encoder_restores_mode(self):
        encoder = AFiReEncoder(img_size=16, patch_size=4, hidden_size=16, num_layers=1, num_heads=2, class_token=True)
        encoder.train()
        x, y, _ = token_embeddings(encoder, self._loader(), max_batches=1)
        self.assertEqual(x.shape, (3 * 16, 16))
        self.assertEqual(y.shape, (3 * 16,))
        self.assertTrue(encoder.training)

    def test_missing_key_and_size_mismatch(self):
        with self.assertRaisesRegex(KeyError, "anatomy"):
            token_embeddings(AngleEncoder(), [{"image": torch.zeros(1, 1, 16, 16)}])
        bad = [{"image": torch.zeros(1, 1, 16, 16), "anatomy": torch.zeros(1, 1, 8, 8, dtype=torch.long)}]
        with self.assertRaisesRegex(ValueError, "anatomy tokens"):
            token_embeddings(AngleEncoder(), bad)


if __name__ == "__main__":
    unittest.main()
