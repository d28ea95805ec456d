"""Worker of test_preemption: one process of a 2-process gloo pre-training run of the tiny model.

``python -m tests.handlers.preemption_script DATA_DIR CKPT_DIR OUT_FILE`` with the ``torchrun`` variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) set, by the test or by ``torchrun``. The run is the
bundle's set-up in small: films through ``pretraining_transforms`` (random lesions), ``SeededDataset`` and
``ResumableSampler``, DDP, the schedules, frozen prototypes, teacher EMA, ``EpochSeed``, the NaN guard checked every
``CHECK_EVERY`` iterations, and a ``PretrainCheckpoint`` every ``SAVE_EVERY`` iterations that also handles SIGTERM.
At the end rank 0 saves the model and prototype state to ``OUT_FILE``.

Test hooks (environment):

- ``AFIRE_TEST_PAUSE_AT=K``: after iteration K every process writes ``CKPT_DIR/paused_rank<r>`` and waits (up to 60 s)
  until it receives a stop signal, so the test can send SIGTERM or SIGKILL at that iteration.
- ``AFIRE_TEST_KILL_AT=K``: in the first attempt of a ``torchrun`` job (``TORCHELASTIC_RESTART_COUNT=0``) rank 1
  SIGKILLs itself after iteration K.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from ignite.engine import Events
from monai.data import DataLoader, Dataset

from monai_afire.apps import pretraining_records, pretraining_transforms
from monai_afire.data import ResumableSampler, SeededDataset
from monai_afire.handlers import EpochSeed, NonFiniteLossGuard, PretrainCheckpoint
from monai_afire.utils import get_rank, init_distributed
from tests.tiny import tiny_model, tiny_trainer

EPOCHS = 3
BATCH_PER_PROCESS = 2
SAVE_EVERY = 3
CHECK_EVERY = 2
SEED = 5


def main(data_dir: str, ckpt_dir: str, out_file: str) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    init_distributed(backend="gloo")
    rank = get_rank()
    model = tiny_model(seed=0)
    network = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    films = Dataset(pretraining_records(data_dir), pretraining_transforms(image_size=32))
    dataset = SeededDataset(films, seed=SEED)
    sampler = ResumableSampler(dataset, shuffle=True, seed=SEED, with_epoch=True)
    loader = DataLoader(dataset, batch_size=BATCH_PER_PROCESS, sampler=sampler, num_workers=0, drop_last=True)
    guard = NonFiniteLossGuard(checkpoint_dir=ckpt_dir, check_every=CHECK_EVERY)
    trainer = tiny_trainer(network, max_epochs=EPOCHS, loader=loader, handlers=[EpochSeed(SEED, films), guard])
    checkpoint = PretrainCheckpoint(
        ckpt_dir,
        model,
        trainer.optimizer,
        trainer.loss_function,
        save_every_iterations=SAVE_EVERY,
        n_saved=2,
        stop_signals=("SIGTERM",),
        signal_check_every=CHECK_EVERY,
    )
    pause_at = int(os.environ.get("AFIRE_TEST_PAUSE_AT", "0"))
    kill_at = int(os.environ.get("AFIRE_TEST_KILL_AT", "0"))
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"

    @trainer.on(Events.ITERATION_COMPLETED)
    def _test_hooks(engine):  # registered before the run starts: before the checkpoint's savers and stop check
        if engine.state.iteration == pause_at:
            Path(ckpt_dir).mkdir(parents=True, exist_ok=True)  # rank 0 creates it at its first save: maybe not yet
            Path(ckpt_dir, f"paused_rank{rank}").write_text(str(engine.state.iteration))
            deadline = time.monotonic() + 60
            while checkpoint.preemption.requested is None and time.monotonic() < deadline:
                time.sleep(0.02)
        if engine.state.iteration == kill_at and rank == 1 and first_attempt:
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.attach(trainer)
    trainer.run()  # raises TrainingPreempted (exit code 75) after a SIGTERM checkpoint
    if rank == 0:
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        state.update({f"loss.{k}": v for k, v in trainer.loss_function.state_dict().items()})
        state["iteration"] = torch.tensor(trainer.state.iteration)
        torch.save(state, out_file)
    print(f"rank {rank}: resumed_from={checkpoint.resumed_from} iteration={trainer.state.iteration}", flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
