"""What the trainer and its handlers cost on top of the bare training step, with a tiny model on the CPU.

On a GPU the AFiRe step of ViT-B at batch 64 in bf16 is bound by kernel launches, i.e. by Python and dispatcher time
on the host, so every microsecond the trainer and its handlers spend per iteration is lost throughput. A tiny model on
the CPU (with one thread) is bound the same way, which makes that cost measurable here.

Two loops over the same pre-collated batches (data loading is out of both; ``benchmarks/data_pipeline.py`` times it):

- **trainer**: ``AFiRePretrainer`` built from the bundle's ``train.json`` with a tiny model override, with every
  handler of ``train.json`` (schedules, frozen prototypes, NaN guard, teacher EMA, checkpoints, preemption, loss
  history, stats, TensorBoard, ...), each at its configured interval;
- **bare**: a plain loop doing the same step: forward of student, teacher and decoder, ``AFiReLoss``, backward,
  gradient clipping, the optimiser step and the teacher EMA (the same modules, loss, optimiser and clipping, built
  from the same config).

They run interleaved in one process: an epoch of ``--steps`` trainer iterations, then ``--steps`` bare steps, repeated
``--repeats`` times after one warm-up round. Each trainer block is paired with the mean of the bare blocks around it;
the script prints the median per-step wall and process-CPU time of each and the median of the paired ratios,
against the target ratio <= 1.05. Epoch-end work (the loss-history row, an epoch checkpoint) is outside the timed
blocks: it comes once per epoch of thousands of iterations in real runs; periodic per-iteration work (logging,
checks, iteration checkpoints) is inside them.

Usage::

    python benchmarks/trainer_overhead.py                 # about a minute
    python benchmarks/trainer_overhead.py --steps 400 --repeats 9 --out benchmarks/results/trainer_overhead.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events
from monai.bundle import ConfigParser

from monai_afire.engines import clip_gradients

__all__ = ["TINY", "bundle_parser", "main"]

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "bundles" / "afire_pretrain" / "configs"

#: a tiny AFiRe on 32 x 32 films (16 tokens), the size of the test suite's models
TINY: dict[str, Any] = {
    "device": "$torch.device('cpu')",
    "image_size": 32,
    "patch_size": 8,
    "arch": "vit_tiny",
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "mlp_dim": 64,
    "num_prototypes": 8,
    "head_hidden_dim": 32,
    "head_bottleneck_dim": 16,
    "decoder_dim": 32,
    "decoder_depth": 1,
    "decoder_heads": 2,
    "batch_size": 4,
    "num_workers": 0,
}


def tiny_batches(n: int, size: int = 32, batch: int = 4, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` collated batches with the keys of the Synthetic Lesion Mask: clean films, a square lesion, the sum."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        clean = torch.rand(batch, 1, size, size, generator=g) * 0.8
        mask = torch.zeros_like(clean)
        mask[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0.3
        out.append({"image": (clean + mask).clamp(0, 1), "clean": clean, "lesion_mask": mask})
    return out


def write_films(folder: Path, n: int = 8, size: int = 32) -> None:
    """A few PNG films so that the bundle's data entries resolve (the timed loops use in-memory batches)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(folder / f"film_{i}.png")


def bundle_parser(
    work: Path, overrides: dict[str, Any], config_files: list[Path] | None = None, data: Any = None
) -> ConfigParser:
    """The pre-training bundle's config (``train.json`` unless ``config_files``) with ``overrides``, its outputs in
    ``work``; with ``data`` the trainer reads it instead of the bundle's DataLoader."""
    write_films(work / "films")
    parser = ConfigParser(globals={"torch": "torch", "batches": data})
    parser.read_config([str(f) for f in (config_files or [CONFIGS / "train.json"])])
    parser.update(
        {
            "dataset_dir": str(work / "films"),
            "ckpt_dir": str(work / "models"),
            "output_dir": str(work / "eval"),
            **overrides,
        }
    )
    if data is not None:
        parser["train"]["dataloader"] = "$batches"
    for i in range(len(parser["initialize"])):
        parser.get_parsed_content(f"initialize#{i}")
    return parser


class BareStep:
    """The trainer's step without the trainer: the same modules, loss, optimiser, clipping and EMA schedule."""

    def __init__(self, parser: ConfigParser, total_iterations: int) -> None:
        from monai_afire.handlers.teacher_ema import CosineEMAMomentum

        self.network = parser.get_parsed_content("network")
        self.loss = parser.get_parsed_content("loss_function")
        self.optimizer = parser.get_parsed_content("optimizer")
        self.clip = float(parser.get_parsed_content("clip_grad_norm") or 0)
        self.clip_mode = parser.get_parsed_content("clip_grad_mode")
        self.momentum = CosineEMAMomentum(total_iterations, parser.get_parsed_content("teacher_momentum"))
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.iteration = 0
        self.network.train()  # once: nothing in this loop changes the mode

    def __call__(self, batch: dict[str, torch.Tensor]) -> None:
        self.iteration += 1
        lesioned, clean, mask = batch["image"], batch["clean"], batch["lesion_mask"]
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.network(lesioned, clean, mask)
        outputs = {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}
        loss, _ = self.loss(outputs, clean, mask, replace_prototypes=False)
        loss.backward()
        if self.clip > 0:
            clip_gradients(self.params, self.clip, self.clip_mode)
        self.optimizer.step()
        self.network.update_teacher(self.momentum.teacher(self.iteration))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved trainer and bare blocks; per-step medians and paired ratios."""
    torch.set_num_threads(args.threads)
    batches = tiny_batches(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {**TINY, "max_epochs": args.repeats + 1}
        parser = bundle_parser(Path(tmp) / "trainer", overrides, data=batches)
        trainer = parser.get_parsed_content("train#trainer")
        bare = BareStep(bundle_parser(Path(tmp) / "bare", overrides), (args.repeats + 1) * args.steps)
        blocks: dict[str, list[tuple[float, float]]] = {"trainer": [], "bare": []}
        clock: dict[str, float] = {}

        def epoch_started(engine):
            clock.update(wall=time.perf_counter(), cpu=time.process_time())

        def iteration_completed(engine):
            if engine.state.iteration % engine.state.epoch_length == 0:
                blocks["trainer"].append((time.perf_counter() - clock["wall"], time.process_time() - clock["cpu"]))

        def run_bare(engine):
            wall, cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                bare(batch)
            blocks["bare"].append((time.perf_counter() - wall, time.process_time() - cpu))

        def last(engine):  # registered when the run starts: after every handler of the bundle
            engine.add_event_handler(Events.EPOCH_STARTED, epoch_started)
            engine.add_event_handler(Events.ITERATION_COMPLETED, iteration_completed)
            engine.add_event_handler(Events.EPOCH_COMPLETED, run_bare)

        trainer.add_event_handler(Events.STARTED, last)
        epoch_started(trainer)
        trainer.run()
        handlers = sorted({type(h).__name__ for h in parser.get_parsed_content("train#handlers")})
        handlers += sorted({type(h).__name__ for h in parser.get_parsed_content("train#log_handlers")})
    # drop the warm-up round (first epoch: optimiser state, first-epoch replacement, lazy inits)
    trainer_blocks, bare_blocks = blocks["trainer"][1:], blocks["bare"][1:]
    ratios = {"wall": [], "cpu": []}
    for i, (t_wall, t_cpu) in enumerate(trainer_blocks):
        neighbours = [bare_blocks[j] for j in (i - 1, i) if 0 <= j < len(bare_blocks)]
        ratios["wall"].append(t_wall / statistics.mean(b[0] for b in neighbours))
        ratios["cpu"].append(t_cpu / statistics.mean(b[1] for b in neighbours))
    per_step = {
        name: {
            "wall": statistics.median(b[0] for b in blk) / args.steps,
            "cpu": statistics.median(b[1] for b in blk) / args.steps,
        }
        for name, blk in (("trainer", trainer_blocks), ("bare", bare_blocks))
    }
    return {"per_step": per_step, "ratios": ratios, "handlers": handlers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="iterations per timed block (one trainer epoch)")
    parser.add_argument("--repeats", type=int, default=5, help="timed (trainer, bare) rounds after one warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", default=None, help="also write the result to this markdown file")
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = measure(args)
    load_after = os.getloadavg()
    ps, ratios = result["per_step"], result["ratios"]
    wall, cpu = statistics.median(ratios["wall"]), statistics.median(ratios["cpu"])
    verdict = "met" if max(wall, cpu) <= 1.05 else "MISSED"
    command = "python benchmarks/trainer_overhead.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Trainer overhead (CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread)",
        "",
        f"`{command.strip()}`: tiny AFiRe (2-layer ViT, 32 px, batch 4) through the bundle's `train.json` with all its "
        f"handlers ({', '.join(result['handlers'])}) against a bare loop of the same step; {args.repeats} paired "
        f"rounds of {args.steps} steps after a warm-up round, interleaved in one process. Load average "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, {' '.join(f'{x:.2f}' for x in load_after)} after "
        f"({os.cpu_count()} cores): on a shared machine the wall times are noisy, the paired ratios less so.",
        "",
        "| loop | median wall ms/step | median CPU ms/step |",
        "| --- | --- | --- |",
        f"| trainer + handlers | {1e3 * ps['trainer']['wall']:.3f} | {1e3 * ps['trainer']['cpu']:.3f} |",
        f"| bare step | {1e3 * ps['bare']['wall']:.3f} | {1e3 * ps['bare']['cpu']:.3f} |",
        "",
        f"Paired ratio trainer / bare: wall median {wall:.3f} (min {min(ratios['wall']):.3f}, max "
        f"{max(ratios['wall']):.3f}); process CPU median {cpu:.3f} (min {min(ratios['cpu']):.3f}, max "
        f"{max(ratios['cpu']):.3f}). Target <= 1.05: **{verdict}**.",
    ]
    print("\n".join(lines))
    print(f"ratio {max(wall, cpu):.3f} (target <= 1.05: {verdict})")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
