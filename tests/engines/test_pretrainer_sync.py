"""The steady-state step of the pre-training bundle (``train.json``: the trainer with all its handlers) asks for no
host-device synchronisation outside the logging / check / checkpoint iterations."""

from __future__ import annotations

import unittest
from collections import Counter

import torch
from monai.bundle import ConfigParser
from parameterized import parameterized

from monai_afire.utils import HostSyncCounter, optimizer_step_counters
from tests.tiny import BUNDLE_OVERRIDES, PRETRAIN_CONFIGS, TmpDirTestCase, tiny_batches, write_films

LOG_EVERY = 4
EPOCH_LENGTH = 8  # a multiple of LOG_EVERY: epoch ends (loss-history row, epoch checkpoint) are logging iterations


def bundle_trainer(tmp, amp: bool) -> ConfigParser:
    """The bundle's trainer with the tiny model on the CPU, reading collated in-memory batches."""
    write_films(tmp / "films")
    samples = tiny_batches(4 * EPOCH_LENGTH)
    batches = [
        {k: torch.stack([s[k] for s in samples[4 * i : 4 * i + 4]]) for k in samples[0]} for i in range(EPOCH_LENGTH)
    ]
    parser = ConfigParser(globals={"torch": "torch", "batches": batches})
    parser.read_config(str(PRETRAIN_CONFIGS / "train.json"))
    parser.update(
        {
            **BUNDLE_OVERRIDES,
            "num_prototypes": 8,
            "head_hidden_dim": 32,
            "head_bottleneck_dim": 16,
            "decoder_dim": 32,
            "decoder_depth": 1,
            "decoder_heads": 2,
            "dataset_dir": str(tmp / "films"),
            "ckpt_dir": str(tmp / "models"),
            "output_dir": str(tmp / "eval"),
            "max_epochs": 2,
            "log_every": LOG_EVERY,
            "save_every_iterations": LOG_EVERY,
            "amp": amp,
        }
    )
    parser["train"]["dataloader"] = "$batches"
    for i in range(len(parser["initialize"])):
        parser.get_parsed_content(f"initialize#{i}")
    return parser


class TestSteadyStateSyncs(TmpDirTestCase):
    @parameterized.expand([("fp32", False), ("bf16", True)])
    def test_no_sync_outside_logging_iterations(self, _, amp):
        trainer = bundle_trainer(self.tmp, amp).get_parsed_content("train#trainer")
        counter = HostSyncCounter(exclude=optimizer_step_counters(trainer.optimizer))
        counter.attach(trainer)
        with counter:
            trainer.run()
        self.assertEqual(trainer.state.iteration, 2 * EPOCH_LENGTH)
        per = counter.by_iteration()
        steady = range(2, 2 * EPOCH_LENGTH + 1)  # the first iteration builds lazy state (optimiser, buffers)
        quiet = {i: per[i] for i in steady if i % LOG_EVERY and per.get(i)}
        where = Counter(c.where for c in counter.calls if c.iteration in quiet)
        self.assertEqual(quiet, {}, f"synchronising calls outside the logging iterations: {dict(where)}")
        # the counter sees the logging iterations' reads (the NaN guard's check, TensorBoard, checkpoints)
        self.assertTrue(all(per.get(i, 0) > 0 for i in steady if i % LOG_EVERY == 0), per)


if __name__ == "__main__":
    unittest.main()
