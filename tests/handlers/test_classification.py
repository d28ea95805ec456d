"""Mean AUROC over defined classes, AUROC tables and probability CSVs from an evaluator, weight loading."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from sklearn.metrics import roc_auc_score

from monai_afire.engines import AUROCReport, DefinedClassesROCAUCMetric, ProbabilityCSVWriter, load_model_weights


def test_mean_auroc_skips_undefined_classes_and_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (30, 3)).astype(np.float32)
    y[:, 2] = 0.0  # no positive: undefined
    s = rng.random((30, 3)).astype(np.float32)
    metric = DefinedClassesROCAUCMetric()
    metric(torch.from_numpy(s), torch.from_numpy(y))
    expected = np.mean([roc_auc_score(y[:, c], s[:, c]) for c in range(2)])
    assert metric.aggregate() == pytest.approx(expected)
    metric.reset()
    metric(torch.rand(4, 2), torch.zeros(4, 2))
    assert math.isnan(metric.aggregate())


def _engine(batches):
    """An engine whose outputs mimic a decollated MONAI evaluator's ``pred``/``label`` items."""

    def step(engine, batch):
        return [{"pred": p, "label": lab} for p, lab in zip(batch["pred"], batch["label"])]

    return Engine(step)


def test_auroc_report_writes_tables_with_undefined_class(tmp_path):
    preds = torch.tensor([[0.9, 0.2], [0.1, 0.4], [0.8, 0.3], [0.3, 0.1]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    batches = [{"pred": preds[:2], "label": labels[:2]}, {"pred": preds[2:], "label": labels[2:]}]
    engine = _engine(batches)
    report = AUROCReport(["Nodule", "Mass"], tmp_path, num_bootstrap=20)
    report.attach(engine)
    engine.run(batches)
    assert report.result.auroc[0] == pytest.approx(1.0)
    assert math.isnan(report.result.auroc[1]) and report.result.undefined == ["Mass"]
    with open(tmp_path / "auroc.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["Nodule", "Mass", "mean"] and rows[1]["defined"] == "0"
    assert "undefined" in (tmp_path / "auroc.md").read_text()
    with open(tmp_path / "predictions.csv", newline="") as f:
        assert len(list(csv.reader(f))) == 5


def test_auroc_report_rejects_wrong_number_of_classes(tmp_path):
    batches = [{"pred": torch.rand(2, 3), "label": torch.ones(2, 3)}]
    engine = _engine(batches)
    AUROCReport(["a", "b"], tmp_path, num_bootstrap=0).attach(engine)
    with pytest.raises(ValueError, match="3 outputs for 2 classes"):
        engine.run(batches)


def test_probability_writer(tmp_path):
    batches = [{"pred": torch.tensor([[0.25, 0.5]]), "label": [None]}]
    engine = _engine(batches)
    writer = ProbabilityCSVWriter(["a", "b"], tmp_path / "p.csv")
    writer.attach(engine)
    engine.run(batches)
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image", "a", "b"] and [float(v) for v in rows[1][1:]] == [0.25, 0.5]


def test_load_model_weights(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = torch.nn.Linear(3, 2)
    load_model_weights(other, tmp_path / "m.pt")
    assert torch.equal(other.weight, model.weight)
    with pytest.raises(ValueError, match="does not fit"):
        load_model_weights(torch.nn.Linear(4, 2), tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match="train the model first"):
        load_model_weights(other, tmp_path / "missing.pt")
