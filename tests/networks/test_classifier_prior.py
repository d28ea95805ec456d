"""The classifier's head bias starts at the log-odds of the training label prevalence."""

from __future__ import annotations

import math
import unittest

import torch
from parameterized import parameterized

from monai_afire.networks import AFiReClassifier, AFiReEncoder, build_classifier
from monai_afire.networks.classifier import prior_log_odds

ENCODER = {"arch": "vit_tiny", "img_size": 16, "patch_size": 4, "hidden_size": 16, "num_layers": 2, "num_heads": 2}
PRIOR = [0.05, 0.1, 0.5]


class TestClassPrior(unittest.TestCase):
    def test_head_bias_is_prior_log_odds(self):
        model = AFiReClassifier(AFiReEncoder(**ENCODER), 3, class_prior=PRIOR)
        expected = torch.tensor([math.log(p / (1 - p)) for p in PRIOR])
        torch.testing.assert_close(model.head.bias.detach(), expected)

    def test_first_predictions_match_prevalence(self):
        """A rare finding must not start at probability 0.5 (the cause of the below-chance AUROCs)."""
        torch.manual_seed(0)
        model = build_classifier(3, init="random", class_prior=PRIOR, **ENCODER).eval()
        with torch.no_grad():
            probs = torch.sigmoid(model(torch.rand(8, 1, 16, 16))).mean(0)
        torch.testing.assert_close(probs, torch.tensor(PRIOR), atol=0.03, rtol=0.0)

    def test_no_prior_keeps_zero_bias(self):
        model = build_classifier(2, init="random", **ENCODER)
        self.assertEqual(torch.count_nonzero(model.head.bias), 0)

    @parameterized.expand(
        [
            ([0.1, 0.2], "expected 3 values"),
            ([0.1, 0.0, 0.2], "strictly between 0 and 1"),
            ([0.1, float("nan"), 0.2], "strictly between 0 and 1"),
            ([0.1, 1.0, 0.2], "strictly between 0 and 1"),
        ]
    )
    def test_bad_prior_is_refused(self, prior, message):
        with self.assertRaisesRegex(ValueError, message):
            prior_log_odds(prior, 3)


if __name__ == "__main__":
    unittest.main()
