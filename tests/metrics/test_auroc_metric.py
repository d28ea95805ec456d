from __future__ import annotations

import math
import os
import tempfile
import unittest

import numpy as np
import torch
from monai.engines import SupervisedEvaluator
from sklearn.metrics import roc_auc_score

from monai_afire.metrics import AUROCTable, MultilabelAUROCTable


def _batches(undefined_column=None):
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(48, 3, generator=g) < 0.4).float()
    if undefined_column is not None:
        y[:, undefined_column] = 0
    scores = y + torch.rand(48, 3, generator=g)
    return y, scores, [{"image": scores[i : i + 16], "label": y[i : i + 16]} for i in range(0, 48, 16)]


class TestMultilabelAUROCTable(unittest.TestCase):
    def test_cumulative_matches_sklearn(self):
        y, scores, batches = _batches()
        metric = MultilabelAUROCTable(["a", "b", "c"], num_bootstrap=0)
        for batch in batches:
            metric(y_pred=batch["image"], y=batch["label"])
        expected = [roc_auc_score(y[:, c].numpy(), scores[:, c].numpy()) for c in range(3)]
        self.assertAlmostEqual(metric.aggregate(), float(np.mean(expected)))
        np.testing.assert_allclose(metric.result.auroc, expected)
        metric.reset()
        with self.assertRaises(ValueError):
            metric.aggregate()

    def test_shape_mismatch(self):
        with self.assertRaisesRegex(ValueError, "must match"):
            MultilabelAUROCTable()(y_pred=torch.zeros(2, 3), y=torch.zeros(2, 2))

    def test_handler_in_evaluator_writes_tables(self):
        y, scores, batches = _batches(undefined_column=2)
        with tempfile.TemporaryDirectory() as tmp:
            handler = AUROCTable(["a", "b", "c"], num_bootstrap=30, output_dir=tmp, prefix="test_auroc")
            evaluator = SupervisedEvaluator(
                device="cpu", val_data_loader=batches, network=torch.nn.Identity(), key_val_metric={"auroc": handler}
            )
            evaluator.run()
            self.assertTrue(os.path.isfile(os.path.join(tmp, "test_auroc.csv")))
            with open(os.path.join(tmp, "test_auroc.md")) as f:
                text = f.read()
        expected = [roc_auc_score(y[:, c].numpy(), scores[:, c].numpy()) for c in range(2)]
        self.assertAlmostEqual(evaluator.state.metrics["auroc"], float(np.mean(expected)))
        result = handler.metric_fn.result
        self.assertEqual(result.undefined, ["c"])
        self.assertTrue(math.isnan(result.auroc[2]))
        self.assertIn("| c | undefined |", text)


if __name__ == "__main__":
    unittest.main()
