from __future__ import annotations

import math
import unittest

import torch
from ignite.engine import Engine, Events
from parameterized import parameterized

from monai_afire.handlers import LearningRateSchedule, WeightDecaySchedule, scaled_learning_rate
from monai_afire.handlers.schedules import cosine_value
from monai_afire.handlers.teacher_ema import CosineEMAMomentum


def _optimizer():
    return torch.optim.AdamW(
        [
            {"params": [torch.nn.Parameter(torch.ones(2, 2))], "weight_decay": 0.04},
            {"params": [torch.nn.Parameter(torch.ones(2))], "weight_decay": 0.0},
        ],
        lr=1.0,
    )


def _record(handler, optimizer, epochs=4, epoch_length=5, start_iteration=0):
    engine = Engine(lambda e, b: None)
    handler.attach(engine)
    seen = []
    engine.add_event_handler(
        Events.ITERATION_STARTED,
        lambda e: seen.append(
            (
                optimizer.param_groups[0]["lr"],
                optimizer.param_groups[0]["weight_decay"],
                optimizer.param_groups[1]["weight_decay"],
            )
        ),
    )
    if start_iteration:
        engine.state.max_epochs, engine.state.epoch_length = epochs, epoch_length
        engine.state.iteration, engine.state.epoch = start_iteration, start_iteration // epoch_length
    engine.run(range(epoch_length), max_epochs=epochs)
    return seen


class TestSchedules(unittest.TestCase):
    @parameterized.expand([(5e-4, 64, 1, 1.25e-4), (5e-4, 64, 4, 5e-4), (1e-3, 256, 2, 2e-3)])
    def test_scaled_learning_rate(self, base, batch, world, expected):
        self.assertAlmostEqual(scaled_learning_rate(base, batch, world), expected)

    def test_scaled_learning_rate_bad(self):
        with self.assertRaisesRegex(ValueError, "batch_size"):
            scaled_learning_rate(1e-3, 0)

    def test_cosine_value(self):
        self.assertAlmostEqual(cosine_value(0, 10, 0.04, 0.4), 0.04)
        self.assertAlmostEqual(cosine_value(10, 10, 0.04, 0.4), 0.4)
        self.assertAlmostEqual(cosine_value(5, 10, 0.0, 1.0), 0.5)

    def test_learning_rate_warmup_then_cosine(self):
        optimizer = _optimizer()
        lrs = [s[0] for s in _record(LearningRateSchedule(optimizer, 0.1, warmup_epochs=1, min_lr=0.001), optimizer)]
        self.assertEqual(len(lrs), 20)
        for i in range(5):  # linear warm-up over the first epoch (5 iterations)
            self.assertAlmostEqual(lrs[i], 0.1 * (i + 1) / 5)
        self.assertTrue(all(a >= b for a, b in zip(lrs[5:], lrs[6:])))  # then non-increasing
        self.assertLess(lrs[-1], 0.01)
        self.assertGreater(lrs[-1], 0.001)

    def test_weight_decay_on_first_group_only(self):
        optimizer = _optimizer()
        seen = _record(WeightDecaySchedule(optimizer, 0.04, 0.4), optimizer)
        decayed = [s[1] for s in seen]
        self.assertAlmostEqual(decayed[0], 0.04)
        self.assertTrue(all(a <= b for a, b in zip(decayed, decayed[1:])))
        self.assertGreater(decayed[-1], 0.39)
        self.assertTrue(all(s[2] == 0.0 for s in seen))

    def test_resume_continues_schedule(self):
        o1, o2 = _optimizer(), _optimizer()
        full = [s[0] for s in _record(LearningRateSchedule(o1, 0.1, 1, 0.0), o1)]
        resumed = [s[0] for s in _record(LearningRateSchedule(o2, 0.1, 1, 0.0), o2, start_iteration=10)]
        self.assertEqual(len(resumed), 10)
        for a, b in zip(full[10:], resumed):
            self.assertAlmostEqual(a, b)

    def test_bad_group_index(self):
        with self.assertRaisesRegex(ValueError, "param_group_index"):
            WeightDecaySchedule(_optimizer(), param_group_index=3)

    def test_ema_momentum(self):
        lam = CosineEMAMomentum(total=11, start=0.996, end=1.0)
        self.assertAlmostEqual(lam(1), 0.004)
        self.assertAlmostEqual(lam(11), 0.0)
        self.assertAlmostEqual(lam(6), 0.002)
        self.assertTrue(math.isfinite(lam(100)))


if __name__ == "__main__":
    unittest.main()
