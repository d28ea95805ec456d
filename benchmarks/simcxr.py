"""Speed of the simulated chest radiographs, on one core.

Measures, in one run: the one-time CT preparation (cold cache in a fresh folder), loading the cached
phantom, images per second of ``SimCXRGenerator.sample`` (wide and narrow film geometry) and of
``generate_simcxr`` (default wide geometry; PNG files, masks, anatomy and tables written), against a
baseline that warps the 3-D attenuation volume with ``torch.nn.functional.grid_sample`` for every image
and then projects it (what warping the projection avoids). Prints a markdown table and writes it with a
gallery under ``--out``.

    python benchmarks/simcxr.py --num-images 200 --image-size 224 --out /tmp/simcxr_bench
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["main"]


def _baseline_3d_warp(mu: np.ndarray, repeats: int, seed: int = 0) -> float:
    """Seconds per image for a smooth 3-D warp of the whole volume followed by a projection."""
    vol = torch.from_numpy(mu)[None, None]
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(repeats):
        coarse = torch.from_numpy(rng.normal(0, 0.02, size=(1, 3, 4, 4, 4)).astype(np.float32))
        disp = torch.nn.functional.interpolate(coarse, size=mu.shape, mode="trilinear", align_corners=False)
        theta = torch.eye(3, 4)[None]
        grid = torch.nn.functional.affine_grid(theta, list(vol.shape), align_corners=False)
        grid = grid + disp.permute(0, 2, 3, 4, 1)
        warped = torch.nn.functional.grid_sample(vol, grid, align_corners=False)
        warped.sum(dim=3)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=200, help="films generated per timed variant")
    parser.add_argument("--image-size", type=int, default=224, help="side of the films in pixels")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--out", default=None, help="folder for the written set and the gallery (default: temp)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from monai_afire.data import simcxr_phantom
    from monai_afire.data.simcxr import SimCXRGenerator, SimCXRSettings, generate_simcxr
    from monai_afire.visualize import simcxr_gallery

    out = Path(args.out or tempfile.mkdtemp(prefix="simcxr_bench_"))
    cache = tempfile.mkdtemp(prefix="simcxr_cache_")
    os.environ["MONAI_AFIRE_CACHE"] = cache
    t0 = time.perf_counter()
    phantom = simcxr_phantom.load_phantom()
    prep = time.perf_counter() - t0
    simcxr_phantom._LOADED.clear()
    t0 = time.perf_counter()
    phantom = simcxr_phantom.load_phantom()
    load = time.perf_counter() - t0

    sample_rates = {}
    for geometry in ("wide", "narrow"):
        settings = SimCXRSettings(image_size=args.image_size, geometry=geometry)
        gen = SimCXRGenerator(settings, seed=args.seed, phantom=phantom)
        plan = gen.plan(args.num_images)
        t0, c0 = time.perf_counter(), time.process_time()
        for pid, fu in plan:
            gen.sample(pid, fu)
        sample_rates[geometry] = (len(plan) / (time.perf_counter() - t0), len(plan) / (time.process_time() - c0))

    t0, c0 = time.perf_counter(), time.process_time()
    generate_simcxr(out / "set", args.num_images, seed=args.seed, image_size=args.image_size)
    write_rate = args.num_images / (time.perf_counter() - t0)
    write_cpu = args.num_images / (time.process_time() - c0)

    repeats = 5
    t0, c0 = time.perf_counter(), time.process_time()
    _baseline_3d_warp(phantom.mu, repeats=repeats)
    base_rate = repeats / (time.perf_counter() - t0)
    base_cpu = repeats / (time.process_time() - c0)
    gallery = simcxr_gallery(out / "set", out / "simcxr_gallery.png", num_images=12, columns=4)

    lines = [
        f"CT preparation (cold cache): {prep:.1f} s; cached load: {load:.2f} s; phantom {phantom.mu.shape}",
        "",
        f"| step ({args.image_size} x {args.image_size}, 1 thread) | images/s (wall) | images per CPU-s "
        "| vs 3-D warp baseline (wall) |",
        "|---|---:|---:|---:|",
        f"| baseline: 3-D warp + projection per image | {base_rate:.1f} | {base_cpu:.1f} | 1.00x |",
        *(
            f"| SimCXRGenerator.sample, {g} geometry (in memory) | {wall:.1f} | {cpu:.1f} | {wall / base_rate:.2f}x |"
            for g, (wall, cpu) in sample_rates.items()
        ),
        f"| generate_simcxr, wide (PNG + masks + anatomy + CSV) | {write_rate:.1f} | {write_cpu:.1f} "
        f"| {write_rate / base_rate:.2f}x |",
        "",
        f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; wall-clock rates drop on a "
        "busy machine, per-CPU-second rates much less)",
        "",
        f"target >= 20 images/s written (wall clock): {'met' if write_rate >= 20 else 'NOT met'}; "
        f"preparation <= 60 s: {'met' if prep <= 60 else 'NOT met'}",
    ]
    print("\n".join(lines))
    (out / "simcxr_benchmark.md").write_text("\n".join(lines) + "\n")
    print(f"gallery: {gallery}")


if __name__ == "__main__":
    main()
