"""Pre-training throughput and model-FLOP utilisation through the bundle's real trainer and handlers.

For each batch size and with or without ``torch.compile``, the trainer is built from
``bundles/afire_pretrain/configs/train.json`` (ViT-B/16 at 224 and the paper's head and decoder unless overridden),
with bf16 autocast and every handler of ``train.json``, and fed pre-collated batches from pinned host memory (what a
``DataLoader(pin_memory=True)`` hands over; reading and decoding files is ``benchmarks/data_pipeline.py``'s). After
``--warmup`` iterations (compilation, cuDNN/cuBLAS plans, the allocator), ``--steps`` iterations are timed between two
``torch.cuda.synchronize()`` calls, with nothing else synchronising in between:

- images/s, ms per step and the peak of ``torch.cuda.max_memory_allocated``;
- model-FLOP utilisation: images/s x FLOP per image / ``--peak-tflops`` (989 TFLOP/s, the dense bf16 peak of an
  H100/H200 SXM), the FLOP per image counted by ``benchmarks/flop_count.py`` on this model;
- host-device synchronisations per iteration in a short extra run (eager, the first batch size), counted with
  :class:`monai_afire.utils.HostSyncCounter` (dispatch-level reads and CUDA's sync-debug mode).

Results go to ``--out`` (markdown), row by row, so a run stopped by a time limit keeps what it measured; configurations
that would start after ``--budget-s`` seconds are listed as skipped.

``--dry-run`` runs the same code on the CPU with a tiny model, batch 2, a few steps, so the script cannot fail on a GPU
for a typo (``torch.compile`` then uses Inductor's CPU backend; a few minutes on a small CPU).

Usage::

    python benchmarks/gpu_throughput.py --out benchmarks/results/gpu_throughput.md           # on one H100/H200
    python benchmarks/gpu_throughput.py --dry-run --out /tmp/gpu_throughput.md
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flop_count import afire_step_flops  # noqa: E402
from trainer_overhead import TINY, bundle_parser  # noqa: E402

__all__ = ["main"]

PEAK_TFLOPS = 989.0  # dense bf16 of an H100/H200 SXM (vendor datasheets)


def make_batches(batch: int, size: int, count: int, pinned: bool) -> list[dict[str, torch.Tensor]]:
    """``count`` distinct collated batches (lesioned, clean, mask), in pinned host memory when ``pinned``."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        clean = torch.rand(batch, 1, size, size, generator=g)
        mask = torch.zeros_like(clean)
        mask[: batch // 2, :, size // 4 : size // 2, size // 4 : size // 2] = 0.3
        item = {"image": (clean + mask).clamp(0, 235 / 255), "clean": clean, "lesion_mask": mask}
        out.append({k: v.pin_memory() for k, v in item.items()} if pinned else item)
    return out


def overrides(args: argparse.Namespace, batch: int, compiled: bool) -> dict[str, Any]:
    """Config overrides of one configuration."""
    base: dict[str, Any] = dict(TINY) if args.dry_run else {}
    base.update(
        {
            "device": f"$torch.device('{args.device}')",
            "batch_size": batch,
            "amp": "bf16",
            "compile": compiled,
            "max_epochs": 1,
            "num_workers": 0,
        }
    )
    if compiled and args.compile_mode:
        base["train#trainer#compile_kwargs"] = {"mode": args.compile_mode}
    base.update(args.set or {})
    return base


def run_config(args: argparse.Namespace, batch: int, compiled: bool, flops_per_image: float | None) -> dict[str, Any]:
    """Throughput of one configuration (a fresh trainer)."""
    device = torch.device(args.device)
    size = 32 if args.dry_run else args.image_size
    distinct = make_batches(batch, size, 4, pinned=device.type == "cuda")
    total = args.warmup + args.steps
    data = [distinct[i % len(distinct)] for i in range(total)]
    with tempfile.TemporaryDirectory() as tmp:
        parser = bundle_parser(Path(tmp), overrides(args, batch, compiled), args.config, data=data)
        trainer = parser.get_parsed_content("train#trainer")
        marks: dict[str, float] = {}

        def tick(engine):
            if engine.state.iteration in (args.warmup, total):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                marks[str(engine.state.iteration)] = time.perf_counter()
                if engine.state.iteration == args.warmup and device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)

        trainer.add_event_handler(Events.STARTED, lambda e: e.add_event_handler(Events.ITERATION_COMPLETED, tick))
        start = time.perf_counter()
        trainer.run()
        elapsed = marks[str(total)] - marks[str(args.warmup)]
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        result = {
            "images_per_s": args.steps * batch / elapsed,
            "ms_per_step": 1e3 * elapsed / args.steps,
            "peak_gib": peak,
            "warmup_s": marks[str(args.warmup)] - start,
        }
        if flops_per_image:
            result["mfu"] = result["images_per_s"] * flops_per_image / (args.peak_tflops * 1e12)
        del trainer, parser
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    torch._dynamo.reset()
    return result


def bundle_flops(args: argparse.Namespace) -> float:
    """FLOP per image of one step of the bundle's model (``benchmarks/flop_count.py``), on ``args.device``."""
    with tempfile.TemporaryDirectory() as tmp:
        parser = bundle_parser(Path(tmp), overrides(args, 2, False), args.config)
        network, loss_fn = parser.get_parsed_content("network"), parser.get_parsed_content("loss_function")
        flops = afire_step_flops(network, loss_fn)["total"]
    del network, loss_fn, parser
    gc.collect()
    return flops


def count_syncs(args: argparse.Namespace, batch: int) -> str:
    """Synchronising calls per iteration of a short eager run, outside and at the logging/check iterations."""
    from monai_afire.utils import HostSyncCounter, optimizer_step_counters

    device = torch.device(args.device)
    size = 32 if args.dry_run else args.image_size
    steps = 12
    data = make_batches(batch, size, 1, pinned=device.type == "cuda") * steps
    with tempfile.TemporaryDirectory() as tmp:
        parser = bundle_parser(Path(tmp), {**overrides(args, batch, False), "log_every": 5}, args.config, data=data)
        trainer = parser.get_parsed_content("train#trainer")
        counter = HostSyncCounter(exclude=optimizer_step_counters(trainer.optimizer))
        counter.attach(trainer)
        with counter:
            trainer.run()
    per = counter.by_iteration()
    quiet = [i for i in range(3, steps) if i % 5]  # after two warm-up iterations, not a logging iteration
    at_logs = [i for i in range(3, steps) if i % 5 == 0]
    lines = [
        f"syncs per iteration (eager, batch {batch}, log_every 5, iterations 3-{steps - 1}): "
        f"{sum(per.get(i, 0) for i in quiet)} in the {len(quiet)} iterations between logging iterations, "
        f"{sum(per.get(i, 0) for i in at_logs)} in the {len(at_logs)} logging iterations, {per.get(steps, 0)} "
        "in the last (epoch end).",
    ]
    if any(per.get(i, 0) for i in quiet):
        lines.append("```\n" + counter.report(30) + "\n```")
    return "\n".join(lines)


def _override(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false, lists), else as a string."""
    import json

    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="batch sizes (64 128 256)")
    parser.add_argument(
        "--compile", choices=("both", "on", "off"), default="both", help="time with torch.compile, without, or both"
    )
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    parser.add_argument("--steps", type=int, default=30, help="timed iterations per configuration")
    parser.add_argument("--warmup", type=int, default=8, help="untimed iterations first (compilation included)")
    parser.add_argument("--image-size", type=int, default=224, help="side of the images in pixels")
    parser.add_argument(
        "--peak-tflops", type=float, default=PEAK_TFLOPS, help="dense bf16 peak of the GPU, for the FLOP utilisation"
    )
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="start no configuration after this")
    parser.add_argument("--config", nargs="+", type=Path, default=None, help="bundle config files (train.json)")
    parser.add_argument("--set", nargs="*", default=None, metavar="KEY=VALUE", help="further config overrides")
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, batch 2, 2 + 3 steps")
    parser.add_argument("--out", default=None, help="also write the results to this markdown file")
    args = parser.parse_args()
    if args.set:
        args.set = dict(_override(item) for item in args.set)
    if args.dry_run:
        args.device, args.batches, args.steps, args.warmup = "cpu", args.batches or [2], 3, 2
    args.batches = args.batches or [64, 128, 256]
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_throughput: no CUDA device; use --dry-run to check the script on the CPU.")
    began = time.perf_counter()
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "CPU"
    arch = "tiny (dry run)" if args.dry_run else "the bundle's model"
    flops = bundle_flops(args)
    size = 32 if args.dry_run else args.image_size
    dry = ", DRY RUN on the CPU" if args.dry_run else ""
    gflop = f"{flops / 1e9:.2f}" if args.dry_run else f"{flops / 1e9:.1f}"
    header = [
        f"# AFiRe pre-training throughput ({device_name}, torch {torch.__version__}{dry})",
        "",
        f"`python benchmarks/gpu_throughput.py {' '.join(sys.argv[1:])}`: {arch} at {size} px, bf16 autocast, the "
        f"bundle's train.json with all its handlers, pinned in-memory batches; {args.steps} timed iterations after "
        f"{args.warmup}. MFU = images/s x {gflop} GFLOP per image (FlopCounterMode, benchmarks/flop_count.py) / "
        f"{args.peak_tflops:.0f} TFLOP/s.",
        "",
        "| batch | compile | images/s | ms/step | MFU | peak GiB | warm-up s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows: list[str] = []

    def write(extra: str = "") -> None:
        text = "\n".join(header + rows) + ("\n\n" + extra if extra else "") + "\n"
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            Path(args.out).write_text(text)

    print("\n".join(header), flush=True)
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.compile]
    for batch in args.batches:
        for compiled in modes:
            label = ("yes" + (f" ({args.compile_mode})" if args.compile_mode else "")) if compiled else "no"
            if time.perf_counter() - began > args.budget_s:
                rows.append(f"| {batch} | {label} | skipped (time budget) | | | | |")
            else:
                try:
                    r = run_config(args, batch, compiled, flops)
                    mfu = f"{100 * r['mfu']:.3g}%" if "mfu" in r else "n/a"
                    rows.append(
                        f"| {batch} | {label} | {r['images_per_s']:.0f} | {r['ms_per_step']:.1f} | {mfu} | "
                        f"{r['peak_gib']:.1f} | {r['warmup_s']:.0f} |"
                    )
                except torch.cuda.OutOfMemoryError:
                    rows.append(f"| {batch} | {label} | out of memory | | | | |")
                    gc.collect()
                    torch.cuda.empty_cache()
            print(rows[-1], flush=True)
            write()
    syncs = count_syncs(args, args.batches[0]) if time.perf_counter() - began <= args.budget_s else "sync count skipped"
    print(syncs)
    write(syncs)
    print(f"total {time.perf_counter() - began:.0f} s" + (f"; written to {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
