from __future__ import annotations

import os
import tempfile
import unittest

import torch
from parameterized import parameterized

from monai_afire.networks import AFiRe, AFiReClassifier, AFiReEncoder, build_classifier
from monai_afire.optimizers import layer_decay_param_groups

ENCODER = {"arch": "vit_tiny", "img_size": 16, "patch_size": 4, "hidden_size": 16, "num_layers": 2, "num_heads": 2}
HEAD = {"num_prototypes": 8, "head_hidden_dim": 16, "head_bottleneck_dim": 8, "decoder_dim": 16, "decoder_depth": 1}


def _pretrained(**overrides) -> AFiRe:
    torch.manual_seed(0)
    model = AFiRe(AFiReEncoder(**{**ENCODER, **overrides}), decoder_heads=2, **HEAD)
    with torch.no_grad():  # make the teacher differ from the student, as after training
        for p in model.teacher.parameters():
            p.add_(torch.randn_like(p))
    return model


class TestAFiReClassifier(unittest.TestCase):
    @parameterized.expand([("mean", False), ("cls", True)])
    def test_forward(self, pooling, class_token):
        model = AFiReClassifier(AFiReEncoder(**ENCODER, class_token=class_token), 3, pooling=pooling)
        self.assertEqual(model(torch.rand(2, 1, 16, 16)).shape, (2, 3))

    def test_mean_pooling_is_token_mean(self):
        model = AFiReClassifier(AFiReEncoder(**ENCODER), 2).eval()
        x = torch.rand(2, 1, 16, 16)
        torch.testing.assert_close(model.features(x), model.encoder(x).mean(1))

    def test_linear_probe_freezes_encoder(self):
        model = AFiReClassifier(AFiReEncoder(**ENCODER, dropout_rate=0.5), 3, mode="linear_probe")
        model.train()
        self.assertFalse(model.encoder.training)
        self.assertTrue(model.head.training)
        self.assertFalse(any(p.requires_grad for p in model.encoder.parameters()))
        model(torch.rand(2, 1, 16, 16)).sum().backward()
        self.assertIsNotNone(model.head.weight.grad)
        self.assertFalse(any(m.training for m in model.encoder.modules()))

    @parameterized.expand(
        [
            ("pooling", {"pooling": "max"}),
            ("mode", {"mode": "partial"}),
            ("classes", {"num_classes": 0}),
            ("cls_without_token", {"pooling": "cls"}),
        ]
    )
    def test_bad_arguments(self, _, kwargs):
        args = {"num_classes": 3, **kwargs}
        with self.assertRaises(ValueError):
            AFiReClassifier(AFiReEncoder(**ENCODER), **args)


class TestLayerDecay(unittest.TestCase):
    def test_groups(self):
        model = AFiReClassifier(AFiReEncoder(**ENCODER), 3)
        groups = layer_decay_param_groups(model, base_lr=1.0, weight_decay=0.05, layer_decay=0.5)
        trainable = [p for p in model.parameters() if p.requires_grad]
        grouped = [p for g in groups for p in g["params"]]
        self.assertEqual(len(grouped), len(trainable))
        self.assertEqual({id(p) for p in grouped}, {id(p) for p in trainable})
        lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
        wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
        self.assertEqual(lr_of[id(model.head.weight)], 1.0)
        self.assertEqual(lr_of[id(model.encoder.norm.weight)], 1.0)
        self.assertEqual(lr_of[id(model.encoder.blocks[1].mlp.linear1.weight)], 0.5)
        self.assertEqual(lr_of[id(model.encoder.blocks[0].mlp.linear1.weight)], 0.25)
        self.assertEqual(lr_of[id(model.encoder.patch_embedding.patch_embeddings.weight)], 0.125)
        self.assertEqual(wd_of[id(model.head.weight)], 0.05)
        self.assertEqual(wd_of[id(model.head.bias)], 0.0)
        self.assertEqual(wd_of[id(model.encoder.blocks[0].norm1.weight)], 0.0)
        optimizer = torch.optim.AdamW(groups)
        self.assertEqual(len(optimizer.param_groups), len(groups))

    def test_linear_probe_has_only_head(self):
        model = AFiReClassifier(AFiReEncoder(**ENCODER), 3, mode="linear_probe")
        groups = layer_decay_param_groups(model, 1e-3, 0.05)
        self.assertEqual({id(p) for g in groups for p in g["params"]}, {id(model.head.weight), id(model.head.bias)})

    def test_bad_decay(self):
        with self.assertRaises(ValueError):
            layer_decay_param_groups(AFiReClassifier(AFiReEncoder(**ENCODER), 3), 1e-3, 0.05, layer_decay=0.0)


class TestBuildClassifier(unittest.TestCase):
    def _assert_teacher_weights(self, classifier, model):
        teacher = model.teacher_encoder().state_dict()
        loaded = classifier.encoder.state_dict()
        self.assertTrue(set(teacher) <= set(loaded))
        for key, value in teacher.items():
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)

    def test_checkpoint_file_loses_no_encoder_weight(self):
        model = _pretrained()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "checkpoint.pt")
            torch.save({"model": model.state_dict(), "epoch": 3}, path)
            classifier = build_classifier(4, path, **ENCODER)
        self._assert_teacher_weights(classifier, model)
        self.assertEqual(classifier(torch.rand(1, 1, 16, 16)).shape, (1, 4))

    @parameterized.expand(
        [("afire_state", lambda m: m.state_dict()), ("encoder", lambda m: m.teacher_encoder().state_dict())]
    )
    def test_state_dicts(self, _, state_fn):
        model = _pretrained()
        classifier = build_classifier(2, state_fn(model), mode="linear_probe", **ENCODER)
        self._assert_teacher_weights(classifier, model)

    def test_cls_pooling_adds_fresh_class_token(self):
        model = _pretrained()
        classifier = build_classifier(2, model.state_dict(), pooling="cls", **ENCODER)
        self.assertTrue(classifier.encoder.class_token)
        self._assert_teacher_weights(classifier, model)

    def test_random_init(self):
        classifier = build_classifier(2, init="random", **ENCODER)
        self.assertIsInstance(classifier, AFiReClassifier)

    @parameterized.expand([("width", {"hidden_size": 32}), ("depth", {"num_layers": 3}), ("patch", {"patch_size": 8})])
    def test_checkpoint_of_other_size(self, _, overrides):
        state = _pretrained().state_dict()
        with self.assertRaisesRegex(ValueError, "not an encoder of the configured size"):
            build_classifier(2, state, **{**ENCODER, **overrides})

    def test_not_a_checkpoint(self):
        with self.assertRaisesRegex(ValueError, "not an encoder"):
            build_classifier(2, {"optimizer": {"lr": torch.tensor(1.0)}}, **ENCODER)

    @parameterized.expand([("no_checkpoint", None, "pretrained"), ("bad_init", None, "imagenet")])
    def test_bad_init(self, _, checkpoint, init):
        with self.assertRaises(ValueError):
            build_classifier(2, checkpoint, init=init, **ENCODER)

    def test_checkpoint_with_random_init(self):
        with self.assertRaisesRegex(ValueError, "init='random'"):
            build_classifier(2, _pretrained().state_dict(), init="random", **ENCODER)


if __name__ == "__main__":
    unittest.main()
