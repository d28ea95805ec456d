"""One clean message when a bundle run stops (issue 12, finding 6): the hook in-process, and a real
``python -m monai.bundle run`` with an unreadable film."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import pytest
import torch
from ignite.engine import Engine

from monai_afire.utils import clean_errors, debug_enabled, user_message
from monai_afire.utils.errors import _hook, root_cause
from tests.tiny import PRETRAIN_CONFIGS, TmpDirTestCase, write_films

REPO = Path(__file__).resolve().parents[2]


def _wrapped() -> RuntimeError:
    """An error chained the way MONAI's config parser wraps it."""
    try:
        try:
            raise ValueError("dataset_dir /data/x does not exist")
        except ValueError as inner:
            raise RuntimeError("Failed to evaluate ConfigExpression: ...") from inner
    except RuntimeError as outer:
        return outer


class TestMessages(unittest.TestCase):
    def test_root_cause_and_message(self):
        error = _wrapped()
        self.assertIsInstance(root_cause(error), ValueError)
        self.assertEqual(user_message(error), "ValueError: dataset_dir /data/x does not exist")
        self.assertEqual(user_message(KeyError("the referring item `@foo` is not defined")),
                         "KeyError: the referring item `@foo` is not defined")  # fmt: skip
        self.assertIn("unexpected error", user_message(TypeError("bug")))

    def test_the_package_message_beats_the_library_cause(self):
        """A monai-afire error that wraps a library's terser one (raise ... from) is the one shown, whatever its type;
        a bare library error keeps the innermost cause."""
        from monai_afire.data import label_fraction_split
        from monai_afire.handlers import PretrainCheckpoint

        model = torch.nn.Linear(2, 2)
        with tempfile.TemporaryDirectory() as folder:
            torch.save({"model": {"weight": torch.zeros(3, 3)}}, Path(folder) / "afire_checkpoint_1.pt")
            handler = PretrainCheckpoint(folder, model, torch.optim.SGD(model.parameters(), lr=0.1))
            engine = Engine(lambda e, b: None)
            handler.attach(engine)
            try:
                try:
                    engine.run([0], max_epochs=1)
                except Exception as inner:
                    raise RuntimeError("Failed to evaluate ConfigExpression: ...") from inner
            except RuntimeError as outer:
                message, innermost = user_message(outer), root_cause(outer)
        self.assertIsInstance(innermost, RuntimeError)  # torch's size mismatch
        self.assertIn("size mismatch", str(innermost))
        self.assertTrue(message.startswith("ValueError: PretrainCheckpoint: "), message)
        self.assertIn("start this run in another folder (--bundle_root or --ckpt_dir)", message)
        self.assertNotIn("unexpected error", message)
        try:
            label_fraction_split(([{"image": "a.png"}], ["A"]), 0.5)
        except TypeError as err:  # a TypeError written for the user is not an "unexpected error"
            self.assertNotIn("unexpected error", user_message(err))
            self.assertIn("records, classes = load_dataset(...)", user_message(err))

    def test_debug_flag(self):
        with mock.patch.dict(os.environ, {"MONAI_AFIRE_DEBUG": ""}):
            self.assertFalse(debug_enabled(False))
            self.assertTrue(debug_enabled("true"))
        with mock.patch.dict(os.environ, {"MONAI_AFIRE_DEBUG": "1"}):
            self.assertTrue(debug_enabled(False))

    def test_hook(self):
        no_debug = mock.patch.dict(os.environ, {"MONAI_AFIRE_DEBUG": ""})
        with mock.patch.object(sys, "excepthook", sys.excepthook), no_debug:
            clean_errors()  # not a `python -m monai.bundle` process: nothing installed
            self.assertIsNot(sys.excepthook, _hook)
            clean_errors(force=True)
            self.assertIs(sys.excepthook, _hook)
            error = _wrapped()
            with mock.patch("sys.stderr", new_callable=io.StringIO) as err:
                _hook(type(error), error, error.__traceback__)
            lines = err.getvalue().strip().splitlines()
            self.assertEqual(lines[-1], "ValueError: dataset_dir /data/x does not exist")
            self.assertNotIn("Traceback", err.getvalue())


@pytest.mark.slow
class TestBundleEntryPoint(TmpDirTestCase):
    def _run(self, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
        write_films(self.tmp / "films", n=4)
        (self.tmp / "films" / "broken.png").write_bytes(b"not an image")
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(PRETRAIN_CONFIGS / "train.json"),
               "--dataset_dir", str(self.tmp / "films"), "--bundle_root", str(self.tmp / "bundle"),
               "--image_size", "32", "--patch_size", "8", "--batch_size", "2", "--num_workers", "0",
               *extra]  # fmt: skip
        environ = {**os.environ, "PYTHONPATH": str(REPO), "MONAI_AFIRE_DEBUG": "", **(env or {})}
        return subprocess.run(cmd, capture_output=True, text=True, env=environ, cwd=self.tmp, timeout=300)

    def test_unreadable_film_is_the_last_thing_printed(self):
        done = self._run()
        self.assertNotEqual(done.returncode, 0)
        last = done.stderr.strip().splitlines()[-3:]
        self.assertRegex(last[0], r"^ValueError: 1 of the 5 image files of the data set at .* cannot be read:$")
        self.assertRegex(last[1], r"broken\.png: not a readable PNG/JPEG file")
        self.assertIn("skip_unreadable", last[2])
        self.assertNotIn("Traceback", done.stderr)
        self.assertNotIn("Failed to evaluate", done.stderr)
        self.assertFalse((self.tmp / "bundle" / "models").exists())  # stopped before any epoch

        debug = self._run("--debug", "true")
        self.assertIn("Traceback", debug.stderr)
        self.assertIn("broken.png", debug.stderr)


if __name__ == "__main__":
    unittest.main()
