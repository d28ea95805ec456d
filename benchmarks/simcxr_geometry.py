"""Does token position alone tell the anatomy on the simulated films? Narrow (simcxr 1.0) vs wide film geometry.

For each geometry, generates normal simulated films (no findings; same seed, so the same patients and exposures)
and scores how well patch tokens group by anatomy with :func:`monai_afire.metrics.cohesion_metrics` (k-NN accuracy
cross-validated by image, silhouette, k-means NMI; background tokens left out), the tokens' anatomy label being
the structure covering most of the patch (:func:`monai_afire.metrics.token_anatomy_labels`), exactly as
:mod:`monai_afire.apps.cohesion` does. Token features:

- a RANDOM-initialised :class:`monai_afire.networks.AFiReEncoder` of the demo's shape (hidden 96, 4 layers, 3 heads,
  patch 16), one row per initialisation seed;
- position only: the one-hot token position (k-NN finds tokens at the same place in other films);
- position only, best possible: each position's most frequent label in the training folds (same folds);
- raw patch pixels (the 16 x 16 patch, L2-normalised like every feature).

Writes a markdown table (``--report``) with the command.

    python benchmarks/simcxr_geometry.py --num-images 300 --image-size 128 \
        --report benchmarks/results/simcxr_geometry.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["main", "position_majority_accuracy"]


def position_majority_accuracy(
    positions: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5, ignore: int = 0
) -> float:
    """Accuracy of predicting each token's label as the most frequent label at its position in the other folds
    (folds by image, ``GroupKFold``): the best any position-only classifier can do, cross-validated."""
    from sklearn.model_selection import GroupKFold

    keep = labels != ignore
    positions, labels, groups = positions[keep], labels[keep], groups[keep]
    num_pos, num_lab = positions.max() + 1, labels.max() + 1
    scores = []
    for train, test in GroupKFold(n_splits=folds).split(positions, labels, groups):
        table = np.zeros((num_pos, num_lab))
        np.add.at(table, (positions[train], labels[train]), 1)
        scores.append(float(np.mean(table.argmax(1)[positions[test]] == labels[test])))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=300, help="normal films per geometry")
    parser.add_argument("--image-size", type=int, default=128, help="side of the films in pixels")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument(
        "--encoder-seeds", type=int, nargs="+", default=[0, 1, 2], help="initialisation seeds of the random encoder"
    )
    parser.add_argument("--max-samples", type=int, default=5000, help="tokens scored (seeded subset)")
    parser.add_argument("--out", default=None, help="folder for the generated sets (default: temporary)")
    parser.add_argument("--report", default=None, help="markdown file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from monai.data import DataLoader, Dataset

    from monai_afire.apps.cohesion import cohesion_records, cohesion_transforms
    from monai_afire.data.simcxr import generate_simcxr
    from monai_afire.metrics import cohesion_metrics, token_embeddings
    from monai_afire.networks import AFiReEncoder

    out = Path(args.out or tempfile.mkdtemp(prefix="simcxr_geometry_"))
    size, patch = args.image_size, 16
    rows, extra = [], []
    for geometry in ("narrow", "wide"):
        t0 = time.perf_counter()
        folder = generate_simcxr(
            out / geometry, args.num_images, seed=args.seed, image_size=size, prevalence={}, geometry=geometry,
            overwrite=True,
        )  # fmt: skip
        gen_s = time.perf_counter() - t0
        records = cohesion_records(folder)
        loader = DataLoader(Dataset(records, cohesion_transforms(size)), batch_size=32, num_workers=0)
        score = dict(ignore_labels=(0,), max_samples=args.max_samples, seed=0)
        results = {}
        for s in args.encoder_seeds:
            torch.manual_seed(s)
            encoder = AFiReEncoder(img_size=size, patch_size=patch, hidden_size=96, num_layers=4, num_heads=3)
            x, y, g = token_embeddings(encoder, loader)
            results[f"random AFiReEncoder, init seed {s}"] = cohesion_metrics(x, y, groups=g, **score)
        per_image = (size // patch) ** 2
        position = np.tile(np.arange(per_image), len(records))
        onehot = np.eye(per_image, dtype=np.float32)[position]
        results["position only: one-hot token position"] = cohesion_metrics(onehot, y, groups=g, **score)
        pixels = []
        for batch in loader:
            img = torch.as_tensor(batch["image"]).float()  # (B, 1, S, S) -> (B, L, p*p) in raster order
            tiles = img.unfold(2, patch, patch).unfold(3, patch, patch).reshape(img.shape[0], per_image, -1)
            pixels.append((tiles + 1e-3).numpy())  # + eps: an all-black patch still has a direction
        results["raw patch pixels (16 x 16)"] = cohesion_metrics(np.concatenate(pixels).reshape(len(y), -1), y,
                                                                 groups=g, **score)  # fmt: skip
        best_position = position_majority_accuracy(position, y, g)
        labels, counts = np.unique(y[y != 0], return_counts=True)
        for name, r in results.items():
            rows.append((geometry, name, r["knn_accuracy"], r["silhouette"], r["nmi"]))
        rows.append((geometry, "position only: each position's majority label", best_position, None, None))
        extra.append(
            f"- {geometry}: {len(records)} normal films, {len(y)} tokens ({(y != 0).sum()} not background, scored: a "
            f"seeded subset of {min(args.max_samples, int((y != 0).sum()))}), {len(labels)} anatomy labels, "
            f"majority label share {counts.max() / counts.sum():.3f}; generated in {gen_s:.0f} s"
        )
        print(f"{geometry}: done", flush=True)

    lines = [
        "# Anatomy cohesion of tokens on simulated films: narrow vs wide geometry",
        "",
        f"Command: `python {' '.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])}`",
        "",
        f"{args.num_images} films at {size} px per geometry (data seed {args.seed}, no findings), ViT patch {patch} "
        f"({(size // patch) ** 2} tokens per film); background tokens left out; k-NN (k = 5, cosine) accuracy "
        "cross-validated by film (5 folds); silhouette (cosine) and k-means NMI on the same tokens. Random encoder: "
        "`AFiReEncoder(img_size=128, patch_size=16, hidden_size=96, num_layers=4, num_heads=3)`, untrained, "
        "`monai_afire.apps.cohesion.cohesion_transforms` preparation.",
        "",
        "| geometry | token features | anatomy k-NN accuracy | silhouette | NMI |",
        "|---|---|---:|---:|---:|",
    ]
    for geometry, name, knn, sil, nmi in rows:
        cells = [f"{v:.3f}" if v is not None else "" for v in (knn, sil, nmi)]
        lines.append(f"| {geometry} | {name} | " + " | ".join(cells) + " |")
    lines += ["", *extra, "", f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(text)


if __name__ == "__main__":
    main()
