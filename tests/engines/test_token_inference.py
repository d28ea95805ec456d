"""Token features and anomaly maps of both recipes: lesion probability with a lesion prototype, residual without."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine
from parameterized import parameterized

from monai_afire.engines import TokenAnomalyInferer, TokenOutputWriter, token_outputs
from monai_afire.networks import anomaly_maps
from tests.engines.tiny_afire import IMAGE, tiny_model


class TestTokenOutputs(unittest.TestCase):
    @parameterized.expand([("authors", False), ("afire_plus", True)])
    def test_anomaly_follows_the_recipe(self, _, lesion_prototype):
        model = tiny_model(lesion_prototype=lesion_prototype).eval()
        x = torch.rand(2, 1, IMAGE, IMAGE)
        out = TokenAnomalyInferer()(x, model)
        self.assertEqual(tuple(out["features"].shape), (2, 16, 32))
        self.assertEqual(tuple(out["anomaly"].shape), (2, 4, 4))
        torch.testing.assert_close(out["features"], model.teacher.patch_tokens(x))
        if lesion_prototype:
            self.assertEqual(out["anomaly_kind"], "lesion_probability")
            logits = model.teacher(x, with_lesion=True)
            expected = torch.softmax(logits / 0.1, dim=-1)[..., -1]
        else:
            self.assertEqual(out["anomaly_kind"], "restoration_residual")
            expected = anomaly_maps(model, x)["token_residual"]
        torch.testing.assert_close(out["anomaly"].flatten(1), expected)
        self.assertGreaterEqual(float(out["anomaly"].min()), 0.0)

    def test_writer_records_the_kind(self):
        model = tiny_model().eval()
        out = token_outputs(model, torch.rand(3, 1, IMAGE, IMAGE))
        with tempfile.TemporaryDirectory() as tmp:
            writer = TokenOutputWriter(tmp)
            engine = Engine(lambda e, b: None)
            engine.state.batch = {}
            engine.state.output = {"pred": out}
            writer(engine)
            self.assertEqual(len(writer.written), 3)
            with np.load(Path(tmp) / "image_00000_tokens.npz") as z:
                self.assertEqual(str(z["anomaly_kind"]), "restoration_residual")
                np.testing.assert_allclose(z["anomaly"], out["anomaly"][0].numpy())


if __name__ == "__main__":
    unittest.main()
