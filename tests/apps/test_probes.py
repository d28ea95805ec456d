from __future__ import annotations

import math
import unittest

import numpy as np
import torch
import torch.nn as nn
from parameterized import parameterized
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, TensorDataset

from monai_afire.apps import (
    AttentionPoolingProbe,
    LinearProbe,
    encode_tokens,
    fit_attention_probe,
    knn_scores,
    pool_tokens,
    predict_scores,
    select_knn_k,
)
from monai_afire.metrics import mean_auroc
from monai_afire.networks import AFiReEncoder


def _encoder(class_token: bool = False) -> AFiReEncoder:
    torch.manual_seed(0)
    return AFiReEncoder(
        "vit_tiny", img_size=16, patch_size=4, hidden_size=16, num_layers=1, num_heads=2, class_token=class_token
    )


def _features(n: int, seed: int, signal: float, num_classes: int = 3, dim: int = 20):
    """Features whose first ``num_classes`` dimensions carry the labels with the given signal strength."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, num_classes)) < 0.4).astype(float)
    y[0], y[1] = 1, 0
    x = rng.normal(size=(n, dim))
    x[:, :num_classes] += signal * (2 * y - 1)
    return x, y


class TestEncodeTokens(unittest.TestCase):
    def setUp(self):
        self.images = torch.rand(5, 1, 16, 16)

    def test_tensor_input(self):
        encoder = _encoder()
        expected = encoder.eval()(self.images).detach()
        encoder.train()
        tokens = encode_tokens(encoder, self.images, batch_size=2)
        self.assertEqual(tuple(tokens.shape), (5, 16, 16))
        self.assertEqual((tokens.dtype, tokens.device.type), (torch.float32, "cpu"))
        torch.testing.assert_close(tokens, expected)
        self.assertTrue(encoder.training, "the encoder's train mode is restored")
        self.assertFalse(tokens.requires_grad)

    @parameterized.expand([("dicts",), ("tuples",), ("loader",), ("numpy",)])
    def test_batch_iterables(self, kind):
        encoder = _encoder()
        expected = encode_tokens(encoder, self.images)
        if kind == "dicts":
            batches = [{"image": self.images[:3], "label": 0}, {"image": self.images[3:]}]
        elif kind == "tuples":
            batches = [(self.images[:4], torch.zeros(4)), (self.images[4:], torch.zeros(1))]
        elif kind == "loader":
            batches = DataLoader(TensorDataset(self.images, torch.zeros(5)), batch_size=2)
        else:
            batches = self.images.numpy()
        torch.testing.assert_close(encode_tokens(encoder, batches), expected)

    def test_tuple_output_takes_tokens(self):
        encoder = _encoder(class_token=True)
        tokens = encode_tokens(encoder, self.images)
        torch.testing.assert_close(tokens, encoder.eval()(self.images)[0].detach())
        self.assertEqual(tuple(tokens.shape), (5, 16, 16))

    def test_bad_encoder_and_batches(self):
        with self.assertRaisesRegex(ValueError, r"\(B, L, D\)"):
            encode_tokens(nn.Flatten(), self.images)
        with self.assertRaisesRegex(ValueError, "'image'"):
            encode_tokens(_encoder(), [{"img": self.images}])
        with self.assertRaisesRegex(ValueError, "no batch"):
            encode_tokens(_encoder(), [])
        with self.assertRaisesRegex(ValueError, r"\(N, C, \*spatial\)"):
            encode_tokens(_encoder(), torch.rand(5, 16))


class TestPoolTokens(unittest.TestCase):
    tokens = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [2.0, 5.0]]])  # (1, 3, 2)

    @parameterized.expand(
        [
            ("mean", [[2.0, 1.0]]),
            ("max", [[3.0, 5.0]]),
            ("mean_max", [[2.0, 1.0, 3.0, 5.0]]),
        ]
    )
    def test_modes(self, mode, expected):
        torch.testing.assert_close(pool_tokens(self.tokens, mode), torch.tensor(expected))

    def test_numpy_and_bad_input(self):
        torch.testing.assert_close(pool_tokens(self.tokens.numpy(), "mean"), torch.tensor([[2.0, 1.0]]))
        with self.assertRaisesRegex(ValueError, "mode"):
            pool_tokens(self.tokens, "median")
        with self.assertRaisesRegex(ValueError, r"\(N, L, D\)"):
            pool_tokens(self.tokens[0], "mean")


class TestLinearProbe(unittest.TestCase):
    def test_separable_data_reaches_one(self):
        x, y = _features(300, 0, signal=4.0, dim=6)
        probe = LinearProbe().fit(x[:100], y[:100], x[100:200], y[100:200])
        scores = probe.predict(x[200:])
        self.assertEqual(scores.shape, (100, 3))
        self.assertEqual(mean_auroc(y[200:], scores), 1.0)
        self.assertTrue(np.all((scores >= 0) & (scores <= 1)))
        self.assertEqual(set(probe.val_auroc), set(probe.cs))

    def test_noise_is_at_chance(self):
        x, y = _features(900, 1, signal=0.0)
        probe = LinearProbe().fit(x[:300], y[:300], x[300:600], y[300:600])
        self.assertLess(abs(mean_auroc(y[600:], probe.predict(x[600:])) - 0.5), 0.06)

    def test_c_is_chosen_on_validation(self):
        x, y = _features(200, 2, signal=0.3, dim=40)
        x_val, y_val = x[100:], y[100:]
        # a "test" set on which every C ranks in reverse: it prefers the C that validation ranks last
        x_test, y_test = x_val, 1 - y_val
        probe = LinearProbe().fit(x[:100], y[:100], x_val, y_val)
        val = probe.val_auroc
        self.assertEqual(probe.best_c, max(probe.cs, key=lambda c: (val[c], -c)))
        worst = min(probe.cs, key=lambda c: val[c])
        self.assertNotEqual(worst, probe.best_c)
        self.assertGreater(val[probe.best_c] - val[worst], 1e-3)
        self.assertAlmostEqual(mean_auroc(y_test, probe.predict(x_test)), 1 - val[probe.best_c])
        self.assertAlmostEqual(mean_auroc(y_val, probe.predict(x_val)), val[probe.best_c])

    def test_fit_matches_sklearn_at_the_chosen_c(self):
        from sklearn.linear_model import LogisticRegression

        x, y = _features(200, 3, signal=0.8)
        probe = LinearProbe(cs=(0.01, 0.1), tol=1e-8).fit(x[:120], y[:120], x[120:], y[120:])
        z = (x - x[:120].mean(0)) / x[:120].std(0)
        ref = LogisticRegression(C=probe.best_c, max_iter=1000, tol=1e-8).fit(z[:120], y[:120, 0])
        np.testing.assert_allclose(probe.decision_function(x)[:, 0], ref.decision_function(z), atol=1e-5)

    def test_one_valued_training_class(self):
        x, y = _features(120, 4, signal=3.0)
        y_train = y[:60].copy()
        y_train[:, 1] = 0
        probe = LinearProbe(cs=(0.1, 1.0)).fit(x[:60], y_train, x[60:], y[60:])
        self.assertEqual(probe.constant_classes, [1])
        scores = probe.predict(x[60:])
        self.assertEqual(np.unique(scores[:, 1]).size, 1)
        self.assertAlmostEqual(float(scores[0, 1]), 0.5 / 61)
        self.assertGreater(roc_auc_score(y[60:, 0], scores[:, 0]), 0.95)

    def test_bad_input(self):
        x, y = _features(40, 5, signal=1.0)
        with self.assertRaisesRegex(ValueError, r"x_val must be features \(N, 20\)"):
            LinearProbe().fit(x, y, x[:, :5], y)
        with self.assertRaisesRegex(ValueError, r"y_val must be labels \(40, 3\)"):
            LinearProbe().fit(x, y, x, y[:, :2])
        with self.assertRaisesRegex(ValueError, "both labels"):
            LinearProbe().fit(x, y, x, np.zeros_like(y))
        with self.assertRaisesRegex(ValueError, "binary"):
            LinearProbe().fit(x, y * 0.5, x, y)
        with self.assertRaisesRegex(ValueError, "positive"):
            LinearProbe(cs=(0.0, 1.0))
        with self.assertRaisesRegex(RuntimeError, "fit"):
            LinearProbe().predict(x)


def _token_data(n: int, seed: int, length: int = 16, dim: int = 32):
    """Noise tokens; a positive image of class c has one token, at a random position, pushed along axis c."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(n, length, dim, generator=g)
    y = (torch.rand(n, 2, generator=g) < 0.5).float()
    y[0], y[1] = 1, 0
    where = torch.randint(0, length, (n, 2), generator=g)
    for c in range(2):
        tokens[torch.arange(n), where[:, c], c] += 6.0 * y[:, c]
    return tokens, y


class TestAttentionPoolingProbe(unittest.TestCase):
    def test_shapes_and_maps(self):
        probe = AttentionPoolingProbe(8, 3, num_heads=2, num_queries=2, class_prior=[0.5, 0.2, 0.9])
        tokens = torch.randn(4, 12, 8)
        self.assertEqual(tuple(probe(tokens).shape), (4, 3))
        maps = probe.attention(tokens)
        self.assertEqual(tuple(maps.shape), (4, 4, 12))
        torch.testing.assert_close(maps.sum(-1), torch.ones(4, 4))
        torch.testing.assert_close(probe.head.bias, torch.log(torch.tensor([1.0, 0.25, 9.0])))
        with self.assertRaisesRegex(ValueError, r"\(B, L, 8\)"):
            probe(torch.randn(4, 12, 6))
        positional = AttentionPoolingProbe(8, 3, num_positions=12)
        self.assertEqual(tuple(positional(tokens).shape), (4, 3))
        with self.assertRaisesRegex(ValueError, "12 positions"):
            positional(torch.randn(4, 10, 8))

    def test_learns_a_local_finding_and_keeps_the_best_epoch(self):
        tokens, y = _token_data(240, 0)
        copies = {}

        def keep(epoch, model, auroc):
            copies[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

        probe = fit_attention_probe(
            tokens[:160], y[:160], tokens[160:], y[160:], epochs=12, lr=3e-2, batch_size=32, callback=keep
        )
        history = probe.training_history
        self.assertEqual(len(history["val_auroc"]), 12)
        self.assertGreater(history["best_val_auroc"], 0.9)
        # it beats a linear probe on mean-pooled tokens, in which the one-token finding is diluted
        pooled = pool_tokens(tokens, "mean")
        mean_probe = LinearProbe().fit(pooled[:160], y[:160], pooled[160:], y[160:])
        self.assertGreater(history["best_val_auroc"], max(mean_probe.val_auroc.values()) + 0.05)
        self.assertEqual(history["best_val_auroc"], max(history["val_auroc"]))
        for key, value in probe.state_dict().items():
            torch.testing.assert_close(value, copies[history["best_epoch"]][key])
        self.assertFalse(probe.training)
        again = fit_attention_probe(tokens[:160], y[:160], tokens[160:], y[160:], epochs=12, lr=3e-2, batch_size=32)
        np.testing.assert_array_equal(predict_scores(probe, tokens), predict_scores(again, tokens))

    def test_bad_tokens(self):
        tokens, y = _token_data(20, 1)
        with self.assertRaisesRegex(ValueError, r"val_tokens must be tokens \(N, 16, 32\)"):
            fit_attention_probe(tokens, y, tokens[:, :5], y, epochs=1)
        with self.assertRaisesRegex(ValueError, r"y_train must be labels \(20, C\)"):
            fit_attention_probe(tokens, y[:5], tokens, y, epochs=1)


class TestKNN(unittest.TestCase):
    train_x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    train_y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    query = np.array([[2.0, 0.1], [-0.1, 3.0]])

    def test_uniform_weights(self):
        # query 0: nearest (1, 0) then (1, 1); query 1: nearest (0, 1) then (1, 1)
        np.testing.assert_allclose(knn_scores(self.train_x, self.train_y, self.query, k=1), [[1, 0], [0, 1]])
        np.testing.assert_allclose(knn_scores(self.train_x, self.train_y, self.query, k=2), [[1, 0.5], [0.5, 1]])
        # cosine: the scale of the features does not matter; k above N takes every training sample
        np.testing.assert_allclose(knn_scores(5 * self.train_x, self.train_y, self.query, k=2), [[1, 0.5], [0.5, 1]])
        np.testing.assert_allclose(knn_scores(self.train_x, self.train_y, self.query, k=10), np.full((2, 2), 0.5))

    def test_temperature_weights(self):
        q = self.query[0] / np.linalg.norm(self.query[0])
        sims = np.array([q[0], (q[0] + q[1]) / math.sqrt(2)])  # neighbours (1, 0) and (1, 1)
        w = np.exp(sims / 0.1)
        expected = [1.0, w[1] / w.sum()]
        np.testing.assert_allclose(
            knn_scores(self.train_x, self.train_y, self.query[:1], k=2, temperature=0.1)[0], expected
        )

    def test_select_k_and_errors(self):
        x, y = _features(200, 6, signal=1.5)
        best, aurocs = select_knn_k(x[:100], y[:100], x[100:], y[100:], ks=(1, 5, 25, 500))
        self.assertEqual(set(aurocs), {1, 5, 25})
        self.assertEqual(best, max(aurocs, key=lambda k: (aurocs[k], -k)))
        self.assertGreater(aurocs[25], aurocs[1])
        with self.assertRaisesRegex(ValueError, r"query_x must be features \(N, 2\)"):
            knn_scores(self.train_x, self.train_y, np.ones((2, 3)))
        with self.assertRaisesRegex(ValueError, "k must be"):
            knn_scores(self.train_x, self.train_y, self.query, k=0)


if __name__ == "__main__":
    unittest.main()
