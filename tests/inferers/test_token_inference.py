from __future__ import annotations

import unittest

import numpy as np
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from parameterized import parameterized

from monai_afire.inferers import TokenAnomalyInferer, TokenOutputWriter, anomaly_maps, lesion_probability, token_outputs
from tests.tiny import IMAGE, TmpDirTestCase, tiny_model


class TestTokenOutputs(TmpDirTestCase):
    def test_teacher_by_default_and_the_one_lesion_probability(self):
        model = tiny_model(lesion_prototype=True)
        with torch.no_grad():
            model.teacher.head.lesion_prototype.add_(1.0)  # teacher and student differ
        x = torch.rand(2, 1, 32, 32)
        out = token_outputs(model, x)
        self.assertEqual(out["features"].shape, (2, 16, 32))
        self.assertEqual(out["anomaly"].shape, (2, 4, 4))
        with torch.no_grad():
            torch.testing.assert_close(out["features"], model.teacher.patch_tokens(x))
            for network in ("teacher", "student"):
                expected = lesion_probability(model, x, network=network).reshape(2, 4, 4)
                torch.testing.assert_close(token_outputs(model, x, network=network)["anomaly"], expected)
                inferer = TokenAnomalyInferer(network=network)
                torch.testing.assert_close(inferer(MetaTensor(x), model)["anomaly"], expected)

    def test_writer_names_files_after_their_source(self):
        model = tiny_model()
        inferer = TokenAnomalyInferer()
        batch = {"image": MetaTensor(torch.rand(2, 1, 32, 32), meta={"filename_or_obj": ["/d/a.png", "/d/b.dcm"]})}
        engine = Engine(lambda e, b: {"pred": inferer(b["image"], model)})
        writer = TokenOutputWriter(self.tmp)
        writer.attach(engine)
        engine.run([batch])
        self.assertEqual([p.name for p in writer.written], ["a_tokens.npz", "b_tokens.npz"])
        expected = token_outputs(model, batch["image"].as_tensor())
        with np.load(writer.written[1]) as z:
            self.assertEqual(z["features"].dtype, np.float16)
            np.testing.assert_allclose(z["anomaly"], expected["anomaly"][1].numpy(), rtol=1e-6)
            self.assertEqual(str(z["anomaly_kind"]), "restoration_residual")

    @parameterized.expand([("authors", False), ("afire_plus", True)])
    def test_anomaly_follows_the_recipe(self, _, lesion_prototype):
        """A lesion probability only with a lesion prototype; the authors' recipe gives the restoration residual."""
        model = tiny_model(lesion_prototype=lesion_prototype).eval()
        x = torch.rand(2, 1, IMAGE, IMAGE)
        out = TokenAnomalyInferer()(x, model)
        self.assertEqual(tuple(out["anomaly"].shape), (2, 4, 4))
        if lesion_prototype:
            self.assertEqual(out["anomaly_kind"], "lesion_probability")
            expected = lesion_probability(model, x, network="teacher")
        else:
            self.assertEqual(out["anomaly_kind"], "restoration_residual")
            expected = anomaly_maps(model, x, network="teacher")["token_residual"]
            with self.assertRaisesRegex(ValueError, "afire_plus.json"):
                lesion_probability(model, x)
        torch.testing.assert_close(out["anomaly"].flatten(1), expected)
        self.assertGreaterEqual(float(out["anomaly"].min()), 0.0)

    def test_writer_keeps_dicom_uid_names_apart(self):
        """DICOM files are often named by their UID: every stem used to be cut at the first dot ("1"), so all
        outputs overwrote one file; the same name in two folders gets a suffix."""
        model = tiny_model()
        inferer = TokenAnomalyInferer()
        names = ["/p1/1.2.826.0.1.11.dcm", "/p1/1.2.826.0.1.12.dcm", "/p2/1.2.826.0.1.11.dcm", "/p3/ct.nii.gz"]
        batch = {"image": MetaTensor(torch.rand(4, 1, 32, 32), meta={"filename_or_obj": names})}
        engine = Engine(lambda e, b: {"pred": inferer(b["image"], model)})
        writer = TokenOutputWriter(self.tmp)
        writer.attach(engine)
        engine.run([batch])
        expected = ["1.2.826.0.1.11", "1.2.826.0.1.12", "1.2.826.0.1.11_2", "ct"]
        self.assertEqual([p.name for p in writer.written], [f"{e}_tokens.npz" for e in expected])
        self.assertEqual(len(set(self.tmp.glob("*.npz"))), 4)
        self.assertEqual([writer.sources[p] for p in writer.written], names)


if __name__ == "__main__":
    unittest.main()
