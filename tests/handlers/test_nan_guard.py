from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch
from ignite.engine import Events

from monai_afire.handlers import NonFiniteLossError, NonFiniteLossGuard, PretrainCheckpoint, latest_checkpoint
from tests.tiny import tiny_model, tiny_trainer


class NaNAfter(torch.nn.Module):
    """A loss wrapper whose restoration component becomes NaN from call ``start`` on."""

    def __init__(self, loss, start):
        super().__init__()
        self.loss, self.start, self.calls = loss, start, 0

    def forward(self, outputs, clean, mask, replace_prototypes=False):
        self.calls += 1
        total, parts = self.loss(outputs, clean, mask, replace_prototypes=replace_prototypes)
        if self.calls >= self.start:
            total = total * float("nan")
            parts = dict(parts, restoration=float("nan"))
        return total, parts


class TestNonFiniteLossGuard(unittest.TestCase):
    def test_stops_before_step_and_keeps_checkpoint(self):
        with tempfile.TemporaryDirectory() as tmp:
            model = tiny_model()
            trainer = tiny_trainer(model, max_epochs=3, handlers=[NonFiniteLossGuard(checkpoint_dir=tmp)])
            PretrainCheckpoint(tmp, model, trainer.optimizer, trainer.loss_function).attach(trainer)
            trainer.loss_function = NaNAfter(trainer.loss_function, start=4)  # iteration 4 = epoch 2, 2nd batch
            weights = {}
            trainer.add_event_handler(
                Events.ITERATION_COMPLETED,
                lambda e: weights.update({k: v.clone() for k, v in model.state_dict().items()}),
            )
            with self.assertRaises(NonFiniteLossError) as ctx:
                trainer.run()
            message = str(ctx.exception)
            self.assertIn("iteration 4", message)
            self.assertIn("epoch 2", message)
            self.assertIn("restoration=nan", message)
            self.assertIn("afire_checkpoint_2.pt", message)
            for k, v in model.state_dict().items():  # no optimiser step with the NaN loss
                self.assertTrue(torch.equal(v, weights[k]), k)
            self.assertEqual(latest_checkpoint(tmp), Path(tmp) / "afire_checkpoint_2.pt")
            state = torch.load(latest_checkpoint(tmp), weights_only=True)
            self.assertTrue(all(torch.isfinite(v).all() for v in state["model"].values()))


if __name__ == "__main__":
    unittest.main()
