from __future__ import annotations

import unittest

import torch
import torch.nn.functional as F

from monai_afire.networks import SpatialPrototypeHead


def naive_logits(head: SpatialPrototypeHead, tokens: torch.Tensor) -> torch.Tensor:
    """Loop over every token and position, straight from the definition."""
    b, n, _ = tokens.shape
    out = torch.zeros(b, n, head.num_prototypes + 1)
    for i in range(b):
        for j in range(n):
            u = head.mlp(tokens[i, j])
            u = u / u.norm()
            for k in range(head.num_prototypes):
                c = head.prototypes[j, k]
                out[i, j, k] = torch.dot(u, c / c.norm())
            out[i, j, -1] = torch.dot(u, head.lesion_prototype / head.lesion_prototype.norm())
    return out


class TestSpatialPrototypeHead(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.head = SpatialPrototypeHead(
            12, num_positions=5, num_prototypes=4, hidden_dim=16, bottleneck_dim=8, lesion_prototype=True
        )

    def test_matches_naive_loop(self):
        tokens = torch.randn(3, 5, 12)
        with torch.no_grad():
            self.head.prototypes.mul_(torch.rand(5, 4, 1) + 0.5)  # raw norms differ from 1: must not matter
            expected = naive_logits(self.head, tokens)
            out = self.head(tokens)
            without = self.head(tokens, with_lesion=False)
        self.assertEqual(tuple(out.shape), (3, 5, 5))
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(without, out[..., :4])

    def test_default_has_no_lesion_prototype(self):
        torch.manual_seed(0)
        head = SpatialPrototypeHead(12, num_positions=5, num_prototypes=4, hidden_dim=16, bottleneck_dim=8)
        self.assertFalse(head.has_lesion_prototype)
        self.assertTrue(self.head.has_lesion_prototype)
        self.assertEqual([n for n, _ in head.named_parameters() if "prototype" in n], ["prototypes"])
        tokens = torch.randn(3, 5, 12)
        with torch.no_grad():
            logits = head(tokens)
            self.assertEqual(tuple(logits.shape), (3, 5, 4))
            torch.testing.assert_close(head(tokens, with_lesion=False), logits)
            self.assertEqual(tuple(self.head(tokens).shape), (3, 5, 5))
        self.assertIsNone(head.prototype_vectors()[1])
        with self.assertRaisesRegex(ValueError, "no lesion prototype"):
            head(tokens, with_lesion=True)

    def test_mlp_layers(self):
        linears = [m for m in self.head.mlp if isinstance(m, torch.nn.Linear)]
        self.assertEqual([(m.in_features, m.out_features) for m in linears], [(12, 16), (16, 16), (16, 8)])
        self.assertEqual(sum(isinstance(m, torch.nn.GELU) for m in self.head.mlp), 2)
        one = SpatialPrototypeHead(12, 5, 4, 16, 8, nlayers=1)
        self.assertEqual(len(one.mlp), 1)

    def test_unit_norm_after_optimiser_step(self):
        opt = torch.optim.AdamW(self.head.parameters(), lr=0.5, weight_decay=0.3)
        tokens = torch.randn(4, 5, 12)
        for _ in range(3):
            opt.zero_grad()
            (self.head(tokens) ** 2).sum().neg().backward()
            opt.step()
        banks, lesion = self.head.prototype_vectors()
        torch.testing.assert_close(banks.norm(dim=-1), torch.ones(5, 4))
        torch.testing.assert_close(lesion.norm(), torch.tensor(1.0))
        with torch.no_grad():
            logits = self.head(tokens)
        self.assertLessEqual(logits.abs().max().item(), 1.0 + 1e-5)  # cosines of unit vectors
        # the gradient has no component along a prototype (its norm is not trained)
        self.head.zero_grad()
        self.head(tokens).sum().backward()
        radial = (self.head.prototypes.grad * self.head.prototypes.detach()).sum(-1)
        torch.testing.assert_close(radial, torch.zeros_like(radial), atol=1e-5, rtol=0)

    def test_batch_order_invariance(self):
        tokens = torch.randn(6, 5, 12)
        perm = torch.randperm(6)
        with torch.no_grad():
            torch.testing.assert_close(self.head(tokens)[perm], self.head(tokens[perm]))

    def test_position_specific_banks(self):
        tokens = torch.randn(1, 1, 12).expand(1, 5, 12)  # the same token at every position
        with torch.no_grad():
            logits = self.head(tokens, with_lesion=False)
        self.assertFalse(torch.allclose(logits[0, 0], logits[0, 1]))
        lesion = self.head(tokens)[..., -1].detach()
        torch.testing.assert_close(lesion, lesion[:, :1].expand_as(lesion))  # one lesion prototype for all

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "expected tokens"):
            self.head(torch.randn(2, 6, 12))
        with self.assertRaises(ValueError):
            SpatialPrototypeHead(12, 0)

    def test_normalised_projection(self):
        u = F.normalize(self.head.mlp(torch.randn(2, 5, 12)), dim=-1)
        torch.testing.assert_close(u.norm(dim=-1), torch.ones(2, 5))


if __name__ == "__main__":
    unittest.main()
