"""Training run used by test_resume: ``python -m tests.handlers.resume_script DATA_DIR CKPT_DIR EPOCHS``.

With ``AFIRE_TEST_HANG_EPOCH=E`` set, the run writes ``CKPT_DIR/hanging`` after the first iteration of epoch E and
sleeps, so the test can SIGKILL it mid-epoch. At the end it saves the model state to ``CKPT_DIR/final.pt``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset

from monai_afire.apps import pretraining_records, pretraining_transforms
from monai_afire.handlers import EpochSeed, PretrainCheckpoint
from tests.tiny import tiny_model, tiny_trainer


def main(data_dir: str, ckpt_dir: str, epochs: int) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model = tiny_model(seed=0)
    dataset = Dataset(pretraining_records(data_dir), pretraining_transforms(image_size=32))
    loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=0)
    trainer = tiny_trainer(model, max_epochs=epochs, loader=loader)
    EpochSeed(seed=7, dataset=dataset).attach(trainer)
    checkpoint = PretrainCheckpoint(ckpt_dir, model, trainer.optimizer, trainer.loss_function, n_saved=None)
    checkpoint.attach(trainer)
    hang = int(os.environ.get("AFIRE_TEST_HANG_EPOCH", "0"))

    @trainer.on(Events.ITERATION_COMPLETED)
    def _hang(engine):
        if engine.state.epoch == hang:
            Path(ckpt_dir, "hanging").write_text(str(engine.state.iteration))
            time.sleep(120)

    trainer.run()
    print(f"resumed_from={checkpoint.resumed_from}")
    state = {"model": model.state_dict(), "loss": trainer.loss_function.state_dict()}
    torch.save(state, Path(ckpt_dir, "final.pt"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
