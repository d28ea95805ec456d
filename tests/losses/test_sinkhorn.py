from __future__ import annotations

import math
import unittest

import torch
from parameterized import parameterized

from monai_afire.losses import sinkhorn_knopp
from monai_afire.utils import HostSyncCounter


def naive_sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """Element-by-element reference (SwAV's prototypes-by-samples layout, transposed back at the end)."""
    n, k = scores.shape
    q = [[math.exp(float(scores[i, j]) / epsilon) for i in range(n)] for j in range(k)]  # K x N
    for _ in range(iterations):
        for j in range(k):
            s = sum(q[j])
            q[j] = [v / s / k for v in q[j]]
        for i in range(n):
            s = sum(q[j][i] for j in range(k))
            for j in range(k):
                q[j][i] = q[j][i] / s / n
    return torch.tensor([[q[j][i] * n for j in range(k)] for i in range(n)], dtype=torch.float64)


class TestSinkhornKnopp(unittest.TestCase):
    @parameterized.expand([(0.05, 3), (0.5, 1), (0.1, 7)])
    def test_matches_naive_reference(self, epsilon, iterations):
        scores = torch.rand(6, 5) * 2 - 1
        expected = naive_sinkhorn(scores.double(), epsilon, iterations)
        out = sinkhorn_knopp(scores.double(), epsilon, iterations)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)

    def test_rows_sum_to_one_and_columns_equalise(self):
        torch.manual_seed(0)
        scores = torch.randn(20, 8) * 0.05
        q = sinkhorn_knopp(scores)
        self.assertEqual(q.dtype, torch.float32)
        torch.testing.assert_close(q.sum(1), torch.ones(20))
        self.assertTrue(torch.all(q >= 0))
        plain = torch.softmax(scores / 0.05, dim=1).sum(0)  # rows normalised only
        self.assertLess(q.sum(0).std().item(), 0.1 * plain.std().item())
        # peaked scores need more rounds; the column masses approach N / K as the rounds go on
        peaked = torch.randn(20, 8) * 0.3
        spread = [sinkhorn_knopp(peaked, iterations=i).sum(0).std().item() for i in (1, 3, 10, 200)]
        self.assertEqual(spread, sorted(spread, reverse=True))
        converged = sinkhorn_knopp(peaked, iterations=200)
        torch.testing.assert_close(converged.sum(0), torch.full((8,), 20 / 8), atol=1e-3, rtol=0)

    def test_stable_for_large_scores(self):
        scores = torch.tensor([[1000.0, 998.0, 997.0], [998.0, 999.0, 996.0]])
        q = sinkhorn_knopp(scores, epsilon=0.01)
        self.assertTrue(torch.isfinite(q).all())
        torch.testing.assert_close(q.sum(1), torch.ones(2))
        with self.assertRaisesRegex(ValueError, "underflow"):
            sinkhorn_knopp(torch.tensor([[1000.0, 0.0], [5.0, 900.0]]), epsilon=0.01)

    def test_shift_invariant_and_no_grad(self):
        scores = torch.randn(4, 3, requires_grad=True)
        q = sinkhorn_knopp(scores)
        self.assertFalse(q.requires_grad)
        torch.testing.assert_close(q, sinkhorn_knopp(scores.detach() + 7.0))

    def test_rows_distributed_without_process_group(self):
        scores = torch.randn(5, 4)
        torch.testing.assert_close(sinkhorn_knopp(scores, rows_distributed=True), sinkhorn_knopp(scores))

    @parameterized.expand([(torch.zeros(3),), (torch.zeros(0, 3),), (torch.tensor([[0.0, float("nan")]]),)])
    def test_bad_scores(self, scores):
        with self.assertRaises(ValueError):
            sinkhorn_knopp(scores)

    def test_bad_parameters(self):
        with self.assertRaisesRegex(ValueError, "epsilon"):
            sinkhorn_knopp(torch.zeros(2, 2), epsilon=0.0)

    def test_unchecked_range_reads_nothing_on_the_host(self):
        torch.manual_seed(0)
        scores = torch.rand(12, 6) * 2 - 1
        with HostSyncCounter() as syncs:
            unchecked = sinkhorn_knopp(scores, check_range=False)
        self.assertEqual(syncs.calls, [])
        torch.testing.assert_close(unchecked, sinkhorn_knopp(scores))
        with HostSyncCounter() as syncs:
            sinkhorn_knopp(scores)
        self.assertEqual(len(syncs.calls), 1)  # the range check
        bad = scores.clone()
        bad[0, 0] = float("nan")
        self.assertTrue(torch.isnan(sinkhorn_knopp(bad, check_range=False)).any())  # no error: NaN goes on
        wide = torch.tensor([[0.0, 100.0], [50.0, 0.0]])
        out = sinkhorn_knopp(wide, epsilon=0.05, check_range=False)  # range / epsilon = 2000 > 700: clamped
        self.assertTrue(torch.isfinite(out).all())
        torch.testing.assert_close(out.sum(1), torch.ones(2))


if __name__ == "__main__":
    unittest.main()
