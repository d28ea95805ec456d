from __future__ import annotations

import math
import unittest

import torch
from ignite.engine import Events
from monai.engines.utils import IterationEvents
from monai.inferers import SimpleInferer
from parameterized import parameterized

from monai_afire.data import RepeatedDataset
from monai_afire.engines import AFiRePrepareBatch, AFiRePretrainer, clip_gradients
from monai_afire.handlers import TeacherEMA
from tests.tiny import tiny_batches, tiny_loss, tiny_model, tiny_trainer


class RecordingLoss(torch.nn.Module):
    """Wrap an AFiReLoss and record the replace_prototypes flag of every call."""

    def __init__(self, loss):
        super().__init__()
        self.loss, self.flags = loss, []

    def forward(self, outputs, clean, mask, replace_prototypes=False):
        self.flags.append(replace_prototypes)
        return self.loss(outputs, clean, mask, replace_prototypes=replace_prototypes)


class TestAFiRePretrainer(unittest.TestCase):
    def test_iteration_outputs_and_events(self):
        model = tiny_model()
        trainer = tiny_trainer(model, max_epochs=1)
        fired = []
        for event in IterationEvents:
            trainer.add_event_handler(event, lambda e, ev=event: fired.append(ev))
        outputs = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
        trainer.run()
        self.assertEqual(len(outputs), 2)
        for out in outputs:
            self.assertEqual(set(out), {"loss", "structure", "category", "restoration"})
            self.assertFalse(out["loss"].requires_grad)
            self.assertTrue(torch.isfinite(out["loss"]))
        self.assertEqual(
            fired[:4],
            [
                IterationEvents.FORWARD_COMPLETED,
                IterationEvents.LOSS_COMPLETED,
                IterationEvents.BACKWARD_COMPLETED,
                IterationEvents.MODEL_COMPLETED,
            ],
        )
        self.assertTrue(math.isfinite(trainer.state.grad_norm))  # the norm before clipping, of a real gradient
        self.assertGreater(trainer.state.grad_norm, 0.0)

    def test_prototypes_frozen_first_epoch_and_replaced(self):
        model = tiny_model()
        trainer = tiny_trainer(model, max_epochs=2)
        trainer.loss_function = RecordingLoss(trainer.loss_function)
        before = model.student.head.prototypes.detach().clone()
        other = model.student.head.mlp[0].weight.detach().clone()
        snapshots = {}
        trainer.add_event_handler(
            Events.EPOCH_COMPLETED,
            lambda e: snapshots.update({e.state.epoch: model.student.head.prototypes.detach().clone()}),
        )
        trainer.run()
        self.assertTrue(torch.equal(snapshots[1], before))
        self.assertFalse(torch.equal(snapshots[2], before))
        self.assertFalse(torch.equal(model.student.head.mlp[0].weight, other))
        self.assertEqual(trainer.loss_function.flags, [True, True, False, False])

    def test_teacher_follows_student_by_ema(self):
        model = tiny_model()
        trainer = tiny_trainer(model, max_epochs=1, n=4)
        teacher_before = [p.detach().clone() for p in model.teacher.parameters()]
        trainer.run()
        momentum = trainer.state.ema_momentum  # Ignite's momentum, 1 - teacher momentum
        self.assertAlmostEqual(momentum, 0.004)
        for t0, t, s in zip(teacher_before, model.teacher.parameters(), model.student.parameters()):
            torch.testing.assert_close(t, (1 - momentum) * t0 + momentum * s, rtol=1e-5, atol=1e-6)
        self.assertFalse(any(p.requires_grad for p in model.teacher.parameters()))

    @parameterized.expand([(1e-3,), (0.05,), (100.0,)])
    def test_per_tensor_clipping_equals_clipping_each_tensor_alone(self, max_norm):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.zeros(s)) for s in ((3, 4), (5,), (2, 2, 2), (7,))]
        for p, scale in zip(params, (0.01, 1.0, 3.0, 0.0)):
            p.grad = torch.randn(p.shape) * scale
        params.append(torch.nn.Parameter(torch.zeros(2)))  # no gradient: skipped
        expected = []
        for p in params[:4]:
            alone = torch.nn.Parameter(p.detach().clone())
            alone.grad = p.grad.clone()
            torch.nn.utils.clip_grad_norm_([alone], max_norm)
            expected.append(alone.grad)
        total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params[:4]]))
        returned = clip_gradients(params, max_norm, "per_tensor")
        torch.testing.assert_close(returned, total)
        for p, e in zip(params[:4], expected):
            torch.testing.assert_close(p.grad, e, rtol=0, atol=0)
        self.assertIsNone(params[4].grad)
        # the global mode is torch's clip_grad_norm_ over all tensors together
        grads = [torch.randn(3, 4), torch.randn(5) * 4]
        a = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        b = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for pa, pb, g in zip(a, b, grads):
            pa.grad, pb.grad = g.clone(), g.clone()
        torch.testing.assert_close(clip_gradients(a, max_norm, "global"), torch.nn.utils.clip_grad_norm_(b, max_norm))
        for pa, pb in zip(a, b):
            torch.testing.assert_close(pa.grad, pb.grad)
        with self.assertRaisesRegex(ValueError, "mode"):
            clip_gradients(a, 1.0, "layer")

    def test_per_tensor_clipping_in_the_trainer(self):
        model = tiny_model()
        trainer = tiny_trainer(model, max_epochs=1, n=4, clip_grad_norm=1e-3)
        self.assertEqual(trainer.clip_grad_mode, "per_tensor")
        norms = []
        trainer.add_event_handler(
            IterationEvents.MODEL_COMPLETED,
            lambda e: norms.append(
                [float(p.grad.norm()) for g in e.optimizer.param_groups for p in g["params"] if p.grad is not None]
            ),
        )
        trainer.run()
        self.assertGreater(trainer.state.grad_norm, 1e-3)
        self.assertTrue(all(n <= 1e-3 * 1.01 for n in norms[0]))
        self.assertGreater(sum(n**2 for n in norms[0]) ** 0.5, 2e-3)  # not the global clip
        with self.assertRaisesRegex(ValueError, "clip_grad_mode"):
            tiny_trainer(model, clip_grad_mode="norm")

    def test_gradient_clipping(self):
        model = tiny_model()
        trainer = tiny_trainer(model, max_epochs=1, n=4, clip_grad_norm=1e-3, clip_grad_mode="global")
        norms = []
        trainer.add_event_handler(
            IterationEvents.MODEL_COMPLETED,
            lambda e: norms.append(
                torch.nn.utils.get_total_norm(
                    [p.grad for g in e.optimizer.param_groups for p in g["params"] if p.grad is not None]
                )
            ),
        )
        trainer.run()
        self.assertGreater(trainer.state.grad_norm, 1e-3)  # the norm before clipping
        self.assertLessEqual(float(norms[0]), 1e-3 * 1.01)

    def test_bf16_amp_on_cpu(self):
        model = tiny_model()
        trainer = tiny_trainer(model, max_epochs=1, n=4, amp="bf16")
        trainer.run()
        self.assertIsNone(trainer.scaler)
        self.assertTrue(torch.isfinite(trainer.state.output["loss"]))

    def test_bad_arguments(self):
        model = tiny_model()
        with self.assertRaisesRegex(ValueError, "amp must be"):
            tiny_trainer(model, amp="fp8")
        with self.assertRaisesRegex(ValueError, "TeacherEMA"):
            TeacherEMA(torch.nn.Linear(2, 2))

    def test_prepare_batch_and_inferer_are_used(self):
        model = tiny_model()
        calls = []

        class RecordingInferer(SimpleInferer):
            def __call__(self, inputs, network, *args, **kwargs):
                calls.append((inputs, *args))
                return super().__call__(inputs, network, *args, **kwargs)

        trainer = tiny_trainer(model, max_epochs=1, n=8, inferer=RecordingInferer())
        self.assertIsInstance(trainer.prepare_batch, AFiRePrepareBatch)
        trainer.run()
        self.assertEqual(len(calls), 2)
        batch = tiny_batches(8)[:4]  # the first batch of 4
        lesioned, clean, mask = calls[0]
        torch.testing.assert_close(lesioned, torch.stack([b["image"] for b in batch]))
        torch.testing.assert_close(clean, torch.stack([b["clean"] for b in batch]))
        torch.testing.assert_close(mask, torch.stack([b["lesion_mask"] for b in batch]))

    def test_prepare_batch_keys(self):
        batch = {"x": torch.zeros(1, 1, 4, 4), "y": torch.ones(1, 1, 4, 4), "m": torch.full((1, 1, 4, 4), 2.0)}
        lesioned, clean, args, kwargs = AFiRePrepareBatch("x", "y", "m")(batch, "cpu")
        self.assertEqual((float(lesioned.sum()), float(clean.sum()), kwargs), (0.0, 16.0, {}))
        self.assertIs(args[0], clean)
        self.assertEqual(float(args[1].sum()), 32.0)
        with self.assertRaisesRegex(ValueError, "must be a dict"):
            AFiRePrepareBatch()([batch["x"]], "cpu")

    def test_second_run_continues_with_the_same_scaler(self):
        model = tiny_model()
        trainer = tiny_trainer(model, max_epochs=1, n=4, amp="fp16")
        scaler = trainer.grad_scaler
        self.assertIsNotNone(scaler)
        trainer.run()
        self.assertIs(trainer.scaler, scaler)  # MONAI's Trainer.run ran, then the trainer's own scaler was put back
        trainer.state.max_epochs = 2
        trainer.run()
        self.assertEqual(trainer.state.epoch, 2)
        self.assertIs(trainer.scaler, scaler)

    def test_missing_batch_key(self):
        model = tiny_model()
        data = [{k: v for k, v in b.items() if k != "lesion_mask"} for b in tiny_batches(4)]
        loader = torch.utils.data.DataLoader(data, batch_size=2)
        optimizer = torch.optim.AdamW(model.parameters())
        trainer = AFiRePretrainer("cpu", 1, loader, model, optimizer, tiny_loss(model))
        with self.assertRaisesRegex(ValueError, "lesion_mask"):
            trainer.run()


class TestLesionCopiesPerEpoch(unittest.TestCase):
    def test_five_copies_make_epochs_and_epoch_schedules_five_times_longer(self):
        """Warm-up, prototype freezing and the first-epoch prototype replacement count the longer epoch."""
        runs = {}
        for copies in (1, 5):
            model = tiny_model()
            loader = torch.utils.data.DataLoader(RepeatedDataset(tiny_batches(8), copies), batch_size=4)
            trainer = tiny_trainer(model, max_epochs=2, loader=loader)  # warm-up 1 epoch, prototypes frozen 1 epoch
            trainer.loss_function = RecordingLoss(trainer.loss_function)
            lrs, frozen = [], []
            before = model.student.head.prototypes.detach().clone()
            trainer.add_event_handler(
                Events.ITERATION_COMPLETED, lambda e, lrs=lrs: lrs.append(e.optimizer.param_groups[0]["lr"])
            )
            trainer.add_event_handler(
                Events.ITERATION_COMPLETED,
                lambda e, m=model, b=before, f=frozen: f.append(torch.equal(m.student.head.prototypes, b)),
            )
            trainer.run()
            runs[copies] = (trainer.state.epoch_length, lrs, frozen, trainer.loss_function.flags)
        (length1, lrs1, frozen1, flags1), (length5, lrs5, frozen5, flags5) = runs[1], runs[5]
        self.assertEqual((length1, length5), (2, 10))
        self.assertEqual(len(lrs5), 5 * len(lrs1))
        self.assertEqual(int(torch.tensor(lrs5).argmax()), 9)  # the warm-up peaks at the end of the longer epoch
        self.assertEqual(int(torch.tensor(lrs1).argmax()), 1)
        self.assertTrue(all(a < b for a, b in zip(lrs5[:9], lrs5[1:10])))
        self.assertEqual(frozen5, [True] * 10 + [False] * 10)
        self.assertEqual(frozen1, [True] * 2 + [False] * 2)
        self.assertEqual(flags5, [True] * 10 + [False] * 10)
        self.assertEqual(flags1, [True] * 2 + [False] * 2)


if __name__ == "__main__":
    unittest.main()
