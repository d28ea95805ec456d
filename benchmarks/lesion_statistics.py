"""How much of a film the Synthetic Lesion Mask covers: the authors' blobs against the earlier monai-afire ones.

    python benchmarks/lesion_statistics.py [--draws 1500] [--image-size 224] [--seed 0] [--out table.md]

On the real chest film ``RG1_UNCR.dcm`` (``pydicom-data``), prepared by ``radiograph_transforms`` at ``--image-size``,
draws ``--draws`` lesions with each setting of :class:`~monai_afire.transforms.RandSyntheticLesion` (the same seeds
for all) and prints a markdown table of the mean over the draws of

- the abnormal-token fraction: tokens (16 x 16 patches) with a positive mean lesion mask, as the model labels them;
- the lesion-area fraction: pixels where the lesion mask is positive;
- the pixels changed outside the lesion: pixels with a zero mask whose value still changed (the ceiling clip);

with the number of draws where a blob was cut at the border. Also reports the fraction of the prepared film's pixels
above the ceiling 235/255. Needs ``pip install pydicom-data``; never downloads.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from monai_afire.transforms import RandSyntheticLesion, patch_labels, radiograph_transforms

__all__ = ["SETTINGS", "film", "lesion_statistics", "main"]

#: the transform's settings compared: the authors' (today's defaults) and the earlier monai-afire ones
SETTINGS = {
    "authors (default): inside, rectangle, image clip": {},
    "earlier monai-afire: anywhere, ellipse, image clip": {"placement": "anywhere", "falloff": "ellipse"},
    "inside, rectangle, lesion clip": {"clip_scope": "lesion"},
}


def film(image_size: int) -> torch.Tensor:
    """The prepared demo film (1, S, S) in [0, 1]."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm", download=False)
    if path is None:
        raise RuntimeError("RG1_UNCR.dcm is not installed: run `pip install pydicom-data`.")
    return radiograph_transforms(image_size)({"image": path})["image"].as_tensor()


def lesion_statistics(image: torch.Tensor, draws: int, seed: int, patch: int = 16, **kwargs) -> dict[str, float]:
    """Mean abnormal-token fraction, lesion-area fraction, changed pixels outside the lesion, and the fraction of
    draws with a blob cut at the border, over ``draws`` lesions of ``RandSyntheticLesion(**kwargs)``."""
    transform = RandSyntheticLesion(**kwargs).set_random_state(seed)
    spatial = image.shape[1:]
    tokens, area, outside, cut = [], [], [], 0
    for _ in range(draws):
        out, mask = transform(image, return_mask=True)
        tokens.append(float(patch_labels(mask[None], patch).float().mean()))
        lesion = mask > 0
        area.append(float(lesion.float().mean()))
        outside.append(float(((out != image) & ~lesion).float().mean()))
        cut += any(b < 0 or b + z > s for blob in transform.blobs for b, z, s in zip(blob.start, blob.size, spatial))
    return {
        "tokens": float(np.mean(tokens)),
        "area": float(np.mean(area)),
        "outside": float(np.mean(outside)),
        "cut": cut / draws,
    }


def run(draws: int, image_size: int, seed: int) -> str:
    """The markdown table."""
    torch.set_num_threads(1)
    image = film(image_size)
    ceiling = 235 / 255
    lines = [
        f"Film `RG1_UNCR.dcm` prepared at {image_size} x {image_size}: {float((image > ceiling).float().mean()):.3f} "
        f"of its pixels lie above the ceiling 235/255. {draws} draws per setting (seed {seed}); tokens of 16 x 16.",
        "",
        "| setting | abnormal-token fraction | lesion-area fraction | pixels changed outside the lesion "
        "| draws with a blob cut at the border |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, kwargs in SETTINGS.items():
        start = time.perf_counter()
        stats = lesion_statistics(image, draws, seed, **kwargs)
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
        lines.append(
            f"| {name} | {stats['tokens']:.3f} | {stats['area']:.3f} | {stats['outside']:.3f} | {stats['cut']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1500, help="lesions drawn per setting")
    parser.add_argument("--image-size", type=int, default=224, help="side of the prepared film")
    parser.add_argument("--seed", type=int, default=0, help="seed of the lesion draws (the same for every setting)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    table = run(args.draws, args.image_size, args.seed)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = f"python benchmarks/lesion_statistics.py --draws {args.draws} --image-size {args.image_size}"
        command += f" --seed {args.seed} --out {args.out}"
        args.out.write_text(f"# Synthetic Lesion Mask coverage\n\nCommand: `{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
