"""Worker of test_distributed: ``python -m tests.utils.ddp_script OUT_DIR`` trains on 2 gloo processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from monai_afire.utils import distributed_sampler, init_distributed
from tests.tiny import tiny_batches, tiny_model, tiny_trainer

EPOCHS = 2
GLOBAL_BATCH = 4


def train(world_size: int = 1, out: str | None = None) -> dict[str, torch.Tensor]:
    """Train the tiny model for EPOCHS on tiny_batches(8) with GLOBAL_BATCH images per step; return the teacher."""
    torch.set_num_threads(1)
    device = init_distributed(backend="gloo")
    model = tiny_model(seed=0)
    network = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    dataset = tiny_batches(8)
    sampler = distributed_sampler(dataset, shuffle=False)
    loader = DataLoader(dataset, batch_size=GLOBAL_BATCH // world_size, sampler=sampler)
    trainer = tiny_trainer(network, max_epochs=EPOCHS, loader=loader)
    assert device.type == "cpu"
    trainer.run()
    state = {k: v.detach().clone() for k, v in model.teacher.state_dict().items()}
    state["__prototype_state"] = trainer.loss_function.anatomy.prototype_state.clone()
    if out is not None:
        torch.save(state, Path(out) / f"rank{dist.get_rank() if dist.is_initialized() else 0}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()
    return state


def _worker(rank: int, world_size: int, out: str, port: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port
    )
    train(world_size, out)


if __name__ == "__main__":
    mp.spawn(_worker, args=(2, sys.argv[1], sys.argv[2]), nprocs=2, join=True)
