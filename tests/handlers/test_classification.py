"""Mean AUROC over defined classes, AUROC tables and probability CSVs from an evaluator."""

from __future__ import annotations

import csv
import math
import unittest

import numpy as np
import torch
from ignite.engine import Engine
from sklearn.metrics import roc_auc_score

from monai_afire.handlers import AUROCReport, ProbabilityCSVWriter
from monai_afire.handlers.classification import DefinedClassesROCAUCMetric
from tests.tiny import TmpDirTestCase


def _engine(batches):
    """An engine whose outputs mimic a decollated MONAI evaluator's ``pred``/``label`` items."""

    def step(engine, batch):
        return [{"pred": p, "label": lab} for p, lab in zip(batch["pred"], batch["label"])]

    return Engine(step)


class TestClassificationHandlers(TmpDirTestCase):
    def test_mean_auroc_skips_undefined_classes_and_matches_sklearn(self):
        rng = np.random.default_rng(0)
        y = rng.integers(0, 2, (30, 3)).astype(np.float32)
        y[:, 2] = 0.0  # no positive: undefined
        s = rng.random((30, 3)).astype(np.float32)
        metric = DefinedClassesROCAUCMetric()
        metric(torch.from_numpy(s), torch.from_numpy(y))
        expected = np.mean([roc_auc_score(y[:, c], s[:, c]) for c in range(2)])
        self.assertAlmostEqual(metric.aggregate(), expected)
        metric.reset()
        metric(torch.rand(4, 2), torch.zeros(4, 2))
        self.assertTrue(math.isnan(metric.aggregate()))

    def test_auroc_report_writes_tables_with_undefined_class(self):
        preds = torch.tensor([[0.9, 0.2], [0.1, 0.4], [0.8, 0.3], [0.3, 0.1]])
        labels = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
        batches = [{"pred": preds[:2], "label": labels[:2]}, {"pred": preds[2:], "label": labels[2:]}]
        engine = _engine(batches)
        report = AUROCReport(["Nodule", "Mass"], self.tmp, num_bootstrap=20)
        report.attach(engine)
        engine.run(batches)
        self.assertAlmostEqual(report.result.auroc[0], 1.0)
        self.assertTrue(math.isnan(report.result.auroc[1]))
        self.assertEqual(report.result.undefined, ["Mass"])
        with open(self.tmp / "auroc.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["class"] for r in rows], ["Nodule", "Mass", "mean"])
        self.assertEqual(rows[1]["defined"], "0")
        self.assertIn("undefined", (self.tmp / "auroc.md").read_text())
        with open(self.tmp / "predictions.csv", newline="") as f:
            self.assertEqual(len(list(csv.reader(f))), 5)

    def test_auroc_report_rejects_wrong_number_of_classes(self):
        batches = [{"pred": torch.rand(2, 3), "label": torch.ones(2, 3)}]
        engine = _engine(batches)
        AUROCReport(["a", "b"], self.tmp, num_bootstrap=0).attach(engine)
        with self.assertRaisesRegex(ValueError, "3 outputs for 2 classes"):
            engine.run(batches)

    def test_probability_writer(self):
        batches = [{"pred": torch.tensor([[0.25, 0.5]]), "label": [None]}]
        engine = _engine(batches)
        writer = ProbabilityCSVWriter(["a", "b"], self.tmp / "p.csv")
        writer.attach(engine)
        engine.run(batches)
        with open(self.tmp / "p.csv", newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[0], ["image", "a", "b"])
        self.assertEqual([float(v) for v in rows[1][1:]], [0.25, 0.5])


if __name__ == "__main__":
    unittest.main()


class TestUndefinedMetrics(unittest.TestCase):
    """An AUROC with one class present prints as "undefined (one class)", never as a number (issue 12, finding 4)."""

    def test_format(self):
        from monai_afire.handlers import UNDEFINED, format_metric

        self.assertEqual(format_metric(float("nan")), "undefined (one class)")
        self.assertEqual(UNDEFINED, "undefined (one class)")
        self.assertEqual(format_metric(0.81234), "0.8123")
        self.assertEqual(format_metric(torch.tensor(0.5), digits=2), "0.50")

    def test_best_model_selection(self):
        from monai_afire.handlers import defined_metric_is_better

        nan = float("nan")
        self.assertFalse(defined_metric_is_better(nan, -1.0))
        self.assertTrue(defined_metric_is_better(0.4, nan))
        self.assertTrue(defined_metric_is_better(0.6, 0.5))
        self.assertFalse(defined_metric_is_better(0.5, 0.6))

    def test_evaluator_logs_undefined(self):
        from monai.engines import SupervisedEvaluator
        from monai.handlers import StatsHandler
        from monai.transforms import Activationsd

        from monai_afire.handlers import MeanROCAUC, defined_metric_is_better, log_epoch_metrics

        data = [{"image": torch.rand(2, 4), "label": torch.zeros(2, 1)} for _ in range(2)]  # negatives only
        evaluator = SupervisedEvaluator(
            "cpu", data, torch.nn.Linear(4, 1), postprocessing=Activationsd(keys="pred", sigmoid=True),
            key_val_metric={"val_mean_auroc": MeanROCAUC()}, metric_cmp_fn=defined_metric_is_better,
            val_handlers=[StatsHandler(iteration_log=False, epoch_print_logger=log_epoch_metrics)],
        )  # fmt: skip
        with self.assertLogs(evaluator.logger, level="INFO") as logs:
            evaluator.run()
        text = "\n".join(logs.output)
        self.assertIn("Epoch[1] Metrics -- val_mean_auroc: undefined (one class)", text)
        self.assertNotIn("0.0000", text)
        for batch in data:  # the next validation has both classes: its defined AUROC beats the undefined one
            batch["label"] = torch.tensor([[0.0], [1.0]])
        evaluator.run(global_epoch=2)
        self.assertEqual(evaluator.state.best_metric_epoch, 2)
        self.assertFalse(math.isnan(evaluator.state.best_metric))
