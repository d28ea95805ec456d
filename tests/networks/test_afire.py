from __future__ import annotations

import unittest

import torch
from ignite.engine import Engine
from ignite.handlers import EMAHandler
from parameterized import parameterized

from monai_afire.losses import AFiReLoss
from monai_afire.networks import AFiRe, AFiReEncoder


def tiny_model(img_size=32, spatial_dims=2, seed=0, **kwargs):
    torch.manual_seed(seed)
    enc = AFiReEncoder(
        "vit_tiny",
        img_size=img_size,
        patch_size=8,
        spatial_dims=spatial_dims,
        hidden_size=24,
        num_layers=2,
        num_heads=2,
    )
    args = {"num_prototypes": 8, "head_hidden_dim": 32, "head_bottleneck_dim": 16}
    args.update({"decoder_dim": 24, "decoder_depth": 1, "decoder_heads": 2, **kwargs})
    return AFiRe(enc, **args)


def lesion_batch(batch, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(batch, 1, *size, generator=g)
    mask = torch.zeros(batch, 1, *size)
    for i in range(batch):
        if i % 4:  # every fourth image has no lesion
            corner = [int(torch.randint(0, s - 8, (1,), generator=g)) for s in size]
            mask[(i, 0, *[slice(c, c + 8) for c in corner])] = 0.5
    return (clean + mask).clamp(0, 1), clean, mask


class TestAFiRe(unittest.TestCase):
    @parameterized.expand([(2, (32, 32), p) for p in (False, True)] + [(3, (16, 16, 24), p) for p in (False, True)])
    def test_forward_shapes(self, dims, size, lesion_prototype):
        model = tiny_model(img_size=size, spatial_dims=dims, lesion_prototype=lesion_prototype)
        self.assertEqual(model.has_lesion_prototype, lesion_prototype)
        lesioned, clean, mask = lesion_batch(2, size)
        out = model(lesioned, clean, mask)
        n = model.num_positions
        self.assertEqual(tuple(out["student_logits"].shape), (2, n, 9 if lesion_prototype else 8))
        self.assertEqual(tuple(out["teacher_logits"].shape), (2, n, 8))
        self.assertEqual(out["reconstruction"].shape, clean.shape)
        self.assertEqual(out["token_labels"].dtype, torch.bool)
        self.assertEqual(tuple(out["token_labels"].shape), (2, n))
        self.assertFalse(out["teacher_logits"].requires_grad)
        self.assertTrue(out["token_labels"][1].any() and not out["token_labels"][0].any())

    def test_teacher_is_frozen_copy(self):
        model = tiny_model()
        s_names = [n for n, _ in model.student.named_parameters()]
        t_names = [n for n, _ in model.teacher.named_parameters()]
        self.assertEqual(s_names, t_names)
        self.assertTrue(all(not p.requires_grad for p in model.teacher.parameters()))
        model.train()
        self.assertFalse(model.teacher.training)
        self.assertTrue(model.student.training)
        self.assertIs(model.teacher_encoder(), model.teacher.encoder)
        self.assertIsInstance(model.teacher_encoder(), AFiReEncoder)
        protos = list(model.prototype_parameters())
        self.assertEqual(len(protos), 1)  # the authors' head: no lesion prototype
        self.assertIs(protos[0], model.student.head.prototypes)
        self.assertIsNone(model.student.head.lesion_prototype)
        self.assertNotIn("student.head.lesion_prototype", model.state_dict())
        plus = list(tiny_model(lesion_prototype=True).prototype_parameters())
        self.assertEqual(len(plus), 2)
        self.assertTrue(all(p.requires_grad for p in protos + plus))

    @parameterized.expand([(False, 0.0), (True, 1.0)])
    def test_no_gradient_reaches_teacher(self, lesion_prototype, category_weight):
        model = tiny_model(lesion_prototype=lesion_prototype)
        lesioned, clean, mask = lesion_batch(4, (32, 32))
        out = model(lesioned, clean, mask)
        total, _ = AFiReLoss(16, 8, category_weight=category_weight)(out, clean, mask)
        total.backward()
        self.assertTrue(all(p.grad is None for p in model.teacher.parameters()))
        # every trainable parameter of the student and decoder is used (DDP needs no find_unused_parameters)
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        self.assertEqual(no_grad, [])
        self.assertIsNotNone(model.student.head.prototypes.grad)
        self.assertIsNotNone(model.student.encoder.blocks[0].mlp.linear1.weight.grad)

    def test_update_teacher(self):
        model = tiny_model()
        with torch.no_grad():
            for p in model.student.parameters():
                p.add_(1.0)
        before = [p.clone() for p in model.teacher.parameters()]
        model.update_teacher(0.9)
        for t0, t1, s in zip(before, model.teacher.parameters(), model.student.parameters()):
            torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * s)
        model.update_teacher(0.0)
        for t, s in zip(model.teacher.parameters(), model.student.parameters()):
            torch.testing.assert_close(t, s)
        with self.assertRaisesRegex(ValueError, "momentum"):
            model.update_teacher(1.5)

    def test_update_teacher_is_ignite_ema_arithmetic(self):
        """update_teacher (the one EMA path) gives bit for bit what Ignite's EMAHandler gave on the same weights."""
        model, reference = tiny_model(), tiny_model()
        handler = EMAHandler(reference.student, momentum=1.0 - 0.996)
        handler.ema_model = reference.teacher
        engine = Engine(lambda e, b: None)
        handler.attach(engine)
        with torch.no_grad():
            for a, b in zip(model.student.parameters(), reference.student.parameters()):
                a.add_(0.37)
                b.add_(0.37)
        engine.run([0], max_epochs=1)
        model.update_teacher(0.996)
        for name, t, e in zip(
            [n for n, _ in model.teacher.named_parameters()], model.teacher.parameters(), reference.teacher.parameters()
        ):
            self.assertTrue(torch.equal(t, e), name)

    def test_batch_order_invariance(self):
        model = tiny_model().eval()
        lesioned, clean, mask = lesion_batch(4, (32, 32))
        perm = torch.tensor([2, 0, 3, 1])
        with torch.no_grad():
            a = model(lesioned, clean, mask)
            b = model(lesioned[perm], clean[perm], mask[perm])
        for key in ("student_logits", "teacher_logits", "reconstruction"):
            torch.testing.assert_close(a[key][perm], b[key], atol=1e-5, rtol=1e-5)

    @parameterized.expand([("authors", False, 0.0), ("afire_plus", True, 1.0)])
    def test_training_lowers_each_component(self, _, lesion_prototype, category_weight):
        model = tiny_model(seed=1, lesion_prototype=lesion_prototype)
        # a teacher unlike the student: a copy would start the structure term at its optimum (same weights)
        model.teacher.load_state_dict(tiny_model(seed=11, lesion_prototype=lesion_prototype).teacher.state_dict())
        loss_fn = AFiReLoss(model.num_positions, 8, category_weight=category_weight)
        lesioned, clean, mask = lesion_batch(8, (32, 32), seed=3)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
        history = []
        for step in range(30):
            out = model(lesioned, clean, mask)
            total, parts = loss_fn(out, clean, mask, replace_prototypes=step == 0)
            opt.zero_grad()
            total.backward()
            opt.step()
            model.update_teacher(1.0)  # a still teacher keeps the targets fixed on this fixed batch
            history.append({"total": total.item(), **parts})
        keys = ("total", "structure", "restoration") + (("category",) if category_weight else ())
        for key in keys:
            self.assertLess(history[-1][key], 0.9 * history[0][key], key)
        if not category_weight:
            self.assertTrue(all(h["category"] == 0.0 for h in history))

    def test_multichannel_mask_and_bad_shapes(self):
        model = tiny_model()
        lesioned, clean, mask = lesion_batch(2, (32, 32))
        out = model(lesioned, clean, torch.cat([torch.zeros_like(mask), mask], dim=1))
        torch.testing.assert_close(out["token_labels"], model(lesioned, clean, mask)["token_labels"])
        with self.assertRaisesRegex(ValueError, "must match"):
            model(lesioned, clean[:1], mask)
        with self.assertRaisesRegex(ValueError, "AFiReEncoder"):
            AFiRe(torch.nn.Linear(2, 2))


if __name__ == "__main__":
    unittest.main()
