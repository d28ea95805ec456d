from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from monai_afire.losses import IMAGENET_STD, AnomalyRemovalRestorationLoss, normalized_scale

MEAN_INVERSE_VARIANCE = sum(1 / s**2 for s in IMAGENET_STD) / 3  # 19.6...


def imagenet_normalised(x):
    """The authors' input: a grey film copied to 3 channels, then ImageNet-normalised (means and stds)."""
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, *[1] * (x.ndim - 2))
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, *[1] * (x.ndim - 2))
    rgb = x.expand(-1, 3, *x.shape[2:]) if x.shape[1] == 1 else x
    return (rgb - mean) / std


class TestAnomalyRemovalRestorationLoss(unittest.TestCase):
    def test_plain_mse(self):
        rec, clean = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
        loss = AnomalyRemovalRestorationLoss(target="raw")(rec, clean)
        torch.testing.assert_close(loss, torch.nn.functional.mse_loss(rec, clean))

    @parameterized.expand([((2, 1, 8, 8),), ((1, 1, 4, 6, 5),)])
    def test_normalized_is_raw_times_mean_inverse_variance(self, shape):
        rec, clean = torch.rand(*shape), torch.rand(*shape)
        raw = AnomalyRemovalRestorationLoss(target="raw")(rec, clean)
        normalized = AnomalyRemovalRestorationLoss()(rec, clean)  # the default is the authors' target
        self.assertAlmostEqual(MEAN_INVERSE_VARIANCE, 19.6, delta=0.05)
        torch.testing.assert_close(normalized, raw * MEAN_INVERSE_VARIANCE, rtol=1e-6, atol=0)
        torch.testing.assert_close(normalized_scale(1), torch.tensor([MEAN_INVERSE_VARIANCE], dtype=torch.float64))
        # the same as the MSE of the authors' normalised 3-channel images
        authors = torch.nn.functional.mse_loss(imagenet_normalised(rec), imagenet_normalised(clean))
        torch.testing.assert_close(normalized, authors, rtol=1e-5, atol=0)

    def test_normalized_rgb_weights_each_channel(self):
        rec, clean = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
        loss = AnomalyRemovalRestorationLoss(target="normalized")(rec, clean)
        authors = torch.nn.functional.mse_loss(imagenet_normalised(rec), imagenet_normalised(clean))
        torch.testing.assert_close(loss, authors, rtol=1e-5, atol=0)
        with self.assertRaisesRegex(ValueError, "got 2"):
            AnomalyRemovalRestorationLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))

    @parameterized.expand([("raw", 1.0), ("normalized", MEAN_INVERSE_VARIANCE)])
    def test_lesion_weight(self, target, scale):
        rec, clean = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
        mask = torch.tensor([[[[0.3, 0.0], [0.0, 0.0]]]])
        loss = AnomalyRemovalRestorationLoss(lesion_weight=3.0, target=target)(rec, clean, mask)
        torch.testing.assert_close(loss, torch.tensor(scale * (4.0 + 1 + 1 + 1) / 4))
        loss3d = AnomalyRemovalRestorationLoss(lesion_weight=3.0, target=target)(
            rec.unsqueeze(-1), clean.unsqueeze(-1), mask.unsqueeze(-1)
        )
        torch.testing.assert_close(loss3d, loss)

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "same shape"):
            AnomalyRemovalRestorationLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
        with self.assertRaisesRegex(ValueError, "lesion_mask"):
            AnomalyRemovalRestorationLoss(1.0)(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
        with self.assertRaises(ValueError):
            AnomalyRemovalRestorationLoss(-1.0)
        with self.assertRaisesRegex(ValueError, "target"):
            AnomalyRemovalRestorationLoss(target="imagenet")


if __name__ == "__main__":
    unittest.main()
