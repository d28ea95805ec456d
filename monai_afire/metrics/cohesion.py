"""Cohesion of token embeddings by anatomy: silhouette, k-means NMI/ARI, k-NN accuracy and a t-SNE embedding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from monai_afire.utils.checks import check_patch_size

__all__ = ["token_anatomy_labels", "token_embeddings", "cohesion_metrics", "evaluate_cohesion"]


def token_anatomy_labels(anatomy: torch.Tensor | np.ndarray, patch_size: int | Sequence[int]) -> torch.Tensor:
    """The anatomy label covering most of each patch, in MONAI ViT raster order (first spatial axis slowest).

    Args:
        anatomy: either an integer label map (B, 1, H, W[, D]) (0 usually background), or per-structure masks
            (B, C, H, W[, D]) with C > 1, in which case token labels are 1..C (the channel covering most of the
            patch, plus one) and 0 where no channel covers the patch.
        patch_size: patch side (int) or one per spatial axis; it must divide the image.

    Returns:
        long tensor (B, L).

    Raises:
        ValueError: on a wrong shape, a patch that does not divide the image, or negative/non-integer labels.
    """
    x = torch.as_tensor(anatomy)
    if x.ndim not in (4, 5):
        raise ValueError(f"token_anatomy_labels: anatomy must be (B, C, H, W[, D]), got shape {tuple(x.shape)}.")
    spatial = tuple(x.shape[2:])
    patch = check_patch_size("token_anatomy_labels", spatial, patch_size)
    pool = F.avg_pool2d if len(spatial) == 2 else F.avg_pool3d
    if x.shape[1] == 1:
        if torch.is_floating_point(x) and not torch.equal(x, x.round()):
            raise ValueError("token_anatomy_labels: a one-channel anatomy map must hold integer labels.")
        labels = x[:, 0].long()
        if labels.min() < 0:
            raise ValueError(f"token_anatomy_labels: labels must be >= 0, found {int(labels.min())}.")
        values, inverse = torch.unique(labels, return_inverse=True)  # compact labels keep the one-hot small
        onehot = F.one_hot(inverse, len(values)).movedim(-1, 1).float()
        coverage = pool(onehot, kernel_size=patch, stride=patch).flatten(2)
        return values[coverage.argmax(1)]
    coverage = pool((x > 0).float(), kernel_size=patch, stride=patch).flatten(2)
    best, index = coverage.max(1)
    return torch.where(best > 0, index + 1, torch.zeros_like(index))


def _encode(encoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    out = encoder(images)
    tokens = out[0] if isinstance(out, (tuple, list)) else out
    if tokens.ndim != 3:
        raise ValueError(f"the encoder must return tokens (B, L, D), got shape {tuple(tokens.shape)}.")
    return tokens


@torch.no_grad()
def token_embeddings(
    encoder: torch.nn.Module,
    loader: Iterable,
    image_key: str = "image",
    anatomy_key: str = "anatomy",
    patch_size: int | Sequence[int] | None = None,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run an encoder over a DataLoader of dicts and collect every patch token with its anatomy label.

    Args:
        encoder: a module mapping images (B, C, H, W) to tokens (B, L, D) (or a tuple whose first item is that),
            e.g. ``AFiReEncoder`` or ``AFiRe.teacher_encoder()``; run in eval mode, restored afterwards.
        loader: iterable of dict batches with ``image_key`` and ``anatomy_key`` (see :func:`token_anatomy_labels`).
        image_key: key of the images.
        anatomy_key: key of the anatomy label maps or masks.
        patch_size: defaults to ``encoder.patch_size``.
        device: where to run; defaults to the encoder's device.
        max_batches: stop after this many batches.

    Returns:
        embeddings (N, D) float32, labels (N,) int64, groups (N,) the index of the image each token comes from.
    """
    patch = patch_size if patch_size is not None else getattr(encoder, "patch_size", None)
    if patch is None:
        raise ValueError("token_embeddings: give patch_size, the encoder has no patch_size attribute.")
    if device is None:
        first = next(encoder.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    was_training = encoder.training
    encoder.eval()
    feats, labels, groups = [], [], []
    offset = 0
    try:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            for key in (image_key, anatomy_key):
                if key not in batch:
                    raise KeyError(f"token_embeddings: batch has no key {key!r} (keys: {sorted(batch)}).")
            tokens = _encode(encoder, torch.as_tensor(batch[image_key]).to(device).float())
            token_labels = token_anatomy_labels(torch.as_tensor(batch[anatomy_key]), patch)
            if token_labels.shape != tokens.shape[:2]:
                raise ValueError(
                    f"token_embeddings: {tuple(token_labels.shape)} anatomy tokens for {tuple(tokens.shape[:2])}"
                    " encoder tokens; check patch_size and that the anatomy map matches the image size."
                )
            b, n = token_labels.shape
            feats.append(tokens.reshape(b * n, -1).float().cpu())
            labels.append(token_labels.reshape(-1))
            groups.append(torch.arange(offset, offset + b).repeat_interleave(n))
            offset += b
    finally:
        encoder.train(was_training)
    if not feats:
        raise ValueError("token_embeddings: the loader gave no batch.")
    return torch.cat(feats).numpy(), torch.cat(labels).numpy(), torch.cat(groups).numpy()


def cohesion_metrics(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    groups: np.ndarray | None = None,
    n_clusters: int | None = None,
    knn_neighbors: int = 5,
    cv_folds: int = 5,
    ignore_labels: Sequence[int] = (),
    max_samples: int | None = 5000,
    tsne: bool = False,
    tsne_kwargs: dict | None = None,
    seed: int = 0,
) -> dict:
    """How well token embeddings group by anatomy.

    Embeddings are L2-normalised, so k-means and k-NN work on cosine geometry like the silhouette.

    Args:
        embeddings: (N, D) token embeddings.
        labels: (N,) anatomy label per token.
        groups: (N,) image index per token; when given, k-NN folds never split one image's tokens.
        n_clusters: k of k-means; defaults to the number of distinct labels.
        knn_neighbors: k of the k-NN classifier.
        cv_folds: folds of the k-NN cross-validation.
        ignore_labels: labels dropped before scoring (e.g. ``(0,)`` for background).
        max_samples: random subset size (seeded) to keep the cost bounded; None for all tokens.
        tsne: also return a 2-D t-SNE embedding of the (subset of) tokens.
        tsne_kwargs: extra arguments of ``sklearn.manifold.TSNE`` (e.g. ``{"max_iter": 250}`` for speed).
        seed: seed of the subset, k-means, folds and t-SNE.

    Returns:
        dict with ``silhouette``, ``nmi``, ``ari``, ``knn_accuracy`` (floats), ``num_tokens``, ``num_labels``,
        and with ``tsne=True`` also ``embedding_2d`` (n, 2) and ``embedding_labels`` (n,).
    """
    x = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    x, y = x.astype(np.float64), y.reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"embeddings {x.shape} must be (N, D) with N = len(labels) = {y.shape[0]}.")
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None and g.shape[0] != y.shape[0]:
        raise ValueError(f"groups has {g.shape[0]} entries for {y.shape[0]} tokens.")
    keep = ~np.isin(y, np.asarray(ignore_labels))
    x, y, g = x[keep], y[keep], (None if g is None else g[keep])
    rng = np.random.default_rng(seed)
    if max_samples is not None and x.shape[0] > max_samples:
        idx = np.sort(rng.choice(x.shape[0], max_samples, replace=False))
        x, y, g = x[idx], y[idx], (None if g is None else g[idx])
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"cohesion_metrics needs at least 2 anatomy labels, found {classes.tolist()}.")
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)

    silhouette = float(silhouette_score(x, y, metric="cosine"))
    k = len(classes) if n_clusters is None else int(n_clusters)
    clusters = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
    knn = KNeighborsClassifier(n_neighbors=min(knn_neighbors, x.shape[0] - 1), metric="cosine")
    if g is not None and len(np.unique(g)) >= 2:
        cv = GroupKFold(n_splits=min(cv_folds, len(np.unique(g))))
        accuracy = cross_val_score(knn, x, y, groups=g, cv=cv)
    else:
        folds = max(2, min(cv_folds, int(counts.min())))
        accuracy = cross_val_score(knn, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    out = {
        "silhouette": silhouette,
        "nmi": float(normalized_mutual_info_score(y, clusters)),
        "ari": float(adjusted_rand_score(y, clusters)),
        "knn_accuracy": float(np.mean(accuracy)),
        "num_tokens": int(x.shape[0]),
        "num_labels": int(len(classes)),
    }
    if tsne:
        perplexity = float(min(30.0, max(2.0, (x.shape[0] - 1) / 3.0)))
        options = {"perplexity": perplexity, "init": "pca", "random_state": seed, **(tsne_kwargs or {})}
        out["embedding_2d"] = TSNE(2, **options).fit_transform(x)
        out["embedding_labels"] = y
    return out


def evaluate_cohesion(
    encoder: torch.nn.Module,
    loader: Iterable,
    image_key: str = "image",
    anatomy_key: str = "anatomy",
    max_batches: int | None = None,
    **kwargs,
) -> dict:
    """:func:`token_embeddings` then :func:`cohesion_metrics` (``kwargs`` go to the latter)."""
    x, y, g = token_embeddings(encoder, loader, image_key, anatomy_key, max_batches=max_batches)
    return cohesion_metrics(x, y, groups=g, **kwargs)
