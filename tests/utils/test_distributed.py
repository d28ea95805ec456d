from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import pytest
import torch

from monai_afire.utils import distributed_sampler, get_rank, get_world_size, rank0_only
from tests.utils.ddp_script import train

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


class TestSingleProcessHelpers(unittest.TestCase):
    def test_without_process_group(self):
        self.assertEqual((get_rank(), get_world_size()), (0, 1))
        self.assertIsNone(distributed_sampler(list(range(4))))
        handlers = [object(), object()]
        self.assertEqual(rank0_only(handlers), handlers)


@pytest.mark.slow
class TestTwoProcessGloo(unittest.TestCase):
    def test_ranks_agree_and_match_single_process(self):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
            for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
                env.pop(k, None)
            done = subprocess.run(
                [sys.executable, "-m", "tests.utils.ddp_script", tmp, _free_port()],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            self.assertEqual(done.returncode, 0, done.stderr[-3000:])
            rank0 = torch.load(Path(tmp) / "rank0.pt", weights_only=True)
            rank1 = torch.load(Path(tmp) / "rank1.pt", weights_only=True)
        single = train(world_size=1)
        initial = tiny_trainer_teacher()
        for key, value in rank0.items():
            self.assertTrue(torch.equal(value, rank1[key]), f"ranks differ at {key}")
            torch.testing.assert_close(value, single[key], rtol=1e-4, atol=1e-5, msg=f"DDP vs one process: {key}")
        moved = [k for k in initial if not torch.equal(initial[k], rank0[k])]
        self.assertTrue(moved, "the teacher did not change")


def tiny_trainer_teacher() -> dict[str, torch.Tensor]:
    from tests.tiny import tiny_model

    return {k: v.clone() for k, v in tiny_model(seed=0).teacher.state_dict().items()}


if __name__ == "__main__":
    unittest.main()
