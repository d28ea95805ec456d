"""Speed of the downstream evaluation toolkit (``monai_afire.apps`` probes, ``monai_afire.metrics`` bootstrap) at the
sizes of the evidence study, on the CPU.

Times, on synthetic data of the study's shapes (median of ``--repeats`` runs):

- :class:`~monai_afire.apps.LinearProbe`: 600 training and 200 validation images, 384 features, 7 classes, the
  default 6-value C grid (target: seconds);
- :func:`~monai_afire.apps.fit_attention_probe`: 600 x 64 x 192 training tokens, 200 validation, 7 classes, the
  default 30 epochs (target: 10-30 s);
- :func:`~monai_afire.apps.knn_scores`: 600 training and 400 query features of 384;
- :func:`~monai_afire.metrics.bootstrap_mean_auroc` and :func:`~monai_afire.metrics.bootstrap_auroc_difference`:
  1000 replicates x 3 seeds x 400 test films of 200 patients, 7 classes (target: under 2 s), next to the same
  bootstrap written as a Python loop over replicates and seeds that re-ranks each resample with ``_rank_aurocs``
  (the ratio is the number to trust on a shared machine).

Usage::

    python benchmarks/evalkit_speed.py                # ~1-2 minutes on 2 idle cores
    python benchmarks/evalkit_speed.py --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from monai_afire.apps import LinearProbe, fit_attention_probe, knn_scores
from monai_afire.metrics import bootstrap_auroc_difference, bootstrap_mean_auroc
from monai_afire.metrics.classification import _rank_aurocs

__all__ = ["main"]


def _timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _features(n: int, dim: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(dim, num_classes))
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = ((x @ w) / np.sqrt(dim) + rng.normal(size=(n, num_classes)) > 1.0).astype(float)
    return x, y


def _tokens(n: int, length: int, dim: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(n, length, dim, generator=g)
    y = (torch.rand(n, num_classes, generator=g) < 0.3).float()
    where = torch.randint(0, length, (n, num_classes), generator=g)
    for c in range(num_classes):
        tokens[torch.arange(n), where[:, c], c] += 4.0 * y[:, c]
    return tokens, y


def _loop_bootstrap(y: np.ndarray, scores: np.ndarray, groups: np.ndarray, num_samples: int, seed: int) -> float:
    """The same statistic by index expansion and re-ranking, one replicate and seed at a time (reference)."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    values = []
    for _ in range(num_samples):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        drawn = rng.integers(0, scores.shape[0], scores.shape[0])
        values.append(np.nanmean([np.nanmean(_rank_aurocs(y[idx], scores[k][idx])) for k in drawn]))
    return float(np.quantile(values, 0.025))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each step; the median is reported")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# evalkit speed: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats}\n")  # fmt: skip
    rows = []

    x, y = _features(800, 384, 7, 0)
    probe = LinearProbe()
    t = _timed(lambda: probe.fit(x[:600], y[:600], x[600:], y[600:]), args.repeats)
    rows.append(("LinearProbe.fit 600x384, 7 classes, 6 C values", t, f"best C {probe.best_c}"))

    tokens, ty = _tokens(800, 64, 192, 7, 1)
    holder = {}
    t = _timed(lambda: holder.update(p=fit_attention_probe(tokens[:600], ty[:600], tokens[600:], ty[600:])), 1)
    best = holder["p"].training_history["best_val_auroc"]
    rows.append(("fit_attention_probe 600x64x192, 30 epochs", t, f"validation mean AUROC {best:.3f}"))

    xq, _ = _features(400, 384, 7, 2)
    t = _timed(lambda: knn_scores(x[:600], y[:600], xq, k=20), args.repeats)
    rows.append(("knn_scores 600 -> 400 queries, 384 features", t, ""))

    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(200), 2)
    by = (rng.random((200, 7)) < 0.2).astype(float)[groups]
    scores = rng.normal(size=(3, 400, 7)) + by
    t = _timed(lambda: bootstrap_mean_auroc(by, scores, groups=groups, num_samples=1000), args.repeats)
    rows.append(("bootstrap_mean_auroc 1000 x 3 seeds x 400 films", t, ""))
    t_diff = _timed(lambda: bootstrap_auroc_difference(by, scores, scores[::-1], groups=groups), args.repeats)
    rows.append(("bootstrap_auroc_difference, same sizes", t_diff, ""))
    t_loop = _timed(lambda: _loop_bootstrap(by, scores, groups, 100, 0), 1) * 10
    rows.append(("reference loop (100 replicates, x10)", t_loop, f"{t_loop / t:.0f}x the vectorised time"))

    print("| step | seconds | note |\n|---|---:|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.2f} | {note} |")


if __name__ == "__main__":
    main()
