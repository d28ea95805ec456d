from __future__ import annotations

import unittest

import torch

from monai_afire.losses import AnomalyRemovalRestorationLoss


class TestAnomalyRemovalRestorationLoss(unittest.TestCase):
    def test_plain_mse(self):
        rec, clean = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
        loss = AnomalyRemovalRestorationLoss()(rec, clean)
        torch.testing.assert_close(loss, torch.nn.functional.mse_loss(rec, clean))

    def test_lesion_weight(self):
        rec, clean = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
        mask = torch.tensor([[[[0.3, 0.0], [0.0, 0.0]]]])
        loss = AnomalyRemovalRestorationLoss(lesion_weight=3.0)(rec, clean, mask)
        torch.testing.assert_close(loss, torch.tensor((4.0 + 1 + 1 + 1) / 4))
        loss3d = AnomalyRemovalRestorationLoss(lesion_weight=3.0)(
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


if __name__ == "__main__":
    unittest.main()
