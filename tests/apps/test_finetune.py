from __future__ import annotations

import unittest

import numpy as np
import torch
import torch.nn as nn
from monai.networks.nets import DenseNet121
from parameterized import parameterized

from monai_afire.apps import finetune_classifier, image_batches, predict_scores, train_classifier, training_prevalence
from monai_afire.networks import AFiReClassifier, AFiReEncoder


def _images(n: int, seed: int, size: int = 32):
    """Noise images; class 0 adds a bright square top-left, class 1 bottom-right."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.rand(n, 1, size, size, generator=g)
    y = (torch.rand(n, 2, generator=g) < 0.5).float()
    y[0], y[1] = 1, 0
    h = size // 4
    x[:, :, :h, :h] += 0.6 * y[:, 0, None, None, None]
    x[:, :, -h:, -h:] += 0.6 * y[:, 1, None, None, None]
    return x, y


def _vit() -> AFiReEncoder:
    torch.manual_seed(0)
    return AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=32, num_layers=2, num_heads=2, mlp_dim=64)


class _ConvTokens(nn.Module):
    """A small CNN returning its feature map as tokens (B, H*W, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2))

    def forward(self, x):
        return self.conv(x).flatten(2).transpose(1, 2)


class TestFinetune(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.train = _images(64, 0)
        cls.val = _images(32, 1)

    def test_vit_beats_chance_and_keeps_the_best_epoch(self):
        encoder = _vit()
        before = {k: v.clone() for k, v in encoder.state_dict().items()}
        copies, calls = {}, []

        def keep(epoch, model, auroc):
            copies[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

        def augment(x):
            calls.append(x.shape[0])
            return x

        model = finetune_classifier(
            encoder, self.train, self.val, epochs=5, lr=3e-3, batch_size=16, callback=keep, augment=augment
        )
        self.assertIsInstance(model, AFiReClassifier)
        self.assertFalse(model.training)
        history = model.training_history
        self.assertEqual(len(history["val_auroc"]), 5)
        self.assertGreater(history["best_val_auroc"], 0.75)
        self.assertEqual(history["best_val_auroc"], max(history["val_auroc"]))
        best = copies[history["best_epoch"]]
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, best[key])
        # a different epoch's weights differ, so the check above can fail
        other = (history["best_epoch"] + 1) % 5
        self.assertFalse(all(torch.equal(copies[other][k], v) for k, v in best.items()))
        for key, value in encoder.state_dict().items():
            torch.testing.assert_close(value, before[key], msg=f"the input encoder changed at {key}")
        self.assertEqual(calls, [16] * 20)
        scores = predict_scores(model, self.val[0])
        self.assertEqual((scores.shape, scores.dtype), ((32, 2), np.float64))

    def test_seeded(self):
        kwargs = {"epochs": 1, "lr": 1e-3, "batch_size": 32}
        a = predict_scores(finetune_classifier(_vit(), self.train, self.val, seed=3, **kwargs), self.val[0])
        b = predict_scores(finetune_classifier(_vit(), self.train, self.val, seed=3, **kwargs), self.val[0])
        c = predict_scores(finetune_classifier(_vit(), self.train, self.val, seed=4, **kwargs), self.val[0])
        np.testing.assert_array_equal(a, b)
        self.assertFalse(np.array_equal(a, c))

    def test_head_bias_starts_at_the_prevalence(self):
        model = finetune_classifier(_vit(), self.train, self.val, epochs=1, lr=1e-12, batch_size=64, warmup_epochs=0)
        expected = torch.logit(torch.tensor(training_prevalence(self.train[1])))
        torch.testing.assert_close(model.head.bias.detach(), expected, atol=1e-6, rtol=0)

    def test_token_cnn_and_frozen_encoder(self):
        model = finetune_classifier(_ConvTokens(), self.train, self.val, epochs=2, lr=1e-2, batch_size=16)
        self.assertEqual(model.encoder.hidden_size, 16)
        self.assertEqual(predict_scores(model, self.val[0]).shape, (32, 2))
        encoder = _ConvTokens()
        frozen = finetune_classifier(encoder, self.train, self.val, epochs=1, lr=1e-2, batch_size=16,
                                     freeze_encoder=True)  # fmt: skip
        for key, value in encoder.state_dict().items():
            torch.testing.assert_close(frozen.encoder.network.state_dict()[key], value)

    def test_densenet121_with_the_same_loop(self):
        torch.manual_seed(0)
        net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2)
        x, y = self.train[0][:18], self.train[1][:18]  # 18 = 16 + 2: batches of 16 and 2
        model = train_classifier(
            net, (x, y), self.val, epochs=1, lr=1e-3, batch_size=16, head=net.class_layers.out, layer_decay=0.75
        )
        self.assertIs(model, net)
        self.assertEqual(len(model.training_history["val_auroc"]), 1)
        scores = predict_scores(model, self.val[0], batch_size=8)
        self.assertEqual(scores.shape, (32, 2))
        self.assertTrue(np.all((scores > 0) & (scores < 1)))

    def test_predict_scores_on_batches(self):
        model = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 2))
        x = self.val[0]
        expected = predict_scores(model, x)
        batches = list(image_batches(x, 10))
        self.assertEqual([b.shape[0] for b in batches], [10, 10, 10, 2])
        np.testing.assert_allclose(predict_scores(model, [{"image": b} for b in batches]), expected, rtol=1e-6)
        np.testing.assert_allclose(predict_scores(model, [(b, None) for b in batches]), expected, rtol=1e-6)

    @parameterized.expand(
        [
            ("labels", lambda t, v: ((t[0], t[1][:10]), v), r"train\[1\] must have shape \(N, C\) = \(64, C\)"),
            ("binary", lambda t, v: ((t[0], 0.5 * t[1]), v), "binary"),
            ("val_undefined", lambda t, v: (t, (v[0], torch.zeros_like(v[1]))), "no class with both"),
            ("val_shape", lambda t, v: (t, (v[0][:, :, :16], v[1])), "differ in shape"),
            ("pair", lambda t, v: (t[0], v), "pair"),
        ]
    )
    def test_bad_input(self, _, make, message):
        train, val = make(self.train, self.val)
        with self.assertRaisesRegex(ValueError, message):
            train_classifier(nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 2)), train, val, epochs=1, lr=1e-3,
                             batch_size=8)  # fmt: skip

    def test_wrong_output_shape(self):
        with self.assertRaisesRegex(ValueError, r"expected logits \(16, 2\)"):
            train_classifier(nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 3)), self.train, self.val, epochs=1,
                             lr=1e-3, batch_size=16)  # fmt: skip


if __name__ == "__main__":
    unittest.main()
