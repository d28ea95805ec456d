"""Speed of the Synthetic Lesion Mask against MONAI's RandGaussianNoise, on one thread.

    python benchmarks/transforms.py [--sizes 224 512] [--images 32] [--repeats 10] [--out table.md]

Prints a markdown table: milliseconds per image of ``RandSyntheticLesiond`` (its defaults, the authors' lesions) and of
MONAI's ``RandGaussianNoise`` (and ``RandGaussianNoised``) on the same single-channel images in the same run, the ratio
SLM / RandGaussianNoise (target <= 1.0 at 224 x 224), and the earlier lesion settings (``placement="anywhere"``,
``falloff="ellipse"``) for comparison. Each number is the best of ``--repeats`` passes over the images, the transforms
taking turns, to damp the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import RandGaussianNoise, RandGaussianNoised

from monai_afire.transforms import RandSyntheticLesiond

__all__ = ["chest_like_images", "time_per_image", "run"]


def chest_like_images(count: int, size: int, seed: int = 0) -> list[MetaTensor]:
    """Float images (1, size, size) in [0, 1]: a dark background, a bright textured ellipse (the body), two darker
    ellipses (the lungs)."""
    rng = np.random.default_rng(seed)
    grid = (np.arange(size) + 0.5) / size - 0.5
    y, x = np.meshgrid(grid, grid, indexing="ij")
    images = []
    for _ in range(count):
        body = (x / rng.uniform(0.38, 0.46)) ** 2 + (y / rng.uniform(0.42, 0.48)) ** 2 < 1
        lungs = ((np.abs(x) - 0.18) / 0.13) ** 2 + ((y + 0.02) / 0.3) ** 2 < 1
        image = 0.05 + 0.65 * body - 0.35 * (lungs & body) + 0.1 * rng.random((size, size))
        images.append(MetaTensor(torch.as_tensor(np.clip(image, 0, 1)[None], dtype=torch.float32)))
    return images


def time_per_image(
    functions: Sequence[Callable[[MetaTensor], object]], images: Sequence[MetaTensor], repeats: int
) -> list[float]:
    """Best-of-``repeats`` milliseconds per image of each function over ``images``, after one warm-up call each.

    The functions take turns within every repeat, so a busy moment on a shared machine hits all of them alike.
    """
    for function in functions:
        function(images[0])
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            for image in images:
                function(image)
            best[index] = min(best[index], (time.perf_counter() - start) / len(images))
    return [b * 1e3 for b in best]


def _on_dict(transform: Callable[[dict], object]) -> Callable[[MetaTensor], object]:
    return lambda image: transform({"image": image})


def run(sizes: Sequence[int], count: int, repeats: int) -> str:
    """Time the transforms for each size; returns the markdown table."""
    torch.set_num_threads(1)
    lines = [
        "| image | RandSyntheticLesiond (ms) | RandGaussianNoise (ms) | RandGaussianNoised (ms) "
        "| ratio SLM / RandGaussianNoise | RandSyntheticLesiond, earlier settings (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for size in sizes:
        images = chest_like_images(count, size)
        lesion = RandSyntheticLesiond(keys="image").set_random_state(0)
        earlier = RandSyntheticLesiond(keys="image", placement="anywhere", falloff="ellipse").set_random_state(0)
        noise = RandGaussianNoise(prob=1.0).set_random_state(0)
        noise_dict = RandGaussianNoised(keys="image", prob=1.0).set_random_state(0)
        functions = [_on_dict(lesion), noise, _on_dict(noise_dict), _on_dict(earlier)]
        slm, baseline, baseline_dict, slm_earlier = time_per_image(functions, images, repeats)
        lines.append(
            f"| {size} x {size} | {slm:.3f} | {baseline:.3f} | {baseline_dict:.3f} | {slm / baseline:.2f} "
            f"| {slm_earlier:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512], help="image sides in pixels, one row each")
    parser.add_argument("--images", type=int, default=32, help="images per pass")
    parser.add_argument("--repeats", type=int, default=10, help="passes over the images; the best is kept")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    table = run(args.sizes, args.images, args.repeats)
    print(f"Synthetic Lesion Mask vs MONAI RandGaussianNoise, 1 thread, torch {torch.__version__}\n")
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
