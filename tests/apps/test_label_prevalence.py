"""Per-class positive fractions of training records, the classifier's initial head bias."""

from __future__ import annotations

import unittest

import numpy as np
from parameterized import parameterized

from monai_afire.apps import label_prevalence


class TestLabelPrevalence(unittest.TestCase):
    def test_smoothed_fractions(self):
        records = [{"label": np.array([1, 0, 0], np.float32)} for _ in range(3)] + [{"label": np.zeros(3, np.float32)}]
        np.testing.assert_allclose(label_prevalence(records), [3.5 / 5, 0.5 / 5, 0.5 / 5])
        np.testing.assert_allclose(label_prevalence(records, smoothing=1e-9), [0.75, 0.0, 0.0], atol=1e-8)

    def test_unknown_labels_are_not_counted(self):
        records = [
            {"label": np.array([1.0, np.nan])},
            {"label": np.array([0.0, 1.0]), "label_mask": np.array([1.0, 0.0])},
            {"label": np.array([0.0, 1.0])},
            {"image": "unlabelled.png"},
        ]
        np.testing.assert_allclose(label_prevalence(records, smoothing=0.5), [1.5 / 4, 1.5 / 2])

    @parameterized.expand(
        [
            ("no_label", [{"image": "a.png"}], {}, "no record has a 'label'"),
            ("lengths", [{"label": np.zeros(2)}, {"label": np.zeros(3)}], {}, "differ in length"),
            ("smoothing", [{"label": np.zeros(2)}], {"smoothing": 0.0}, "smoothing must be > 0"),
        ]
    )
    def test_bad_records(self, _, records, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            label_prevalence(records, **kwargs)


if __name__ == "__main__":
    unittest.main()
