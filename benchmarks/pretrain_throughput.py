"""Pre-training throughput: images per second and peak memory of AFiRe training steps.

``python benchmarks/pretrain_throughput.py [--iterations N] [--out FILE.md]``

Configurations: the demo (``demo.json``: small ViT, 128x128, batch 16) and ``vit_small``/224 (batch 8) on the CPU,
and ``vit_base``/224 (batch 64, bf16 AMP) on a GPU when one is present. Each configuration runs in its own
process (so the CPU peak resident memory is its own) through :class:`monai_afire.engines.AFiRePretrainer` with the
teacher EMA and schedule handlers, on random tensors (no data loading). The first configuration is the baseline
of the ratio column, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    "demo (vit 96/4, 128 px, batch 16)": dict(
        device="cpu",
        amp=False,
        batch=16,
        image=128,
        patch=16,
        arch="vit_tiny",
        hidden=96,
        layers=4,
        heads=3,
        mlp=192,
        prototypes=32,
        head_hidden=256,
        bottleneck=64,
        dec_dim=64,
        dec_depth=2,
        dec_heads=4,
    ),
    "vit_small/16, 224 px, batch 8": dict(
        device="cpu",
        amp=False,
        batch=8,
        image=224,
        patch=16,
        arch="vit_small",
        prototypes=256,
        head_hidden=1024,
        bottleneck=256,
        dec_dim=512,
        dec_depth=8,
        dec_heads=16,
    ),
    "vit_base/16, 224 px, batch 64, bf16": dict(
        device="cuda",
        amp="bf16",
        batch=64,
        image=224,
        patch=16,
        arch="vit_base",
        prototypes=256,
        head_hidden=1024,
        bottleneck=256,
        dec_dim=512,
        dec_depth=8,
        dec_heads=16,
    ),
}


def measure(cfg: dict, iterations: int) -> dict:
    """Run ``iterations`` timed training steps (after 2 warm-up steps) of one configuration."""
    import torch
    from ignite.engine import Events

    from monai_afire.engines import AFiRePretrainer
    from monai_afire.handlers import TeacherEMA
    from monai_afire.losses import AFiReLoss
    from monai_afire.networks import AFiRe, AFiReEncoder
    from monai_afire.optimizers import weight_decay_param_groups

    torch.manual_seed(0)
    device = torch.device(cfg["device"])
    encoder = AFiReEncoder(
        cfg["arch"],
        img_size=cfg["image"],
        patch_size=cfg["patch"],
        hidden_size=cfg.get("hidden"),
        num_layers=cfg.get("layers"),
        num_heads=cfg.get("heads"),
        mlp_dim=cfg.get("mlp"),
    )
    model = AFiRe(
        encoder,
        num_prototypes=cfg["prototypes"],
        head_hidden_dim=cfg["head_hidden"],
        head_bottleneck_dim=cfg["bottleneck"],
        decoder_dim=cfg["dec_dim"],
        decoder_depth=cfg["dec_depth"],
        decoder_heads=cfg["dec_heads"],
        lesion_prototype=True,  # as measured: the afire_plus recipe (lesion prototype + category term)
    ).to(device)
    b, s = cfg["batch"], cfg["image"]
    clean = torch.rand(b, 1, s, s)
    mask = torch.zeros(b, 1, s, s)
    mask[:, :, s // 4 : s // 2, s // 4 : s // 2] = 0.3
    batch = {"image": (clean + mask).clamp(0, 1), "clean": clean, "lesion_mask": mask}
    steps = iterations + 2
    optimizer = torch.optim.AdamW(weight_decay_param_groups(model), lr=1e-4)
    loss = AFiReLoss(model.num_positions, cfg["prototypes"], category_weight=1.0).to(device)
    trainer = AFiRePretrainer(
        device,
        1,
        [batch] * steps,
        model,
        optimizer,
        loss,
        amp=cfg["amp"],
        clip_grad_mode="global",  # as measured
        train_handlers=[TeacherEMA(model)],
    )
    times = []

    def _tick(engine):
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())

    trainer.add_event_handler(Events.ITERATION_COMPLETED, _tick)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.run()
    elapsed = times[-1] - times[1]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "images_per_s": iterations * b / elapsed,
        "peak_mib": peak,
        "s_per_step": elapsed / iterations,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5, help="timed training iterations per configuration")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(CONFIGS[args.one], args.iterations)))
        return
    import torch

    rows, baseline = [], None
    for name, cfg in CONFIGS.items():
        if cfg["device"] == "cuda" and not torch.cuda.is_available():
            rows.append(f"| {name} | cuda | not run (no GPU) | | | |")
            continue
        done = subprocess.run(
            [sys.executable, __file__, "--one", name, "--iterations", str(args.iterations)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            rows.append(f"| {name} | {cfg['device']} | failed: {done.stderr.strip().splitlines()[-1]} | | | |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        baseline = baseline or r["images_per_s"]
        rows.append(
            f"| {name} | {r['device']} | {r['images_per_s']:.1f} | {r['s_per_step']:.3f} | "
            f"{r['peak_mib']:.0f} | {r['images_per_s'] / baseline:.3f} |"
        )
    table = "\n".join(
        [
            "| configuration | device | images/s | s/step | peak memory (MiB) | images/s vs demo |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
