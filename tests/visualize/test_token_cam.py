from __future__ import annotations

import unittest

import torch
import torch.nn as nn
import torch.nn.functional as F
from parameterized import parameterized

from monai_afire.metrics import pointing_game
from monai_afire.networks import AFiReClassifier, AFiReEncoder
from monai_afire.transforms import patch_labels
from monai_afire.visualize import TokenGradCAM, default_target_layer, tokens_to_grid, unit_normalizer

ENCODER = {"arch": "vit_tiny", "img_size": 16, "patch_size": 4, "hidden_size": 16, "num_layers": 2, "num_heads": 2}


class PatchMeanClassifier(nn.Module):
    """Toy ViT-like classifier: tokens are patch means (plus a class token); the score is their mean."""

    def __init__(self):
        super().__init__()
        self.tokens = nn.Identity()
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x):
        patches = F.avg_pool2d(x, 4).flatten(2).transpose(1, 2)  # (B, 16, 1) in raster order
        cls = torch.zeros(x.shape[0], 1, 1)
        tokens = self.tokens(torch.cat([cls, patches], dim=1))
        return self.weight * tokens[:, 1:].mean(1)


class TestTokensToGrid(unittest.TestCase):
    def test_order_matches_patch_labels(self):
        mask = torch.zeros(1, 1, 12, 8)
        mask[0, 0, 4:8, 4:8] = 1
        tokens = patch_labels(mask, 4).float().unsqueeze(-1)  # (1, 6, 1)
        with_cls = torch.cat([torch.full((1, 1, 1), 9.0), tokens], dim=1)
        grid = tokens_to_grid(with_cls, (3, 2))
        torch.testing.assert_close(grid, F.avg_pool2d(mask, 4))

    def test_bad_tokens(self):
        with self.assertRaises(ValueError):
            tokens_to_grid(torch.zeros(1, 5, 2), (3, 2))

    def test_unit_normalizer(self):
        out = unit_normalizer(torch.tensor([[[[2.0, 4.0]]], [[[1.0, 1.0]]]]))
        torch.testing.assert_close(out, torch.tensor([[[[0.0, 1.0]]], [[[0.0, 0.0]]]]))


class TestTokenGradCAM(unittest.TestCase):
    def test_known_answer_localises_bright_patch(self):
        x = torch.zeros(2, 1, 16, 16)
        x[0, 0, 4:8, 8:12] = 1.0
        x[1, 0, 12:16, 0:4] = 1.0
        cam = TokenGradCAM(PatchMeanClassifier(), target_layers="tokens", grid_size=(4, 4))
        raw = cam.compute_map(x, class_idx=0)
        self.assertEqual(raw.shape, (2, 1, 4, 4))
        self.assertEqual(int(raw[0].flatten().argmax()), 6)
        self.assertEqual(int(raw[1].flatten().argmax()), 12)
        maps = cam(x, class_idx=0)
        self.assertEqual(maps.shape, (2, 1, 16, 16))
        self.assertTrue(pointing_game(maps[0, 0], [[8, 4, 12, 8]]))
        self.assertTrue(pointing_game(maps[1, 0], [[0, 12, 4, 16]]))
        self.assertAlmostEqual(float(maps.max()), 1.0)
        self.assertFalse(maps.requires_grad)

    @parameterized.expand(
        [(p, m, w) for p in ("mean", "cls") for m in ("finetune", "linear_probe") for w in ("gradcam", "layercam")]
    )
    def test_afire_classifier(self, pooling, mode, weighting):
        torch.manual_seed(0)
        model = AFiReClassifier(AFiReEncoder(**ENCODER, class_token=pooling == "cls"), 3, pooling=pooling, mode=mode)
        model.train()
        cam = TokenGradCAM(model, weighting=weighting)
        target = "encoder.blocks.0" if pooling == "cls" else "encoder.blocks.1"
        self.assertEqual(cam.nn_module.target_layers, (target,))
        self.assertEqual(default_target_layer(model), target)
        maps = cam(torch.rand(2, 1, 16, 16), class_idx=2)
        self.assertEqual(maps.shape, (2, 1, 16, 16))
        self.assertTrue(bool(((maps >= 0) & (maps <= 1)).all()))
        self.assertGreater(float(cam.nn_module.gradients[target].abs().sum()), 0.0)
        self.assertTrue(model.training)
        if mode == "linear_probe":
            self.assertFalse(model.encoder.training)
            self.assertFalse(any(p.requires_grad for p in model.encoder.parameters()))

    def test_trained_classifier_points_at_the_finding(self):
        """A tiny ViT trained to detect one bright patch: the map's top token is that patch far above chance."""
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)

        def batch(n):
            x = 0.1 * torch.rand(n, 1, 16, 16, generator=gen)
            y = (torch.rand(n, 1, generator=gen) < 0.5).float()
            token = torch.randint(0, 16, (n,), generator=gen)
            for i in torch.nonzero(y[:, 0]).flatten().tolist():
                r, c = divmod(int(token[i]), 4)
                x[i, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 1.0
            return x, y, token

        model = AFiReClassifier(AFiReEncoder(**ENCODER), 1)
        optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
        for _ in range(60):
            x, y, _ = batch(32)
            loss = F.binary_cross_entropy_with_logits(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        x, y, token = batch(32)
        positives = torch.nonzero(y[:, 0]).flatten()
        with torch.no_grad():
            self.assertGreaterEqual(float(((model(x) > 0).float() == y).float().mean()), 0.9)
        for weighting in ("gradcam", "layercam"):
            raw = TokenGradCAM(model, weighting=weighting).compute_map(x, class_idx=0).flatten(1)
            hit_rate = float((raw[positives].argmax(1) == token[positives]).float().mean())
            self.assertGreaterEqual(hit_rate, 0.5, weighting)  # chance is 1 / 16

    def test_bad_target(self):
        model = AFiReClassifier(AFiReEncoder(**ENCODER), 2)
        with self.assertRaisesRegex(ValueError, "no layer named"):
            TokenGradCAM(model, target_layers="encoder.blocks.9.norm1")
        with self.assertRaisesRegex(ValueError, "grid_size"):
            TokenGradCAM(PatchMeanClassifier(), target_layers="tokens")
        with self.assertRaisesRegex(ValueError, "weighting"):
            TokenGradCAM(model, weighting="scorecam")


if __name__ == "__main__":
    unittest.main()
