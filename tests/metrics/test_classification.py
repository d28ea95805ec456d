from __future__ import annotations

import csv
import math
import os
import pickle
import tempfile
import unittest

import numpy as np
import torch
from parameterized import parameterized
from sklearn.metrics import roc_auc_score

from monai_afire.metrics import (
    BootstrapInterval,
    auroc_markdown,
    bootstrap_auroc_difference,
    bootstrap_mean_auroc,
    mean_auroc,
    multilabel_auroc,
    per_class_bootstrap,
    write_auroc_csv,
    write_auroc_markdown,
)
from monai_afire.metrics.classification import _rank_aurocs, _weighted_aurocs


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


def _patients(num_patients, images_per_patient=1, seed=0, signal=1.0, num_classes=3):
    """Labels and scores per patient, copied to each of the patient's images; also the patient ids."""
    rng = np.random.default_rng(seed)
    y = (rng.random((num_patients, num_classes)) < 0.4).astype(float)
    y[0], y[1] = 1, 0
    s = rng.normal(size=(num_patients, num_classes)) + signal * y
    groups = np.repeat(np.arange(num_patients), images_per_patient)
    return y[groups], s[groups], groups


def _width(interval):
    return interval[2] - interval[1]


class TestWeightedAUROC(unittest.TestCase):
    @parameterized.expand([(False,), (True,)])
    def test_equals_auroc_of_the_repeated_sample(self, ties):
        y, s = _data(n=40, ties=ties)
        w = np.random.default_rng(1).integers(0, 4, size=(6, 40)).astype(float)
        w[5] = 0
        w[5, :3] = 1  # a replicate with few samples: some classes undefined
        got = _weighted_aurocs(y, s, w)
        for b in range(6):
            idx = np.repeat(np.arange(40), w[b].astype(int))
            np.testing.assert_allclose(got[b], _rank_aurocs(y[idx], s[idx]), atol=1e-12)


class TestBootstrapMeanAUROC(unittest.TestCase):
    def test_point_interval_and_seed(self):
        y, s, g = _patients(100, 2)
        result = bootstrap_mean_auroc(y, s, groups=g, num_samples=300, seed=1)
        self.assertIsInstance(result, BootstrapInterval)
        point, low, high = result
        self.assertAlmostEqual(point, float(np.mean([roc_auc_score(y[:, c], s[:, c]) for c in range(3)])))
        self.assertAlmostEqual(point, mean_auroc(y, s))
        self.assertLess(low, point)
        self.assertLess(point, high)
        self.assertEqual((result.num_groups, result.num_seeds, result.num_replicates), (100, (1,), 300))
        self.assertEqual(tuple(bootstrap_mean_auroc(y, s, groups=g, num_samples=300, seed=1)), tuple(result))
        self.assertNotEqual(tuple(bootstrap_mean_auroc(y, s, groups=g, num_samples=300, seed=2)), tuple(result))
        self.assertEqual(tuple(pickle.loads(pickle.dumps(result))), tuple(result))
        wider = bootstrap_mean_auroc(y, s, groups=g, num_samples=300, seed=1, confidence=0.99)
        self.assertGreater(_width(wider), _width(result))
        # tensors work the same, and string patient ids
        same = bootstrap_mean_auroc(torch.as_tensor(y), torch.as_tensor(s), groups=[f"p{i:03d}" for i in g],
                                    num_samples=300, seed=1)  # fmt: skip
        np.testing.assert_allclose(tuple(same), tuple(result))

    def test_shrinks_with_more_patients(self):
        small = bootstrap_mean_auroc(*_patients(50, seed=3)[:2], num_samples=400)
        large = bootstrap_mean_auroc(*_patients(800, seed=3)[:2], num_samples=400)
        self.assertLess(_width(large), 0.5 * _width(small))

    def test_resamples_patients_not_images(self):
        # 40 patients with 10 identical images each: resampling images pretends to have 400 independent samples
        y, s, g = _patients(40, images_per_patient=10, seed=4)
        by_patient = bootstrap_mean_auroc(y, s, groups=g, num_samples=500)
        by_image = bootstrap_mean_auroc(y, s, num_samples=500)
        self.assertEqual(by_patient.point, by_image.point)
        self.assertEqual((by_patient.num_groups, by_image.num_groups), (40, 400))
        self.assertGreater(_width(by_patient), 2.0 * _width(by_image))
        # one image per patient: patient ids change nothing
        y1, s1, g1 = _patients(40, seed=4)
        self.assertEqual(
            tuple(bootstrap_mean_auroc(y1, s1, groups=g1, num_samples=200)),
            tuple(bootstrap_mean_auroc(y1, s1, num_samples=200)),
        )

    def test_seeds_axis(self):
        y, s, g = _patients(120, seed=5)
        one = bootstrap_mean_auroc(y, s, groups=g, num_samples=300)
        # identical seeds: the same patients are drawn, every seed draw gives the same value
        copies = bootstrap_mean_auroc(y, np.stack([s, s, s]), groups=g, num_samples=300)
        self.assertEqual(tuple(copies), tuple(one))
        self.assertEqual(copies.num_seeds, (3,))
        # seeds that disagree: the point is their mean, the interval covers the seed spread
        noise = np.random.default_rng(6).normal(size=s.shape)
        seeds = np.stack([s, s + 3 * noise, s - 3 * noise])
        result = bootstrap_mean_auroc(y, seeds, groups=g, num_samples=300)
        self.assertAlmostEqual(result.point, float(np.mean([mean_auroc(y, k) for k in seeds])))
        self.assertAlmostEqual(result.point, mean_auroc(y, seeds))
        self.assertGreater(_width(result), _width(bootstrap_mean_auroc(y, seeds[1:2], groups=g, num_samples=300)))

    def test_undefined_classes_are_skipped_and_reported(self):
        y, s, g = _patients(60, seed=7)
        y[:, 1] = 0
        result = bootstrap_mean_auroc(y, s, groups=g, num_samples=100, classes=["a", "b", "c"])
        self.assertEqual(result.undefined, ["b"])
        defined = [roc_auc_score(y[:, c], s[:, c]) for c in (0, 2)]
        self.assertAlmostEqual(result.point, float(np.mean(defined)))
        none = bootstrap_mean_auroc(np.zeros((5, 2)), np.random.rand(5, 2), num_samples=10)
        self.assertTrue(all(math.isnan(v) for v in none))
        self.assertEqual(none.undefined, ["class_0", "class_1"])

    @parameterized.expand(
        [
            ("scores_shape", {"scores": np.zeros((10, 2))}, r"scores must have shape \(N, C\) = \(10, 3\)"),
            ("seed_shape", {"scores": np.zeros((2, 9, 3))}, r"\(S, 10, 3\)"),
            ("groups", {"groups": np.arange(9)}, r"groups .* shape \(10,\)"),
            ("labels", {"y_true": np.full((10, 3), 0.5)}, "binary"),
            ("num_samples", {"num_samples": 0}, "num_samples"),
            ("nan", {"scores": np.full((10, 3), np.nan)}, "NaN"),
        ]
    )
    def test_bad_input(self, _, override, message):
        kwargs = {"y_true": np.eye(10, 3), "scores": np.zeros((10, 3))} | override
        with self.assertRaisesRegex(ValueError, message):
            bootstrap_mean_auroc(**kwargs)


class TestBootstrapDifference(unittest.TestCase):
    def test_clearly_better_arm(self):
        y, good, g = _patients(150, 2, seed=8, signal=2.0)
        weak = good + 2.0 * np.random.default_rng(9).normal(size=good.shape)
        point, low, high = bootstrap_auroc_difference(y, good, weak, groups=g, num_samples=400)
        self.assertAlmostEqual(point, mean_auroc(y, good) - mean_auroc(y, weak))
        self.assertGreater(low, 0.0)
        point, low, high = bootstrap_auroc_difference(y, weak, good, groups=g, num_samples=400)
        self.assertLess(high, 0.0)

    def test_identical_and_equal_arms(self):
        y, s, g = _patients(150, 2, seed=10)
        self.assertEqual(tuple(bootstrap_auroc_difference(y, s, s.copy(), groups=g, num_samples=200)), (0, 0, 0))
        # two arms of the same quality (independent noise of the same size): the interval holds 0
        rng = np.random.default_rng(11)
        a, b = s + rng.normal(size=s.shape), s + rng.normal(size=s.shape)
        _, low, high = bootstrap_auroc_difference(y, a, b, groups=g, num_samples=400)
        self.assertLess(low, 0.0)
        self.assertGreater(high, 0.0)

    def test_paired_is_narrower_than_separate_intervals(self):
        y, s, g = _patients(150, 2, seed=12)
        b = s + 0.3 * np.random.default_rng(13).normal(size=s.shape)
        diff = bootstrap_auroc_difference(y, s, b, groups=g, num_samples=400)
        self.assertLess(_width(diff), _width(bootstrap_mean_auroc(y, s, groups=g, num_samples=400)))

    def test_seed_counts(self):
        y, s, g = _patients(80, seed=14)
        rng = np.random.default_rng(15)
        three = np.stack([s + rng.normal(size=s.shape) for _ in range(3)])
        result = bootstrap_auroc_difference(y, three, s, groups=g, num_samples=200)
        self.assertEqual(result.num_seeds, (3, 1))
        self.assertAlmostEqual(result.point, mean_auroc(y, three) - mean_auroc(y, s))
        with self.assertRaisesRegex(ValueError, "scores_b must have shape"):
            bootstrap_auroc_difference(y, s, s[:10], groups=g)


class TestPerClassBootstrap(unittest.TestCase):
    def test_matches_the_mean_bootstrap_and_tables(self):
        y, s, g = _patients(120, 2, seed=16)
        seeds = np.stack([s, s + np.random.default_rng(17).normal(size=s.shape)])
        y[:, 2] = 1
        result = per_class_bootstrap(y, seeds, groups=g, num_samples=300, classes=["a", "b", "c"])
        mean = bootstrap_mean_auroc(y, seeds, groups=g, num_samples=300)
        self.assertAlmostEqual(result.mean, mean.point)
        np.testing.assert_allclose(result.mean_ci, mean[1:])
        expected = np.mean([_rank_aurocs(y, k) for k in seeds], axis=0)
        np.testing.assert_allclose(result.auroc[:2], expected[:2])
        self.assertEqual(result.undefined, ["c"])
        self.assertTrue(math.isnan(result.auroc[2]) and math.isnan(result.ci_low[2]))
        for c in range(2):
            self.assertLess(result.ci_low[c], result.auroc[c])
            self.assertLess(result.auroc[c], result.ci_high[c])
        self.assertIn("| a |", auroc_markdown(result))


if __name__ == "__main__":
    unittest.main()
