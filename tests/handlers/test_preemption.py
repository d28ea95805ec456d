"""Preemption and elastic restarts of a 2-process gloo run (``tests/handlers/preemption_script.py``): a run stopped by
SIGTERM, killed by SIGKILL or losing a worker under ``torchrun --max-restarts 1`` ends with the same weights as an
uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import pytest
import torch

from monai_afire.handlers import PREEMPTED_EXIT_CODE
from monai_afire.handlers.checkpoint import latest_checkpoint
from tests.handlers.preemption_script import CHECK_EVERY, SAVE_EVERY
from tests.tiny import write_films

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "tests.handlers.preemption_script"
TIMEOUT = 240


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT"):
        env.pop(key, None)
    env.update(extra)
    return env


def _start_pair(data: Path, ckpt: Path, out: Path, **extra: str) -> list[subprocess.Popen]:
    """The two processes of the run, started as torchrun would start them (without the agent)."""
    port = _free_port()
    procs = []
    for rank in range(2):
        env = _env(
            RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **extra
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", SCRIPT, str(data), str(ckpt), str(out)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen]) -> tuple[list[int], str]:
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        outputs.append(out or "")
    return [p.returncode for p in procs], "\n".join(outputs)


def _wait_paused(procs: list[subprocess.Popen], ckpt: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not all((ckpt / f"paused_rank{r}").is_file() for r in range(2)):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            codes, out = _finish(procs)
            raise AssertionError(f"the run did not reach the pause (exit codes {codes}):\n{out[-3000:]}")
        time.sleep(0.05)


@pytest.mark.slow
class TestPreemption(unittest.TestCase):
    """Each test compares the final weights with those of one uninterrupted 2-process run (exactly: CPU, gloo)."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.root = Path(cls._tmp.name)
        cls.data = cls.root / "films"
        write_films(cls.data, n=16)  # 16 films / 2 processes / batch 2: 4 iterations per epoch, 12 in all
        codes, out = _finish(_start_pair(cls.data, cls.root / "ref_ckpt", cls.root / "ref.pt"))
        if codes != [0, 0]:
            raise AssertionError(f"the uninterrupted run failed (exit codes {codes}):\n{out[-3000:]}")
        cls.reference = torch.load(cls.root / "ref.pt", weights_only=True)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def assert_same_weights(self, out: Path, context: str) -> None:
        final = torch.load(out, weights_only=True)
        self.assertEqual(set(final), set(self.reference))
        self.assertEqual(int(final["iteration"]), 12, context)
        differ = [k for k, v in self.reference.items() if not torch.equal(v, final[k])]
        self.assertEqual(differ, [], f"{context}: final weights differ from the uninterrupted run's")

    def test_sigterm_at_random_iteration_then_resume(self):
        pause = random.randint(1, 10)
        stop = -(-pause // CHECK_EVERY) * CHECK_EVERY  # the processes agree on a stop every CHECK_EVERY iterations
        context = f"SIGTERM after iteration {pause}"
        ckpt, out = self.root / "term_ckpt", self.root / "term.pt"
        procs = _start_pair(self.data, ckpt, out, AFIRE_TEST_PAUSE_AT=str(pause))
        _wait_paused(procs, ckpt)
        for p in procs:  # a scheduler signals every task of the job
            p.send_signal(signal.SIGTERM)
        codes, log = _finish(procs)
        self.assertEqual(codes, [PREEMPTED_EXIT_CODE] * 2, f"{context}:\n{log[-3000:]}")
        self.assertFalse(out.exists(), context)
        self.assertEqual(latest_checkpoint(ckpt).name, f"afire_checkpoint_{stop}.pt", context)
        codes, log = _finish(_start_pair(self.data, ckpt, out))
        self.assertEqual(codes, [0, 0], f"{context}, resumed:\n{log[-3000:]}")
        self.assertIn(f"resumed_from={ckpt / f'afire_checkpoint_{stop}.pt'}", log)
        self.assert_same_weights(out, context)

    def test_sigkill_between_checkpoints_then_resume(self):
        pause = 2 * SAVE_EVERY + 1  # iteration 7: checkpoints at 6 (mid-epoch) and 8 (epoch end); killed in between
        ckpt, out = self.root / "kill_ckpt", self.root / "kill.pt"
        procs = _start_pair(self.data, ckpt, out, AFIRE_TEST_PAUSE_AT=str(pause))
        _wait_paused(procs, ckpt)
        for p in procs:
            p.send_signal(signal.SIGKILL)
        codes, _ = _finish(procs)
        self.assertEqual(codes, [-signal.SIGKILL] * 2)
        self.assertEqual(latest_checkpoint(ckpt).name, f"afire_checkpoint_{2 * SAVE_EVERY}.pt")
        codes, log = _finish(_start_pair(self.data, ckpt, out))
        self.assertEqual(codes, [0, 0], log[-3000:])
        self.assertIn(f"resumed_from={ckpt / f'afire_checkpoint_{2 * SAVE_EVERY}.pt'}", log)
        self.assert_same_weights(out, f"SIGKILL after iteration {pause}")

    def test_torchrun_restarts_after_a_worker_is_killed(self):
        kill = 2 * SAVE_EVERY + 1
        ckpt, out = self.root / "elastic_ckpt", self.root / "elastic.pt"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        command += ["--max-restarts", "1", "-m", SCRIPT, str(self.data), str(ckpt), str(out)]
        done = subprocess.run(
            command,
            cwd=ROOT,
            # the agent's rendezvous store is shared with the workers by default, and a restarted group can then read
            # the addresses of the previous attempt's processes (pytorch/pytorch#135712): give the workers their own
            env=_env(AFIRE_TEST_KILL_AT=str(kill), TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1"),
            capture_output=True,
            text=True,
            timeout=2 * TIMEOUT,
        )
        log = done.stdout + done.stderr
        self.assertEqual(done.returncode, 0, log[-3000:])
        self.assertIn(f"resumed_from={ckpt / f'afire_checkpoint_{2 * SAVE_EVERY}.pt'}", log)  # the restarted group
        self.assert_same_weights(out, f"rank 1 killed after iteration {kill}, torchrun --max-restarts 1")


if __name__ == "__main__":
    unittest.main()
