from __future__ import annotations

import unittest
import warnings

import torch
from parameterized import parameterized

from monai_afire.networks import AFiReEncoder

TINY = {"hidden_size": 24, "num_layers": 2, "num_heads": 2}


class TestAFiReEncoder(unittest.TestCase):
    @parameterized.expand(
        [
            (2, (32, 48), 8, (4, 6)),
            (3, (16, 16, 32), 8, (2, 2, 4)),
            (2, 32, (8, 16), (4, 2)),
        ]
    )
    def test_shapes(self, dims, img_size, patch, grid):
        enc = AFiReEncoder("vit_tiny", img_size=img_size, patch_size=patch, spatial_dims=dims, in_channels=2, **TINY)
        size = (img_size,) * dims if isinstance(img_size, int) else img_size
        tokens = enc(torch.rand(3, 2, *size))
        self.assertEqual(enc.grid_size, grid)
        self.assertEqual(enc.num_positions, torch.tensor(grid).prod().item())
        self.assertEqual(tuple(tokens.shape), (3, enc.num_positions, 24))
        self.assertEqual(enc.spatial_dims, dims)
        self.assertEqual(len(enc.blocks), 2)

    def test_class_token(self):
        enc = AFiReEncoder("vit_tiny", img_size=32, patch_size=8, class_token=True, **TINY)
        tokens, cls = enc(torch.rand(2, 1, 32, 32))
        self.assertEqual(tuple(tokens.shape), (2, 16, 24))
        self.assertEqual(tuple(cls.shape), (2, 24))

    def test_vit_base_224(self):
        enc = AFiReEncoder("vit_base", img_size=224)
        self.assertEqual(enc.num_positions, 196)
        self.assertEqual(enc.hidden_size, 768)
        self.assertEqual(len(enc.blocks), 12)
        self.assertEqual(enc.blocks[0].attn.num_heads, 12)
        self.assertEqual(enc.patch_size, (16, 16))

    def test_presets(self):
        for arch, width in (("vit_tiny", 192), ("vit_small", 384)):
            enc = AFiReEncoder(arch, img_size=32)
            self.assertEqual(enc.hidden_size, width)
            self.assertEqual(enc.norm.normalized_shape, (width,))

    def test_position_embedding_is_fixed_sincos(self):
        enc = AFiReEncoder("vit_tiny", img_size=32, patch_size=8, **TINY)
        pos = enc.patch_embedding.position_embeddings
        self.assertFalse(pos.requires_grad)
        self.assertTrue(all("position" not in n for n, p in enc.named_parameters() if p.requires_grad))
        self.assertLessEqual(pos.abs().max().item(), 1.0)
        self.assertEqual(len({tuple(row.tolist()) for row in pos[0]}), enc.num_positions)  # one code per position

    def test_config_rebuilds_identical_encoder(self):
        enc = AFiReEncoder("vit_tiny", img_size=32, patch_size=8, class_token=True, **TINY)
        twin = AFiReEncoder(**enc.config)
        twin.load_state_dict(enc.state_dict())
        x = torch.rand(2, 1, 32, 32)
        enc.eval(), twin.eval()
        torch.testing.assert_close(enc(x)[0], twin(x)[0])

    def test_eval_mode_is_deterministic_with_dropout(self):
        encoder = AFiReEncoder(img_size=32, patch_size=8, hidden_size=32, num_layers=2, num_heads=2, dropout_rate=0.3)
        encoder.eval()
        x = torch.rand(2, 1, 32, 32)
        with torch.no_grad():
            self.assertTrue(torch.equal(encoder(x), encoder(x)))
        encoder.train()
        with torch.no_grad():
            self.assertFalse(torch.equal(encoder(x), encoder(x)))

    @parameterized.expand(
        [
            ({"arch": "vit_huge"},),
            ({"img_size": 30, "patch_size": 8},),
            ({"spatial_dims": 4},),
            ({"hidden_size": 26, "num_heads": 2},),
            ({"hidden_size": 20, "num_heads": 2, "spatial_dims": 3},),
        ]
    )
    def test_bad_arguments(self, kwargs):
        args = {"img_size": 32, "patch_size": 8, **TINY, **kwargs}
        with self.assertRaises(ValueError):
            AFiReEncoder(**args)

    def test_wrong_input_size(self):
        enc = AFiReEncoder("vit_tiny", img_size=32, patch_size=8, **TINY)
        with self.assertRaisesRegex(ValueError, "expected input"):
            enc(torch.rand(1, 1, 64, 64))

    def test_trace_without_warnings(self):
        """TorchScript export (``monai.bundle ckpt_export --use_trace``) prints no TracerWarning; the traced encoder
        gives the encoder's tokens."""
        enc = AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=32, num_layers=1, num_heads=2).eval()
        x = torch.rand(2, 1, 32, 32)
        with warnings.catch_warnings():
            warnings.simplefilter("error", torch.jit.TracerWarning)
            traced = torch.jit.trace(enc, x)
        torch.testing.assert_close(traced(x), enc(x))
        with self.assertRaisesRegex(ValueError, "expected input"):
            enc(torch.rand(1, 1, 16, 16))  # eager calls still check


if __name__ == "__main__":
    unittest.main()
