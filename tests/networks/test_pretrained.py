from __future__ import annotations

import os
import tempfile
import unittest

import torch

from monai_afire.networks import AFiRe, AFiReEncoder, load_pretrained_encoder


def encoder(hidden=24, **kwargs):
    return AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=hidden, num_layers=1, num_heads=2, **kwargs)


class TestLoadPretrainedEncoder(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.model = AFiRe(encoder(), num_prototypes=4, head_hidden_dim=8, head_bottleneck_dim=8, decoder_depth=1,
                           decoder_dim=16, decoder_heads=2)  # fmt: skip
        with torch.no_grad():  # make teacher and student differ
            for p in self.model.teacher.parameters():
                p.add_(torch.randn_like(p))
        self.x = torch.rand(2, 1, 32, 32)

    def assert_same_as_teacher(self, enc):
        with torch.no_grad():
            torch.testing.assert_close(enc(self.x), self.model.teacher_encoder()(self.x))

    def test_round_trip_from_training_checkpoint_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "checkpoint.pt")
            torch.save({"model": self.model.state_dict(), "optimizer": {"lr": 0.1}, "epoch": 3}, path)
            enc = encoder().eval()
            missing, unexpected = load_pretrained_encoder(path, enc)
        self.assertEqual((missing, unexpected), ([], []))
        self.assert_same_as_teacher(enc)

    def test_bare_state_dicts(self):
        for state in (self.model.state_dict(), self.model.teacher_encoder().state_dict()):
            enc = encoder().eval()
            load_pretrained_encoder(state, enc)
            self.assert_same_as_teacher(enc)
        ddp = {f"module.{k}": v for k, v in self.model.state_dict().items()}
        enc = encoder().eval()
        load_pretrained_encoder(ddp, enc)
        self.assert_same_as_teacher(enc)

    def test_refuses_other_architecture(self):
        with self.assertRaisesRegex(ValueError, r"another architecture.*weights \(1, 16, 24\) vs module \(1, 16, 48\)"):
            load_pretrained_encoder({"model": self.model.state_dict()}, encoder(hidden=48))

    def test_missing_keys(self):
        with_cls = encoder(class_token=True)
        with self.assertRaisesRegex(ValueError, "missing keys \\['cls_token'\\]"):
            load_pretrained_encoder(self.model.state_dict(), with_cls)
        missing, _ = load_pretrained_encoder(self.model.state_dict(), with_cls, ignore_missing=("cls_token",))
        self.assertEqual(missing, [])
        missing, unexpected = load_pretrained_encoder(self.model.state_dict(), with_cls, strict=False)
        self.assertEqual((missing, unexpected), (["cls_token"], []))

    def test_bad_sources(self):
        with self.assertRaisesRegex(FileNotFoundError, "nowhere.pt"):
            load_pretrained_encoder("/nonexistent/nowhere.pt", encoder())
        with self.assertRaisesRegex(ValueError, "no encoder weights"):
            load_pretrained_encoder({"weight": torch.zeros(2)}, encoder())


if __name__ == "__main__":
    unittest.main()
