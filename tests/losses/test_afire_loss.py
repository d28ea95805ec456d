from __future__ import annotations

import unittest

import torch

from monai_afire.losses import AFiReLoss, AnatomyConsistencyLoss, AnomalyRemovalRestorationLoss


def outputs(seed=0, b=2, n=4, k=3):
    g = torch.Generator().manual_seed(seed)
    return {
        "student_logits": torch.rand(b, n, k + 1, generator=g, requires_grad=True),
        "teacher_logits": torch.rand(b, n, k, generator=g),
        "reconstruction": torch.rand(b, 1, 4, 4, generator=g, requires_grad=True),
        "token_labels": torch.tensor([[True, False, False, False], [False, False, True, True]]),
    }


class TestAFiReLoss(unittest.TestCase):
    def test_weighted_sum_of_components(self):
        out = outputs()
        clean, mask = torch.rand(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.7).float()
        loss = AFiReLoss(4, 3, structure_weight=0.5, category_weight=2.0, restoration_weight=3.0, lesion_weight=1.0)
        total, parts = loss(out, clean, mask)
        self.assertEqual(set(parts), {"structure", "category", "restoration"})
        self.assertTrue(all(isinstance(v, float) for v in parts.values()))
        anatomy = AnatomyConsistencyLoss(4, 3, category_weight=2.0)
        stru, cate = anatomy.structure_and_category(out["student_logits"], out["teacher_logits"], out["token_labels"])
        rest = AnomalyRemovalRestorationLoss(lesion_weight=1.0)(out["reconstruction"], clean, mask)
        torch.testing.assert_close(total, 0.5 * stru + 2.0 * cate + 3.0 * rest)
        self.assertAlmostEqual(parts["structure"], stru.item(), places=6)
        self.assertAlmostEqual(parts["restoration"], rest.item(), places=6)
        total.backward()
        self.assertIsNotNone(out["student_logits"].grad)
        self.assertIn("anatomy.prototype_state", loss.state_dict())

    def test_defaults_are_the_authors_objective(self):
        out = outputs()
        clean, mask = torch.rand(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
        loss = AFiReLoss(4, 3)
        self.assertEqual((loss.category_weight, loss.restoration.target), (0.0, "normalized"))
        without_lesion = dict(out, student_logits=out["student_logits"][..., :3])  # AFiRe(lesion_prototype=False)
        total, parts = loss(without_lesion, clean, mask)
        self.assertEqual(parts["category"], 0.0)
        raw = AnomalyRemovalRestorationLoss(target="raw")(out["reconstruction"], clean)
        self.assertAlmostEqual(parts["restoration"] / raw.item(), 19.6, delta=0.05)
        torch.testing.assert_close(total, torch.tensor(parts["structure"] + parts["restoration"]))
        raw_loss = AFiReLoss(4, 3, restoration_target="raw")
        self.assertAlmostEqual(raw_loss(without_lesion, clean, mask)[1]["restoration"], raw.item(), places=6)
        with self.assertRaisesRegex(ValueError, "lesion_prototype=True"):
            AFiReLoss(4, 3, category_weight=1.0)(without_lesion, clean, mask)

    def test_kwargs_reach_anatomy_loss(self):
        loss = AFiReLoss(4, 3, category_weight=0.0, student_temperature=0.2, prototype_momentum=0.9)
        self.assertEqual(loss.anatomy.student_temperature, 0.2)
        self.assertEqual(loss.anatomy.prototype_momentum, 0.9)
        self.assertEqual(loss.anatomy.category_weight, 0.0)

    def test_replace_prototypes(self):
        loss = AFiReLoss(4, 3, category_weight=1.0)
        out = outputs()
        loss(out, torch.rand(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
        out2 = outputs(seed=1)
        loss(out2, torch.rand(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), replace_prototypes=True)
        torch.testing.assert_close(loss.anatomy.prototype_state, out2["teacher_logits"].mean(0))

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "reconstruction"):
            AFiReLoss(4, 3)({"student_logits": torch.zeros(1)}, torch.zeros(1), torch.zeros(1))
        with self.assertRaises(ValueError):
            AFiReLoss(4, 3, restoration_weight=-1.0)


if __name__ == "__main__":
    unittest.main()
