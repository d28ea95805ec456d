"""Self-describing weight files: the encoder's settings travel with its weights (issue 12, finding 1)."""

from __future__ import annotations

import unittest

import torch
from ignite.engine import Engine
from parameterized import parameterized

from monai_afire.handlers import PretrainCheckpoint, latest_checkpoint, save_teacher_encoder
from monai_afire.networks import (
    AFiRe,
    AFiReEncoder,
    AFiReFeatureMap,
    build_classifier,
    encoder_config,
    input_size,
    load_pretrained_encoder,
    read_encoder_config,
    resolve_encoder_config,
)
from tests.tiny import TmpDirTestCase

#: a demo-like encoder: not the preset's width, depth or image size
SETTINGS = {"arch": "vit_tiny", "img_size": 48, "patch_size": 8, "hidden_size": 24, "num_layers": 3, "num_heads": 2}


def tiny_afire(**settings) -> AFiRe:
    torch.manual_seed(0)
    encoder = AFiReEncoder(**{**SETTINGS, **settings})
    return AFiRe(encoder, num_prototypes=4, head_hidden_dim=8, head_bottleneck_dim=8, decoder_dim=16, decoder_depth=1,
                 decoder_heads=2)  # fmt: skip


class TestSelfDescribingFiles(TmpDirTestCase):
    def setUp(self):
        super().setUp()
        self.model = tiny_afire()
        self.x = torch.rand(2, 1, 48, 48)

    def test_teacher_encoder_file_builds_its_encoder(self):
        path = save_teacher_encoder(self.model, self.tmp / "models" / "teacher_encoder.pt")
        raw = torch.load(path, weights_only=True)  # plain tensors, numbers, strings and lists
        self.assertEqual(sorted(raw), ["encoder_config", "model"])
        self.assertEqual(raw["encoder_config"]["hidden_size"], 24)
        self.assertEqual(raw["encoder_config"]["img_size"], [48, 48])
        encoder = load_pretrained_encoder(path)  # no encoder given: built from the file
        self.assertIsInstance(encoder, AFiReEncoder)
        self.assertEqual(encoder.config, self.model.teacher_encoder().config)
        with torch.no_grad():
            torch.testing.assert_close(encoder.eval()(self.x), self.model.teacher_encoder()(self.x))
        # an encoder given by the caller still gets (missing, unexpected) back
        self.assertEqual(load_pretrained_encoder(path, AFiReEncoder(**SETTINGS)), ([], []))

    def test_pretraining_checkpoint_carries_the_settings(self):
        optimizer = torch.optim.AdamW(self.model.parameters())
        engine = Engine(lambda e, b: None)
        handler = PretrainCheckpoint(self.tmp / "models", self.model, optimizer)
        handler.attach(engine)
        engine.run([0], max_epochs=1)
        checkpoint = latest_checkpoint(self.tmp / "models")
        self.assertEqual(read_encoder_config(checkpoint), encoder_config(self.model.teacher_encoder()))
        encoder = load_pretrained_encoder(checkpoint)
        self.assertEqual(encoder.config["num_layers"], 3)
        # resuming with another encoder is refused, naming the setting
        other = tiny_afire(num_heads=4)
        engine = Engine(lambda e, b: None)
        PretrainCheckpoint(self.tmp / "models", other, torch.optim.AdamW(other.parameters())).attach(engine)
        with self.assertRaisesRegex(ValueError, r"num_heads: checkpoint 2, this run 4"):
            engine.run([0], max_epochs=2)

    def test_bare_state_dict_needs_an_encoder(self):
        path = self.tmp / "bare.pt"
        torch.save(self.model.teacher_encoder().state_dict(), path)
        self.assertIsNone(read_encoder_config(path))
        with self.assertRaisesRegex(ValueError, r"bare.pt.*without the encoder's settings.*cannot be known"):
            load_pretrained_encoder(path)
        encoder = AFiReEncoder(**SETTINGS)
        self.assertEqual(load_pretrained_encoder(path, encoder), ([], []))  # still loads into a given encoder

    def test_resolve_encoder_config(self):
        path = save_teacher_encoder(self.model, self.tmp / "teacher_encoder.pt")
        defaults = {"arch": "vit_base", "img_size": 224, "patch_size": 16}
        resolved = resolve_encoder_config(path, defaults)
        self.assertEqual((resolved["hidden_size"], resolved["img_size"]), (24, [48, 48]))
        self.assertEqual(input_size(resolved), 48)
        # explicit settings that agree (an int for every axis) or do not shape the weights are fine
        self.assertEqual(resolve_encoder_config(path, defaults, img_size=48, dropout_rate=0.1)["dropout_rate"], 0.1)
        with self.assertRaisesRegex(ValueError, r"hidden_size=32 but .*encoder.pt' was trained with hidden_size=24"):
            resolve_encoder_config(path, defaults, hidden_size=32)
        with self.assertRaisesRegex(ValueError, r"image_size=224 but .* image_size=\[48, 48\]"):
            resolve_encoder_config(path, defaults, img_size=224)
        # nothing saved: the defaults with the explicit settings on top
        self.assertEqual(resolve_encoder_config(None, defaults, arch="vit_small"), {**defaults, "arch": "vit_small"})

    @parameterized.expand([("mean", False), ("cls", True)])
    def test_classifier_takes_the_architecture_from_the_checkpoint(self, pooling, class_token):
        path = save_teacher_encoder(self.model, self.tmp / "teacher_encoder.pt")
        defaults = {"arch": "vit_base", "img_size": 224, "patch_size": 16}  # what the bundle uses without a file
        model = build_classifier(3, path, pooling=pooling, encoder_defaults=defaults, arch=None, img_size=None)
        self.assertEqual(model.encoder.config["hidden_size"], 24)
        self.assertEqual(model.encoder.class_token, class_token)
        self.assertEqual(model(self.x).shape, (2, 3))
        with self.assertRaisesRegex(ValueError, "num_layers=12 but .* num_layers=3"):
            build_classifier(3, path, encoder_defaults=defaults, num_layers=12)

    def test_bare_checkpoint_of_another_size_explains(self):
        path = self.tmp / "bare.pt"
        torch.save({"model": self.model.state_dict()}, path)
        with self.assertRaisesRegex(ValueError, r"not an encoder of the configured size.*without the encoder's"):
            build_classifier(3, path, encoder_defaults={"arch": "vit_tiny", "img_size": 48, "patch_size": 8})


class TestScriptable(unittest.TestCase):
    def test_feature_map_and_classifier_script(self):
        torch.manual_seed(0)
        feature_map = AFiReFeatureMap(**SETTINGS).eval()
        encoder = AFiReEncoder(**SETTINGS).eval()
        encoder.load_state_dict(feature_map.state_dict())  # the same weights, the same keys
        x = torch.rand(2, 1, 48, 48)
        scripted = torch.jit.script(feature_map)
        tokens = encoder(x)
        expected = tokens.transpose(1, 2).reshape(2, 24, 6, 6)
        torch.testing.assert_close(scripted(x), expected)
        torch.testing.assert_close(feature_map(x), expected)
        for pooling in ("mean", "cls"):
            classifier = build_classifier(4, init="random", pooling=pooling, **SETTINGS).eval()
            torch.testing.assert_close(torch.jit.script(classifier)(x), classifier(x))
        with self.assertRaisesRegex(ValueError, r"expected input \(B, 1, \*\(48, 48\)\)"):
            feature_map(torch.rand(1, 1, 32, 32))


if __name__ == "__main__":
    unittest.main()
