from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from monai_afire.networks import AnomalyRemovalDecoder, sincos_position_embedding


def tiny_decoder(grid=(4, 4), patch=4, channels=1, dim=24):
    return AnomalyRemovalDecoder(grid, patch, channels, encoder_dim=12, decoder_dim=dim, depth=1, num_heads=2)


class TestAnomalyRemovalDecoder(unittest.TestCase):
    @parameterized.expand(
        [
            ((4, 4), 4, 1, (16, 16)),
            ((2, 3), (4, 2), 2, (8, 6)),
            ((2, 2, 3), 4, 1, (8, 8, 12)),
            (16, 4, 1, (16, 16)),
        ]
    )
    def test_shapes(self, grid, patch, channels, size):
        dec = tiny_decoder(grid, patch, channels)
        n = dec.num_positions
        out = dec(torch.randn(2, n, 12), torch.rand(2, n) > 0.5)
        self.assertEqual(tuple(out.shape), (2, channels, *size))

    def test_unpatchify_raster_order(self):
        dec = tiny_decoder((2, 3), 2, 1)
        with torch.no_grad():
            dec.to_pixels.weight.zero_()
            dec.to_pixels.bias.copy_(torch.arange(4.0))
        out = dec(torch.randn(1, 6, 12), torch.zeros(1, 6, dtype=torch.bool))
        expected = torch.arange(4.0).reshape(2, 2).repeat(2, 3)
        torch.testing.assert_close(out[0, 0], expected)

    def test_mask_token_only_at_abnormal_positions(self):
        torch.manual_seed(0)
        dec = tiny_decoder()
        tokens = torch.randn(2, 16, 12)
        labels = torch.zeros(2, 16, dtype=torch.bool)
        labels[0, 3] = labels[1, 7] = labels[1, 3] = True
        dec(tokens, labels).sum().backward()
        rows_with_grad = (dec.mask_token.grad.abs().sum(-1) > 0).nonzero().flatten().tolist()
        self.assertEqual(rows_with_grad, [3, 7])
        # abnormal tokens are ignored; changing normal tokens changes the output
        with torch.no_grad():
            base = dec(tokens, labels)
            changed = tokens.clone()
            changed[0, 3] += 10.0
            torch.testing.assert_close(dec(changed, labels), base)
            changed[0, 4] += 10.0
            self.assertFalse(torch.allclose(dec(changed, labels), base))
            self.assertFalse(torch.allclose(dec(tokens, torch.zeros_like(labels)), base))

    def test_fixed_positions(self):
        dec = tiny_decoder()
        names = [n for n, _ in dec.named_parameters()]
        self.assertNotIn("position_embedding", names)
        self.assertNotIn("position_embedding", dec.state_dict())
        torch.testing.assert_close(dec.position_embedding, sincos_position_embedding((4, 4), 24))

    def test_sincos_any_width(self):
        table = sincos_position_embedding((2, 2, 3), 32)  # 32 is not a multiple of 6
        self.assertEqual(tuple(table.shape), (1, 12, 32))
        self.assertTrue(torch.all(table[..., 30:] == 0))
        self.assertEqual(len({tuple(r.tolist()) for r in table[0]}), 12)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "not a square"):
            tiny_decoder(15)
        with self.assertRaisesRegex(ValueError, "expected tokens"):
            tiny_decoder()(torch.randn(1, 9, 12), torch.zeros(1, 9, dtype=torch.bool))
        with self.assertRaises(ValueError):
            AnomalyRemovalDecoder((4, 4), 4, 1, 12, decoder_dim=24, num_heads=5)


if __name__ == "__main__":
    unittest.main()
