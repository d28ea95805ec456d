from __future__ import annotations

import csv
import math
import os
import tempfile
import unittest

import numpy as np
import torch
from parameterized import parameterized
from sklearn.metrics import roc_auc_score

from monai_afire.metrics import auroc_markdown, multilabel_auroc, write_auroc_csv, write_auroc_markdown


def _data(n=80, c=3, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(float)
    y[0], y[1] = 1, 0  # every class has both labels
    s = rng.random((n, c)) + 0.6 * y
    return y, (np.round(s, 1) if ties else s)


class TestMultilabelAUROC(unittest.TestCase):
    @parameterized.expand([(False,), (True,)])
    def test_matches_sklearn(self, ties):
        y, s = _data(ties=ties)
        result = multilabel_auroc(y, s, classes=["a", "b", "c"], num_bootstrap=50)
        expected = [roc_auc_score(y[:, c], s[:, c]) for c in range(3)]
        np.testing.assert_allclose(result.auroc, expected)
        self.assertAlmostEqual(result.mean, float(np.mean(expected)))
        self.assertEqual(result.undefined, [])
        self.assertEqual(result.as_dict()["b"], expected[1])

    def test_tensors_and_one_class(self):
        y, s = _data(c=1)
        result = multilabel_auroc(torch.as_tensor(y[:, 0]), torch.as_tensor(s[:, 0]), num_bootstrap=0)
        self.assertEqual(result.classes, ["class_0"])
        self.assertAlmostEqual(result.auroc[0], roc_auc_score(y[:, 0], s[:, 0]))
        self.assertTrue(math.isnan(result.ci_low[0]))

    def test_bootstrap_contains_estimate_and_is_seeded(self):
        y, s = _data(n=120)
        a = multilabel_auroc(y, s, num_bootstrap=200, seed=3)
        b = multilabel_auroc(y, s, num_bootstrap=200, seed=3)
        c = multilabel_auroc(y, s, num_bootstrap=200, seed=4)
        for auc, lo, hi in zip(a.auroc, a.ci_low, a.ci_high):
            self.assertLessEqual(lo, auc)
            self.assertLessEqual(auc, hi)
            self.assertLess(lo, hi)
        self.assertLessEqual(a.mean_ci[0], a.mean)
        self.assertLessEqual(a.mean, a.mean_ci[1])
        self.assertEqual((a.ci_low, a.ci_high, a.mean_ci), (b.ci_low, b.ci_high, b.mean_ci))
        self.assertNotEqual(a.ci_low, c.ci_low)
        wider = multilabel_auroc(y, s, num_bootstrap=200, seed=3, confidence=0.99)
        self.assertLessEqual(wider.ci_low[0], a.ci_low[0])

    @parameterized.expand([("no_positive", 0.0), ("no_negative", 1.0)])
    def test_undefined_class(self, _, value):
        y, s = _data()
        y[:, 1] = value
        result = multilabel_auroc(y, s, classes=["a", "b", "c"], num_bootstrap=20)
        self.assertTrue(math.isnan(result.auroc[1]))
        self.assertEqual(result.undefined, ["b"])
        defined = [roc_auc_score(y[:, c], s[:, c]) for c in (0, 2)]
        self.assertAlmostEqual(result.mean, float(np.mean(defined)))
        self.assertIn("undefined", auroc_markdown(result))
        self.assertIn("no positive or no negative", auroc_markdown(result))

    def test_all_undefined(self):
        result = multilabel_auroc(np.zeros((5, 2)), np.random.rand(5, 2))
        self.assertTrue(math.isnan(result.mean))
        self.assertEqual(result.undefined, ["class_0", "class_1"])

    @parameterized.expand(
        [
            ("shape", np.zeros((4, 2)), np.zeros((4, 3)), {}),
            ("non_binary", np.full((4, 1), 0.5), np.zeros((4, 1)), {}),
            ("names", np.eye(2), np.eye(2), {"classes": ["a"]}),
            ("nan", np.eye(2), np.full((2, 2), np.nan), {}),
            ("confidence", np.eye(2), np.eye(2), {"confidence": 1.5}),
        ]
    )
    def test_bad_input(self, _, y, s, kwargs):
        with self.assertRaises(ValueError):
            multilabel_auroc(y, s, **kwargs)

    def test_writers(self):
        y, s = _data()
        y[:, 2] = 0
        result = multilabel_auroc(y, s, classes=["a", "b", "c"], num_bootstrap=20)
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = os.path.join(tmp, "out", "auroc.csv")
            write_auroc_csv(result, csv_path)
            with open(csv_path) as f:
                rows = list(csv.DictReader(f))
            self.assertEqual([r["class"] for r in rows], ["a", "b", "c", "mean"])
            self.assertAlmostEqual(float(rows[0]["auroc"]), result.auroc[0])
            self.assertEqual(rows[2]["defined"], "0")
            self.assertTrue(math.isnan(float(rows[2]["auroc"])))
            text = write_auroc_markdown(result, os.path.join(tmp, "auroc.md"), title="test")
            with open(os.path.join(tmp, "auroc.md")) as f:
                self.assertEqual(f.read(), text)
        self.assertIn(f"| a | {result.auroc[0]:.3f} |", text)
        self.assertIn("**mean**", text)


if __name__ == "__main__":
    unittest.main()
