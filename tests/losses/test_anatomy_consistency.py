from __future__ import annotations

import math
import os
import socket
import tempfile
import unittest

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from parameterized import parameterized

from monai_afire.losses import AnatomyConsistencyLoss, sinkhorn_knopp
from tests.losses.test_sinkhorn import naive_sinkhorn

B, L, K, T = 3, 4, 5, 0.1


def make_batch(seed=0, abnormal_fraction=0.3):
    g = torch.Generator().manual_seed(seed)
    student = torch.rand(B, L, K + 1, generator=g) * 2 - 1
    teacher = torch.rand(B, L, K, generator=g) * 2 - 1
    labels = torch.rand(B, L, generator=g) < abnormal_fraction
    return student, teacher, labels


def naive_terms(student, teacher, labels, with_lesion=True, previous=None, momentum=0.75):
    """Loop over every token and position, straight from the definitions."""
    b, n, k = teacher.shape
    mean = [[sum(float(teacher[i, j, c]) for i in range(b)) / b for c in range(k)] for j in range(n)]
    if previous is not None:
        mean = [[momentum * float(previous[j, c]) + (1 - momentum) * mean[j][c] for c in range(k)] for j in range(n)]
    q = naive_sinkhorn(torch.tensor(mean, dtype=torch.float64), 0.05, 3)
    stru, n_normal, cate, n_abnormal = 0.0, 0, 0.0, 0
    for i in range(b):
        for j in range(n):
            used = k + 1 if with_lesion else k
            logits = [float(student[i, j, c]) / T for c in range(used)]
            top = max(logits)
            log_z = top + math.log(sum(math.exp(v - top) for v in logits))
            if bool(labels[i, j]):
                if with_lesion:
                    cate += log_z - logits[k]
                    n_abnormal += 1
            else:
                stru += sum(-float(q[j, c]) * (logits[c] - log_z) for c in range(k))
                n_normal += 1
    return stru / max(n_normal, 1), cate / max(n_abnormal, 1), torch.tensor(mean)


class TestAnatomyConsistencyLoss(unittest.TestCase):
    @parameterized.expand([(0.3,), (0.0,), (1.0,)])
    def test_matches_naive_loop(self, fraction):
        student, teacher, labels = make_batch(abnormal_fraction=fraction)
        loss = AnatomyConsistencyLoss(L, K, student_temperature=T, category_weight=1.0)
        stru, cate = loss.structure_and_category(student, teacher, labels)
        ref_stru, ref_cate, ref_p = naive_terms(student, teacher, labels)
        self.assertAlmostEqual(stru.item(), ref_stru, delta=1e-5)
        self.assertAlmostEqual(cate.item(), ref_cate, delta=1e-5)
        torch.testing.assert_close(loss.prototype_state, ref_p)
        self.assertTrue(math.isfinite(stru.item()) and math.isfinite(cate.item()))
        # a second batch follows the EMA of the prototype state
        student2, teacher2, labels2 = make_batch(seed=1, abnormal_fraction=fraction)
        stru2, cate2 = loss.structure_and_category(student2, teacher2, labels2)
        ref_stru2, ref_cate2, ref_p2 = naive_terms(student2, teacher2, labels2, previous=ref_p)
        self.assertAlmostEqual(stru2.item(), ref_stru2, delta=1e-5)
        self.assertAlmostEqual(cate2.item(), ref_cate2, delta=1e-5)
        torch.testing.assert_close(loss.prototype_state, ref_p2)

    def test_empty_terms_are_zero_with_gradient(self):
        student, teacher, _ = make_batch()
        student.requires_grad_(True)
        loss = AnatomyConsistencyLoss(L, K, category_weight=1.0)
        stru, cate = loss.structure_and_category(student, teacher, torch.zeros(B, L, dtype=torch.bool))
        self.assertEqual(cate.item(), 0.0)
        stru2, cate2 = loss.structure_and_category(student, teacher, torch.ones(B, L, dtype=torch.bool))
        self.assertEqual(stru2.item(), 0.0)
        (stru + cate + stru2 + cate2).backward()
        self.assertTrue(torch.isfinite(student.grad).all())

    def test_category_weight_zero_is_authors_formulation(self):
        student, teacher, labels = make_batch()
        loss = AnatomyConsistencyLoss(L, K, category_weight=0.0)
        value = loss(student, teacher, labels)
        ref_stru, _, _ = naive_terms(student, teacher, labels, with_lesion=False)
        self.assertAlmostEqual(value.item(), ref_stru, delta=1e-5)
        # the lesion logit and the abnormal tokens play no part
        changed = student.clone()
        changed[..., K] += 5.0
        changed[labels] = 9.0
        loss.eval()
        torch.testing.assert_close(loss(changed, teacher, labels), loss(student, teacher, labels))
        # with a positive weight the lesion logit takes part in the structure softmax
        with_lesion = AnatomyConsistencyLoss(L, K, category_weight=1.0)
        stru, _ = with_lesion.structure_and_category(student, teacher, labels)
        self.assertGreater(stru.item(), value.item())

    def test_default_is_authors_formulation_and_accepts_logits_without_lesion(self):
        student, teacher, labels = make_batch()
        default = AnatomyConsistencyLoss(L, K)
        self.assertEqual(default.category_weight, 0.0)
        with self.assertWarnsRegex(UserWarning, "stays untrained"):
            with_lesion = default(student, teacher, labels)
        default.eval()
        without = default(student[..., :K], teacher, labels)  # a model with no lesion prototype: (B, L, K)
        torch.testing.assert_close(without, with_lesion)
        ref_stru, _, _ = naive_terms(student, teacher, labels, with_lesion=False)
        self.assertAlmostEqual(without.item(), ref_stru, delta=1e-5)
        with self.assertRaisesRegex(ValueError, "lesion_prototype=True"):
            AnatomyConsistencyLoss(L, K, category_weight=1.0)(student[..., :K], teacher, labels)
        with self.assertRaisesRegex(ValueError, "student_logits"):
            default(student[..., : K - 1], teacher, labels)

    def test_normal_tokens_put_no_mass_on_lesion(self):
        student, teacher, _ = make_batch()
        student.requires_grad_(True)
        loss = AnatomyConsistencyLoss(L, K, category_weight=1.0)
        stru, _ = loss.structure_and_category(student, teacher, torch.zeros(B, L, dtype=torch.bool))
        stru.backward()
        self.assertTrue(torch.all(student.grad[..., K] > 0))  # descent lowers the lesion logit of normal tokens

    def test_prototype_state_updates(self):
        loss = AnatomyConsistencyLoss(L, K, prototype_momentum=0.5)
        self.assertIn("prototype_state", loss.state_dict())
        student, teacher, labels = make_batch()
        loss(student, teacher, labels)
        torch.testing.assert_close(loss.prototype_state, teacher.mean(0))
        loss(student, teacher + 1.0, labels)
        torch.testing.assert_close(loss.prototype_state, teacher.mean(0) + 0.5)
        loss(student, teacher - 1.0, labels, replace_prototypes=True)
        torch.testing.assert_close(loss.prototype_state, teacher.mean(0) - 1.0)
        loss.eval()
        loss(student, teacher, labels)
        torch.testing.assert_close(loss.prototype_state, teacher.mean(0) - 1.0)
        torch.testing.assert_close(loss.targets(), sinkhorn_knopp(teacher.mean(0) - 1.0))

    def test_empty_batch_keeps_state(self):
        student, teacher, labels = make_batch()
        loss = AnatomyConsistencyLoss(L, K)
        loss(student, teacher, labels)
        state = loss.prototype_state.clone()
        value = loss(student[:0], teacher[:0], labels[:0])
        self.assertEqual(value.item(), 0.0)
        torch.testing.assert_close(loss.prototype_state, state)
        self.assertEqual(int(loss.num_updates), 1)

    def test_vectorised_is_batch_order_invariant(self):
        student, teacher, labels = make_batch()
        perm = torch.tensor([2, 0, 1])
        a = AnatomyConsistencyLoss(L, K, category_weight=1.0)(student, teacher, labels)
        b = AnatomyConsistencyLoss(L, K, category_weight=1.0)(student[perm], teacher[perm], labels[perm])
        torch.testing.assert_close(a, b)

    def test_bad_input(self):
        student, teacher, labels = make_batch()
        loss = AnatomyConsistencyLoss(L, K)
        with self.assertRaisesRegex(ValueError, "student_logits"):
            loss(student[..., : K - 1], teacher, labels)
        with self.assertRaisesRegex(ValueError, "teacher_logits"):
            loss(student, teacher[0], labels)
        b = student.shape[0]
        with self.assertRaisesRegex(ValueError, rf"token_labels must be \({b}, {L}\), got \({b}, 2\)"):
            loss(student, teacher, labels[:, :2])
        with self.assertRaises(ValueError):
            AnatomyConsistencyLoss(L, K, student_temperature=0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_worker(rank, world, port, out_dir, shards, rows):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        loss = AnatomyConsistencyLoss(L, K)
        for step, (student, teacher, labels) in enumerate(shards[rank]):
            loss(student, teacher, labels, replace_prototypes=step == 0)
        q_rows = sinkhorn_knopp(rows[rank], rows_distributed=True)
        torch.save({"state": loss.prototype_state, "targets": loss.targets(), "rows": q_rows}, f"{out_dir}/{rank}.pt")
    finally:
        dist.destroy_process_group()


class TestDistributed(unittest.TestCase):
    def test_two_process_gloo_matches_single_process(self):
        batches = [make_batch(seed=s) for s in range(3)]
        batches = [tuple(torch.cat([t, t[:2]]) for t in b) for b in batches]  # batch of 5: split 3 + 2
        single = AnatomyConsistencyLoss(L, K)
        for step, batch in enumerate(batches):
            single(*batch, replace_prototypes=step == 0)
        shards = [[tuple(t[:3] for t in b) for b in batches], [tuple(t[3:] for t in b) for b in batches]]
        scores = torch.rand(7, K) * 2 - 1
        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(_distributed_worker, args=(2, _free_port(), tmp, shards, [scores[:4], scores[4:]]), nprocs=2)
            results = [torch.load(f"{tmp}/{r}.pt", weights_only=True) for r in range(2)]
        for res in results:
            torch.testing.assert_close(res["state"], single.prototype_state)
            torch.testing.assert_close(res["targets"], single.targets())
        torch.testing.assert_close(torch.cat([results[0]["rows"], results[1]["rows"]]), sinkhorn_knopp(scores))


if __name__ == "__main__":
    unittest.main()
