from __future__ import annotations

import unittest

import torch
from ignite.engine import Engine, Events
from parameterized import parameterized

from monai_afire.handlers import TeacherEMA
from monai_afire.handlers.schedules import cosine_value


class RecordingModel(torch.nn.Module):
    """Stands for an AFiRe model: records the momentum of every update_teacher call."""

    def __init__(self):
        super().__init__()
        self.momenta: list[float] = []

    def update_teacher(self, momentum: float) -> None:
        self.momenta.append(momentum)


class TestTeacherEMA(unittest.TestCase):
    @parameterized.expand([(0,), (7,)])
    def test_cosine_momentum_follows_the_engine_iteration(self, start_iteration):
        """A run resumed at any iteration continues the schedule exactly (no counter of its own)."""
        model = RecordingModel()
        engine = Engine(lambda e, b: None)
        TeacherEMA(model, momentum=0.9, final_momentum=1.0).attach(engine)
        if start_iteration:
            engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "iteration", start_iteration))
            engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch", start_iteration // 4))
        engine.run([0] * 4, max_epochs=3)
        total = 12
        expected = [cosine_value(i - 1, total - 1, 0.9, 1.0) for i in range(start_iteration + 1, total + 1)]
        self.assertEqual(model.momenta, expected)
        self.assertEqual(model.momenta[-1], 1.0)
        self.assertEqual(engine.state.ema_momentum, 1.0 - model.momenta[-1])

    def test_refuses_bad_settings(self):
        with self.assertRaisesRegex(ValueError, "update_teacher"):
            TeacherEMA(torch.nn.Linear(2, 2))
        with self.assertRaisesRegex(ValueError, "0 < momentum <= final_momentum <= 1"):
            TeacherEMA(RecordingModel(), momentum=0.99, final_momentum=0.9)


if __name__ == "__main__":
    unittest.main()
