from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import pytest
import torch
from ignite.engine import Events

from monai_afire.handlers import PretrainCheckpoint, latest_checkpoint
from monai_afire.networks import checkpoint_has_lesion_prototype, load_afire_checkpoint
from tests.tiny import tiny_model, tiny_trainer, write_films

ROOT = Path(__file__).resolve().parents[2]


def _trained(folder: Path | str, max_epochs: int):
    """A tiny model trained for ``max_epochs`` with checkpoints in ``folder``."""
    model = tiny_model()
    trainer = tiny_trainer(model, max_epochs=max_epochs)
    PretrainCheckpoint(folder, model, trainer.optimizer, trainer.loss_function).attach(trainer)
    trainer.run()
    return model, trainer


class TestPretrainCheckpoint(unittest.TestCase):
    def test_save_contents_and_resume_objects(self):
        with tempfile.TemporaryDirectory() as tmp:
            _trained(tmp, max_epochs=2)
            path = latest_checkpoint(tmp)
            self.assertEqual(path.name, "afire_checkpoint_4.pt")
            self.assertFalse([p for p in Path(tmp).iterdir() if not p.name.endswith(".pt")])  # no temporary files
            state = torch.load(path, weights_only=True)
            self.assertEqual(set(state), {"model", "optimizer", "loss", "trainer", "rng"})
            self.assertEqual((state["trainer"]["iteration"], state["trainer"]["epoch_length"]), (4, 2))
            self.assertTrue(any(k.startswith("teacher.") for k in state["model"]))
            self.assertTrue(any("prototype_state" in k for k in state["loss"]))

            # a new run with more epochs resumes at epoch 2 from the same weights
            fresh = tiny_model(seed=1)
            resumed = tiny_trainer(fresh, max_epochs=3)
            handler = PretrainCheckpoint(tmp, fresh, resumed.optimizer, resumed.loss_function)
            handler.attach(resumed)
            epochs = []
            resumed.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
            resumed.run()
            self.assertEqual(handler.resumed_from, path)
            self.assertEqual(epochs, [3])
            self.assertEqual(resumed.state.iteration, 6)

    def test_other_architecture(self):
        with tempfile.TemporaryDirectory() as tmp:
            model, _ = _trained(tmp, max_epochs=1)
            wider = tiny_model(hidden=48)
            with self.assertRaisesRegex(ValueError, "another architecture"):
                load_afire_checkpoint(wider, latest_checkpoint(tmp))
            other = tiny_trainer(wider, max_epochs=2)
            PretrainCheckpoint(tmp, wider, other.optimizer, other.loss_function).attach(other)
            with self.assertRaisesRegex(ValueError, "another architecture"):
                other.run()
            loaded = load_afire_checkpoint(tiny_model(seed=3), latest_checkpoint(tmp))
            for (k, a), b in zip(loaded.state_dict().items(), model.state_dict().values()):
                self.assertTrue(torch.equal(a, b), k)
            with self.assertRaisesRegex(ValueError, "no checkpoint"):
                load_afire_checkpoint(wider, None)

    def test_lesion_prototype_is_detected_and_a_mismatch_explained(self):
        with tempfile.TemporaryDirectory() as tmp:
            authors, plus = Path(tmp) / "authors.pt", Path(tmp) / "plus.pt"
            torch.save({"model": tiny_model().state_dict()}, authors)
            torch.save({"model": tiny_model(lesion_prototype=True).state_dict()}, plus)
            self.assertFalse(checkpoint_has_lesion_prototype(authors))
            self.assertTrue(checkpoint_has_lesion_prototype(plus))
            self.assertFalse(checkpoint_has_lesion_prototype(None))
            self.assertFalse(checkpoint_has_lesion_prototype(Path(tmp) / "missing.pt"))
            with self.assertRaisesRegex(ValueError, "trained with the lesion prototype.*afire_plus.json"):
                load_afire_checkpoint(tiny_model(), plus)
            with self.assertRaisesRegex(ValueError, "trained without the lesion prototype.*lesion_prototype=False"):
                load_afire_checkpoint(tiny_model(lesion_prototype=True), authors)
            self.assertTrue(load_afire_checkpoint(tiny_model(seed=2, lesion_prototype=True), plus).has_lesion_prototype)


def _run(data: Path, ckpt: Path, epochs: int, hang: int = 0) -> subprocess.Popen:
    env = dict(os.environ, AFIRE_TEST_HANG_EPOCH=str(hang), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.handlers.resume_script", str(data), str(ckpt), str(epochs)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
class TestResumeAfterKill(unittest.TestCase):
    def test_sigkill_mid_epoch_then_resume_matches(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            write_films(tmp / "films")
            reference, killed = _run(tmp / "films", tmp / "a", 4), _run(tmp / "films", tmp / "b", 4, hang=3)
            deadline = time.time() + 120
            while not (tmp / "b" / "hanging").exists():
                self.assertIsNone(killed.poll(), killed.stdout.read().decode() if killed.poll() is not None else "")
                self.assertLess(time.time(), deadline, "the run did not reach epoch 3")
                time.sleep(0.2)
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait()
            self.assertFalse((tmp / "b" / "final.pt").exists())
            self.assertEqual(latest_checkpoint(tmp / "b").name, "afire_checkpoint_8.pt")  # end of epoch 2
            out, _ = reference.communicate(timeout=120)
            self.assertEqual(reference.returncode, 0, out.decode()[-3000:])
            restarted = _run(tmp / "films", tmp / "b", 4)
            out, _ = restarted.communicate(timeout=120)
            self.assertEqual(restarted.returncode, 0, out.decode()[-3000:])
            self.assertIn("afire_checkpoint_8.pt", out.decode().split("resumed_from=")[-1])
            a = torch.load(tmp / "a" / "final.pt", weights_only=True)
            b = torch.load(tmp / "b" / "final.pt", weights_only=True)
            for part in ("model", "loss"):
                for k, v in a[part].items():
                    torch.testing.assert_close(b[part][k], v, rtol=0, atol=0, msg=f"{part}.{k}")


if __name__ == "__main__":
    unittest.main()
