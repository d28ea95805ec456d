from __future__ import annotations

import unittest
from unittest import mock

import torch

from monai_afire.inferers import anomaly_maps, lesion_probability, token_values_to_image
from monai_afire.networks import AFiRe, AFiReEncoder

ENCODER = {"arch": "vit_tiny", "img_size": 16, "patch_size": 4, "hidden_size": 16, "num_layers": 1, "num_heads": 2}
HEAD = {"num_prototypes": 8, "head_hidden_dim": 16, "head_bottleneck_dim": 8, "decoder_dim": 16, "decoder_depth": 1}
LESION_TOKEN = 6  # row 1, column 2 of the 4 x 4 grid: pixels [4:8, 8:12]


def _model(lesion_prototype: bool = True) -> AFiRe:
    torch.manual_seed(0)
    return AFiRe(AFiReEncoder(**ENCODER), decoder_heads=2, lesion_prototype=lesion_prototype, **HEAD)


def _lesion_logits(tokens, with_lesion=True):
    logits = torch.zeros(tokens.shape[0], tokens.shape[1], HEAD["num_prototypes"] + 1)
    logits[:, LESION_TOKEN, -1] = 1.0  # strongly the lesion prototype at temperature 0.1
    return logits


class TestTokenValuesToImage(unittest.TestCase):
    def test_raster_order_and_shape(self):
        values = torch.zeros(2, 16)
        values[:, LESION_TOKEN] = 1.0
        image = token_values_to_image(values, (4, 4), (16, 16))
        self.assertEqual(image.shape, (2, 1, 16, 16))
        peak = torch.nonzero(image[0, 0] == image[0, 0].max())
        self.assertTrue(((peak[:, 0] >= 4) & (peak[:, 0] < 8) & (peak[:, 1] >= 8) & (peak[:, 1] < 12)).all())
        torch.testing.assert_close(token_values_to_image(torch.ones(1, 16, 3), (4, 4), (8, 8)), torch.ones(1, 3, 8, 8))

    def test_bad_grid(self):
        with self.assertRaisesRegex(ValueError, "patch grid"):
            token_values_to_image(torch.zeros(1, 15), (4, 4), (16, 16))


class TestAnomalyMaps(unittest.TestCase):
    def test_outputs(self):
        model = _model().train()
        x = torch.rand(2, 1, 16, 16)
        out = anomaly_maps(model, x)
        for key in ("lesion_probability", "residual"):
            self.assertEqual(out[key].shape, (2, 1, 16, 16))
            self.assertGreaterEqual(float(out[key].min()), 0.0)
        self.assertLessEqual(float(out["lesion_probability"].max()), 1.0)
        self.assertEqual(out["reconstruction"].shape, x.shape)
        self.assertTrue(model.training)
        self.assertTrue(model.teacher.training is False)
        torch.testing.assert_close(out["token_probability"], lesion_probability(model.eval(), x))

    def test_model_without_lesion_prototype_gives_only_the_residual(self):
        model = _model(lesion_prototype=False)
        x = torch.rand(2, 1, 16, 16)
        decoder_forward = model.decoder.forward
        masks = []

        def spy(tokens, token_labels):
            masks.append(token_labels.clone())
            return decoder_forward(tokens, token_labels)

        with mock.patch.object(model.decoder, "forward", side_effect=spy):
            out = anomaly_maps(model, x)
        self.assertEqual(set(out), {"residual", "token_residual", "reconstruction"})
        self.assertFalse(masks[0].any(), "no lesion probability, so no token is masked")
        self.assertEqual(out["residual"].shape, (2, 1, 16, 16))
        patches = (x - out["reconstruction"]).abs().reshape(2, 4, 4, 4, 4).mean(dim=(2, 4)).flatten(1)
        torch.testing.assert_close(out["token_residual"], patches)
        with self.assertRaisesRegex(ValueError, "afire_plus.json"):
            lesion_probability(model, x)

    def test_pixel_residual(self):
        model = _model()
        x = torch.rand(1, 1, 16, 16)
        out = anomaly_maps(model, x, per_patch=False, mask_threshold=None)
        torch.testing.assert_close(out["residual"], (x - out["reconstruction"]).abs())

    def test_lesion_token_is_found_and_masked(self):
        model = _model()
        decoder_forward = model.decoder.forward
        masks = []

        def spy(tokens, token_labels):
            masks.append(token_labels.clone())
            return decoder_forward(tokens, token_labels)

        with (
            mock.patch.object(model.student.head, "forward", side_effect=_lesion_logits),
            mock.patch.object(model.decoder, "forward", side_effect=spy),
        ):
            out = anomaly_maps(model, torch.rand(1, 1, 16, 16))
        self.assertEqual(int(out["token_probability"][0].argmax()), LESION_TOKEN)
        self.assertGreater(float(out["token_probability"][0, LESION_TOKEN]), 0.99)
        self.assertEqual(torch.nonzero(masks[0][0]).flatten().tolist(), [LESION_TOKEN])
        peak = torch.nonzero(out["lesion_probability"][0, 0] == out["lesion_probability"][0, 0].max())
        self.assertTrue(((peak[:, 0] >= 4) & (peak[:, 0] < 8) & (peak[:, 1] >= 8) & (peak[:, 1] < 12)).all())

    def test_network_choice(self):
        model = _model()
        x = torch.rand(2, 1, 16, 16)
        with torch.no_grad():
            model.teacher.head.lesion_prototype.add_(1.0)  # teacher and student differ
            for network in ("student", "teacher"):
                branch = getattr(model, network)
                logits = branch.head(branch.patch_tokens(x), with_lesion=True)
                expected = torch.softmax(logits / 0.1, dim=-1)[..., -1]
                torch.testing.assert_close(lesion_probability(model, x, network=network), expected)
                out = anomaly_maps(model, x, network=network)
                torch.testing.assert_close(out["token_probability"], expected)
        self.assertFalse(torch.allclose(lesion_probability(model, x), lesion_probability(model, x, network="teacher")))
        with self.assertRaisesRegex(ValueError, "network must be one of"):
            lesion_probability(model, x, network="ema")

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "AFiRe model"):
            anomaly_maps(torch.nn.Identity(), torch.rand(1, 1, 16, 16))
        with self.assertRaisesRegex(ValueError, "temperature"):
            lesion_probability(_model(), torch.rand(1, 1, 16, 16), temperature=0.0)


if __name__ == "__main__":
    unittest.main()
