import tempfile
import unittest
from pathlib import Path

import pytest
import torch
from parameterized import parameterized

from benchmarks.evidence_study import get_arm, get_preset
from benchmarks.evidence_study.data import generate_films
from benchmarks.evidence_study.downstream import _densenet, pixel_features
from benchmarks.evidence_study.maps import afire_maps, mae_maps
from benchmarks.evidence_study.pretrain import build_dino, build_mae, pretrain_arm
from benchmarks.evidence_study.ssl import dino_views, train_ssl
from monai_afire.apps import encode_tokens, train_classifier
from monai_afire.networks import AFiReEncoder, load_pretrained_encoder

# two steps of batch 4 on 8 films of 32 px
PRESET = get_preset("smoke", ["pretrain_films=8", "batch_size=4", "passes=1"])
TOKENS = (PRESET.image_size // PRESET.patch_size) ** 2


def _images(n: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, PRESET.image_size, PRESET.image_size, generator=g)


def _encoder_from(path: Path) -> AFiReEncoder:
    encoder = AFiReEncoder(**PRESET.encoder_kwargs())
    load_pretrained_encoder(path, encoder)
    return encoder


class TestArms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.films = generate_films(Path(cls.tmp.name) / "films", 8, 0, PRESET.image_size, 0.0, 0.0)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def _check_encoder(self, path: Path, start: AFiReEncoder | None = None) -> AFiReEncoder:
        encoder = _encoder_from(path)
        tokens = encode_tokens(encoder, _images(3))
        self.assertEqual(tuple(tokens.shape), (3, TOKENS, PRESET.hidden_size))
        self.assertTrue(torch.isfinite(tokens).all())
        if start is not None:  # training moved the weights
            moved = any(
                not torch.equal(a, b) for a, b in zip(encoder.state_dict().values(), start.state_dict().values())
            )
            self.assertTrue(moved)
        return encoder

    @parameterized.expand([("random",), ("mae",), ("dino",)])
    def test_hand_trained_arm(self, name):
        work = Path(self.tmp.name) / name
        path = pretrain_arm(get_arm(name), 0, PRESET, self.films, work, lambda: _images(8))
        start = _encoder_from(Path(pretrain_arm(get_arm("random"), 0, PRESET, self.films, work / "r", _images)))
        encoder = self._check_encoder(path, None if name == "random" else start)
        if name == "random":  # the same seed gives the same weights
            for a, b in zip(encoder.state_dict().values(), start.state_dict().values()):
                self.assertTrue(torch.equal(a, b))

    @parameterized.expand([("afire",), ("afire_plus",), ("no_lesions",)])
    @pytest.mark.slow
    def test_afire_arm_through_the_bundle(self, name):
        arm = get_arm(name)
        work = Path(self.tmp.name) / name
        path = pretrain_arm(arm, 0, PRESET, self.films, work, _images)
        self._check_encoder(path)
        done = (work / "bundle" / "done.json").read_text()
        self.assertIn("monai.bundle run", done)
        self.assertIn("train.json", done)
        self.assertEqual("afire_plus.json" in done, arm.has_lesion_prototype)
        from benchmarks.evidence_study.afire_bundle import load_afire_network

        model = load_afire_network(work / "bundle")
        maps = afire_maps(model, _images(2), arm.has_lesion_prototype)
        expected = {"residual_patch", "residual_pixel"} | (
            {"lesion_probability"} if arm.has_lesion_prototype else set()
        )
        self.assertEqual(set(maps), expected)
        for value in maps.values():
            self.assertEqual(tuple(value.shape), (2, PRESET.image_size, PRESET.image_size))
        # cached: a second call does not train again
        mtime = path.stat().st_mtime
        self.assertEqual(pretrain_arm(arm, 0, PRESET, self.films, work, _images), path)
        self.assertEqual(path.stat().st_mtime, mtime)

    def test_mae_masks_three_quarters_and_restores(self):
        model = build_mae(PRESET, 0)
        restored, masked = model(_images(2))
        self.assertEqual(restored.shape, (2, 1, PRESET.image_size, PRESET.image_size))
        self.assertEqual(int(masked[0].sum()), TOKENS - model.num_keep)
        self.assertEqual(model.num_keep, round(TOKENS * 0.25))
        history = train_ssl(
            model,
            lambda b, g: model.loss(b),
            _images(8),
            image_steps=8,
            batch_size=4,
            base_lr=0.01,
            warmup_steps=1,
            seed=0,
        )
        self.assertEqual(len(history), 2)
        maps = mae_maps(model, _images(2))
        self.assertEqual(tuple(maps["residual_pixel"].shape), (2, PRESET.image_size, PRESET.image_size))

    def test_dino_views_and_teacher(self):
        g = torch.Generator().manual_seed(0)
        x = _images(4)
        a, b = dino_views(x, g), dino_views(x, g)
        self.assertEqual(a.shape, x.shape)
        self.assertFalse(torch.equal(a, b))
        self.assertTrue(bool((a >= 0).all() and (a <= 1).all()))
        model = build_dino(PRESET, 0)
        before = [p.clone() for p in model.teacher.parameters()]
        train_ssl(
            model,
            lambda v, gen: model.loss(dino_views(v, gen), dino_views(v, gen)),
            x,
            image_steps=8,
            batch_size=4,
            base_lr=0.01,
            warmup_steps=1,
            seed=0,
            teacher_momentum=0.5,
        )
        self.assertTrue(any(not torch.equal(p, q) for p, q in zip(before, model.teacher.parameters())))

    def test_pixels_and_densenet(self):
        self.assertEqual(tuple(pixel_features(_images(3), PRESET.pixel_side).shape), (3, PRESET.pixel_side**2))
        y = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=torch.float32)
        net = _densenet(2, y.numpy(), 0)
        net = train_classifier(net, (_images(4), y), (_images(4, 1), y), epochs=1, lr=1e-3, batch_size=2, seed=0)
        self.assertEqual(tuple(net(_images(3)).shape), (3, 2))


if __name__ == "__main__":
    unittest.main()
