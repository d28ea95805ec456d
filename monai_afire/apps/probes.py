"""Frozen-feature evaluation of an encoder: token extraction, pooling, a linear probe, an attention-pooling probe
and k-nearest-neighbour scores, for multi-label classification.

Typical use (the settings are chosen on the validation split, the test split is scored once)::

    tokens = {k: encode_tokens(encoder, images[k]) for k in ("train", "val", "test")}  # (N, L, D) each
    feats = {k: pool_tokens(t, "mean_max") for k, t in tokens.items()}
    probe = LinearProbe().fit(feats["train"], y["train"], feats["val"], y["val"])
    test_scores = probe.predict(feats["test"])  # (N, C)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers import trunc_normal_
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from monai_afire.metrics import mean_auroc
from monai_afire.networks.classifier import prior_log_odds

from .finetune import Batch, _as_float, _model_device, _plain, image_batches, train_classifier, training_prevalence

__all__ = [
    "encode_tokens",
    "pool_tokens",
    "POOL_MODES",
    "LinearProbe",
    "AttentionPoolingProbe",
    "fit_attention_probe",
    "knn_scores",
    "select_knn_k",
]

POOL_MODES = ("mean", "max", "mean_max")


@torch.no_grad()
def encode_tokens(
    encoder: nn.Module,
    images: torch.Tensor | np.ndarray | Iterable[Batch],
    batch_size: int = 64,
    device: str | torch.device | None = None,
    key: str = "image",
    amp: bool = False,
) -> torch.Tensor:
    """Patch tokens of a frozen encoder for a set of images.

    The encoder runs in eval mode without gradients; its train/eval mode and device are restored afterwards.

    Args:
        encoder: maps images (B, C, *spatial) to patch tokens (B, L, D), or to a tuple whose first item they are (an
            :class:`~monai_afire.networks.AFiReEncoder` with a class token returns ``(tokens, cls)``). Wrap a CNN so
            that it returns its feature map as tokens (B, H*W, C).
        images: a tensor (N, C, *spatial) or an iterable of batches: tensors, dicts with ``key``, or tuples/lists
            whose first item is the images (see :func:`~monai_afire.apps.image_batches`).
        batch_size: batch size when ``images`` is a tensor.
        device: where to run; None runs where the encoder's parameters are.
        key: image key of dict batches.
        amp: bfloat16 autocast (GPU); the tokens are returned in float32 either way.

    Returns:
        float32 tokens (N, L, D) on the CPU.

    Raises:
        ValueError: the encoder does not return (B, L, D) tokens, or ``images`` holds no batch or a bad one.
    """
    dev = _model_device(encoder, device)
    home = next(iter(encoder.parameters()), None)
    home = None if home is None else home.device
    was_training = encoder.training
    encoder.to(dev).eval()
    out = []
    try:
        for batch in image_batches(images, batch_size, key):
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                tokens = encoder(_as_float(batch).to(dev))
            tokens = _plain(tokens[0] if isinstance(tokens, (tuple, list)) else tokens)
            if tokens.ndim != 3 or tokens.shape[0] != batch.shape[0]:
                raise ValueError(
                    f"encode_tokens: the encoder must return patch tokens (B, L, D) for a batch of {batch.shape[0]}, "
                    f"got {tuple(tokens.shape)}; wrap a CNN so that it returns its feature map as (B, H*W, C)."
                )
            out.append(tokens.float().cpu())
    finally:
        encoder.train(was_training)
        if home is not None:
            encoder.to(home)
    if not out:
        raise ValueError("encode_tokens: images holds no batch.")
    return torch.cat(out)


def pool_tokens(tokens: torch.Tensor | np.ndarray, mode: str = "mean_max") -> torch.Tensor:
    """Pool patch tokens (N, L, D) into one feature vector per image.

    Args:
        tokens: (N, L, D).
        mode: ``"mean"`` (N, D), ``"max"`` (N, D), or ``"mean_max"``: both concatenated, mean first (N, 2D).

    Raises:
        ValueError: an unknown mode or tokens that are not (N, L, D).
    """
    if mode not in POOL_MODES:
        raise ValueError(f"pool_tokens: mode must be one of {POOL_MODES}, got {mode!r}.")
    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 3 or tokens.shape[1] == 0:
        raise ValueError(f"pool_tokens: tokens must have shape (N, L, D) with L >= 1, got {tuple(tokens.shape)}.")
    tokens = _as_float(_plain(tokens))
    if mode == "mean":
        return tokens.mean(1)
    if mode == "max":
        return tokens.amax(1)
    return torch.cat([tokens.mean(1), tokens.amax(1)], dim=1)


def _matrix(x: torch.Tensor | np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or (dim is not None and arr.shape[1] != dim):
        expected = "(N, D)" if dim is None else f"(N, {dim})"
        raise ValueError(f"{name} must be features {expected} with N >= 1, got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _binary(y: torch.Tensor | np.ndarray, name: str, n: int, num_classes: int | None = None) -> np.ndarray:
    arr = y.detach().cpu().double().numpy() if isinstance(y, torch.Tensor) else np.asarray(y, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n or (num_classes is not None and arr.shape[1] != num_classes):
        expected = f"({n}, {'C' if num_classes is None else num_classes})"
        raise ValueError(f"{name} must be labels {expected} (one row per sample), got {arr.shape}.")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must be binary (0 or 1).")
    return arr


def _has_defined_class(y: np.ndarray) -> bool:
    positives = y.sum(0)
    return bool(np.any((positives > 0) & (positives < y.shape[0])))


class LinearProbe:
    """Multi-label linear probe on frozen features: one L2-regularised logistic regression per class (scikit-learn,
    L-BFGS), on features standardised with the training set's mean and standard deviation.

    The inverse regularisation strength C is shared by the classes and chosen from ``cs`` by the mean AUROC on the
    validation split (classes with both labels there); ties go to the smaller C. The test split is never seen by
    :meth:`fit`. The grid is fitted from the smallest C up, each fit warm-started from the previous one. A class
    with one label value in the training split cannot be fitted: it gets a constant score (its smoothed training
    prevalence) and is listed in ``constant_classes``.

    Args:
        cs: grid of inverse regularisation strengths (scikit-learn's ``C``; the penalty is ``||w||^2 / (2 C)`` next
            to the summed log-loss). The default spans 1e-4 (close to a class-mean-difference direction) to 10 (little
            regularisation for a few hundred samples).
        max_iter: L-BFGS iterations per fit.
        seed: ``random_state`` of scikit-learn (L-BFGS itself is deterministic).
        tol: L-BFGS tolerance.
        blas_threads: BLAS threads during :meth:`fit` (threadpoolctl); None leaves them as they are. One thread is
            the default because these products are small: on 2 shared cores a 600 x 384, 7-class, 6-C fit took
            0.56 s with one thread and 2.9 s with two.

    Attributes (after :meth:`fit`):
        best_c: the chosen C.
        val_auroc: ``{C: validation mean AUROC}`` for every grid value.
        constant_classes: indices of the classes with one label value in training.
        coef_: (D, C) weights on standardised features; ``intercept_``: (C,).
        num_not_converged: fits that stopped at ``max_iter``.
    """

    def __init__(
        self,
        cs: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0),
        max_iter: int = 1000,
        seed: int = 0,
        tol: float = 1e-4,
        blas_threads: int | None = 1,
    ) -> None:
        cs = tuple(sorted(float(c) for c in cs))
        if not cs or cs[0] <= 0 or len(set(cs)) != len(cs):
            raise ValueError(f"LinearProbe: cs must be distinct positive values, got {cs}.")
        self.cs = cs
        self.max_iter = int(max_iter)
        self.seed = int(seed)
        self.tol = float(tol)
        self.blas_threads = blas_threads
        self.best_c: float | None = None
        self.val_auroc: dict[float, float] = {}
        self.constant_classes: list[int] = []
        self.num_not_converged = 0

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_

    def _fit_grid(self, zt: np.ndarray, yt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weights (G, D, C) and intercepts (G, C) of every grid value G and class C (warm-started along the grid)."""
        coefs = np.zeros((len(self.cs), zt.shape[1], yt.shape[1]))
        intercepts = np.zeros((len(self.cs), yt.shape[1]))
        positives = yt.sum(0)
        for c in range(yt.shape[1]):
            if c in self.constant_classes:
                intercepts[:, c] = float(prior_log_odds([(positives[c] + 0.5) / (zt.shape[0] + 1.0)], 1)[0])
                continue
            clf = LogisticRegression(C=self.cs[0], max_iter=self.max_iter, tol=self.tol, warm_start=True)
            clf.set_params(random_state=self.seed)
            for i, value in enumerate(self.cs):
                clf.set_params(C=value)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    clf.fit(zt, yt[:, c])
                self.num_not_converged += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
                coefs[i, :, c] = clf.coef_[0]
                intercepts[i, c] = clf.intercept_[0]
        return coefs, intercepts

    def fit(
        self,
        x_train: torch.Tensor | np.ndarray,
        y_train: torch.Tensor | np.ndarray,
        x_val: torch.Tensor | np.ndarray,
        y_val: torch.Tensor | np.ndarray,
    ) -> LinearProbe:
        """Fit every C of the grid on the training split and keep the one with the best validation mean AUROC.

        Args:
            x_train: features (N, D).
            y_train: binary labels (N, C).
            x_val: features (M, D).
            y_val: binary labels (M, C); at least one class needs both labels.

        Returns:
            self.

        Raises:
            ValueError: shapes that do not match (the argument and the expected shape are named), non-binary labels,
                or validation labels without any class having both values.
        """
        xt = _matrix(x_train, "x_train")
        yt = _binary(y_train, "y_train", xt.shape[0])
        xv = _matrix(x_val, "x_val", dim=xt.shape[1])
        yv = _binary(y_val, "y_val", xv.shape[0], num_classes=yt.shape[1])
        if not _has_defined_class(yv):
            raise ValueError("LinearProbe.fit: y_val has no class with both labels; C cannot be chosen.")
        self.mean_ = xt.mean(0)
        scale = xt.std(0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        zt, zv = self._standardise(xt), self._standardise(xv)
        positives = yt.sum(0)
        self.constant_classes = [c for c in range(yt.shape[1]) if positives[c] in (0, xt.shape[0])]
        self.num_not_converged = 0
        with threadpool_limits(self.blas_threads, user_api="blas"):
            coefs, intercepts = self._fit_grid(zt, yt)
        val_logits = zv @ coefs + intercepts[:, None, :]
        self.val_auroc = {value: mean_auroc(yv, val_logits[i]) for i, value in enumerate(self.cs)}
        best = int(np.argmax([self.val_auroc[v] for v in self.cs]))
        self.best_c = self.cs[best]
        self.coef_ = coefs[best]
        self.intercept_ = intercepts[best]
        return self

    def decision_function(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Logits (N, C) of features (N, D)."""
        if self.best_c is None:
            raise RuntimeError("LinearProbe: call fit() before predicting.")
        return self._standardise(_matrix(x, "x", dim=self.coef_.shape[0])) @ self.coef_ + self.intercept_

    def predict(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Probabilities (N, C) of features (N, D) (float64 sigmoid of :meth:`decision_function`)."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(x)))


class AttentionPoolingProbe(nn.Module):
    """Light attention pooling on frozen tokens: learnt queries attend over the tokens, then a linear head.

    ``tokens (B, L, D) -> LayerNorm -> K attention maps over the L tokens -> K attention-weighted token averages
    (B, K, D) -> LayerNorm -> Linear(K * D, C) -> logits (B, C)``, with ``K = num_queries * num_heads``. Each map is a
    softmax over positions of ``token . q_k`` (normalised tokens) for a learnt query vector q_k (D,). The product is
    not divided by sqrt(D): Adam moves each query element by about the learning rate per step, and with the division
    the maps sharpened too slowly to find a one-token finding within a few hundred steps (measured on synthetic
    tokens at D = 8, 64 and 384); without it they do at every width tried. This is the function class
    of one multi-head cross-attention layer from learnt queries followed by a linear head (there the key projection
    only ever meets the fixed query, so ``W_k^T q`` is one learnt vector per head, and the value and output
    projections are linear maps that the head absorbs), computed at O(B L D K) instead of O(B L D^2): the probe stays
    small (``K * D * (C + 1)`` weights plus two norms) and seconds-fast on a CPU. Small queries at start give near
    uniform maps, i.e. mean pooling; weight decay on the queries pulls back towards it.

    Position: with ``num_positions=None`` (the default) the maps are computed from the tokens alone, so where a token
    sits must already be in the token (a ViT adds its position embedding at the input; AFiRe's structure term ties
    anatomy to position). The probe then measures what the representation holds and has the same size for every arm.
    A learnt position embedding (zero at start) added to the normalised tokens lets the probe learn fixed regions of
    interest by itself, which makes it less a test of the tokens; it is there for comparison.

    Args:
        dim: token width D.
        num_classes: number of outputs C.
        num_heads: attention maps per query.
        num_queries: learnt queries (their maps are concatenated with the heads').
        num_positions: L to add a learnt position embedding (1, L, D); None for none.
        dropout: dropout on the attention weights and before the head.
        class_prior: per-class training prevalence; the head bias starts at its log-odds (None: zero).
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        num_heads: int = 4,
        num_queries: int = 1,
        num_positions: int | None = None,
        dropout: float = 0.0,
        class_prior: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if min(dim, num_classes, num_heads, num_queries) < 1:
            raise ValueError(
                "AttentionPoolingProbe: dim, num_classes, num_heads and num_queries must be >= 1, got "
                f"{dim}, {num_classes}, {num_heads}, {num_queries}."
            )
        self.dim, self.num_classes, self.num_positions = int(dim), int(num_classes), num_positions
        self.num_maps = int(num_heads) * int(num_queries)
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Parameter(torch.zeros(self.num_maps, dim))
        trunc_normal_(self.query, mean=0.0, std=0.02, a=-2.0, b=2.0)
        self.position = nn.Parameter(torch.zeros(1, int(num_positions), dim)) if num_positions else None
        self.attn_dropout = nn.Dropout(dropout)
        self.out_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_maps * dim, num_classes)
        trunc_normal_(self.head.weight, mean=0.0, std=0.02, a=-2.0, b=2.0)
        nn.init.zeros_(self.head.bias)
        if class_prior is not None:
            with torch.no_grad():
                self.head.bias.copy_(prior_log_odds(class_prior, num_classes))

    def _keys(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or tokens.shape[-1] != self.dim:
            raise ValueError(f"AttentionPoolingProbe: expected tokens (B, L, {self.dim}), got {tuple(tokens.shape)}.")
        keys = self.norm(tokens)
        if self.position is not None:
            if tokens.shape[1] != self.position.shape[1]:
                raise ValueError(
                    f"AttentionPoolingProbe: built for {self.position.shape[1]} positions, got {tokens.shape[1]}."
                )
            keys = keys + self.position
        return keys

    def _maps(self, keys: torch.Tensor) -> torch.Tensor:
        return torch.softmax(keys @ self.query.T, dim=1)  # (B, L, K)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) of tokens (B, L, D)."""
        keys = self._keys(tokens)
        pooled = self.attn_dropout(self._maps(keys)).transpose(1, 2) @ keys  # (B, K, D)
        return self.head(self.dropout(self.out_norm(pooled)).flatten(1))

    @torch.no_grad()
    def attention(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attention maps (B, K, L) over the tokens (each row sums to 1; K = num_queries * num_heads)."""
        return self._maps(self._keys(tokens)).transpose(1, 2)


def _tokens(x: torch.Tensor | np.ndarray, name: str, shape: tuple[int, int] | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 3 or t.shape[0] == 0 or (shape is not None and tuple(t.shape[1:]) != shape):
        expected = "(N, L, D)" if shape is None else f"(N, {shape[0]}, {shape[1]})"
        raise ValueError(f"{name} must be tokens {expected} with N >= 1, got {tuple(t.shape)}.")
    return _as_float(_plain(t))


def fit_attention_probe(
    train_tokens: torch.Tensor | np.ndarray,
    y_train: torch.Tensor | np.ndarray,
    val_tokens: torch.Tensor | np.ndarray,
    y_val: torch.Tensor | np.ndarray,
    epochs: int = 30,
    lr: float = 1e-2,
    weight_decay: float = 0.05,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device | None = None,
    num_heads: int = 4,
    num_queries: int = 1,
    position_embedding: bool = False,
    dropout: float = 0.0,
    warmup_epochs: float = 1.0,
    callback: Callable[[int, nn.Module, float], None] | None = None,
) -> AttentionPoolingProbe:
    """Train an :class:`AttentionPoolingProbe` on frozen tokens; keep the epoch with the best validation mean AUROC.

    Training is :func:`~monai_afire.apps.train_classifier` (AdamW, warm-up then cosine, BCE-with-logits), the head
    bias starting at the log-odds of the smoothed training prevalence.

    Args:
        train_tokens: (N, L, D) frozen tokens (see :func:`encode_tokens`).
        y_train: binary labels (N, C).
        val_tokens: (M, L, D).
        y_val: binary labels (M, C); at least one class needs both labels.
        epochs: training epochs.
        lr: peak learning rate.
        weight_decay: AdamW weight decay of the matrices (and the queries).
        batch_size: batch size.
        seed: seed of the initialisation and the training.
        device: where to train; None: the CPU.
        num_heads: attention maps per query.
        num_queries: learnt queries.
        position_embedding: add a learnt position embedding to the keys (see :class:`AttentionPoolingProbe`).
        dropout: dropout of the probe.
        warmup_epochs: warm-up length in epochs.
        callback: ``callback(epoch, probe, val_auroc)`` after each epoch.

    Returns:
        the probe with its best epoch's weights, in eval mode, on ``device``; ``probe.training_history`` as in
        :func:`~monai_afire.apps.train_classifier`.
    """
    xt = _tokens(train_tokens, "train_tokens")
    xv = _tokens(val_tokens, "val_tokens", shape=tuple(xt.shape[1:]))
    yt = torch.from_numpy(_binary(y_train, "y_train", xt.shape[0])).float()
    yv = torch.from_numpy(_binary(y_val, "y_val", xv.shape[0], num_classes=yt.shape[1])).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = AttentionPoolingProbe(
            xt.shape[2],
            yt.shape[1],
            num_heads=num_heads,
            num_queries=num_queries,
            num_positions=xt.shape[1] if position_embedding else None,
            dropout=dropout,
            class_prior=training_prevalence(yt),
        )
    return train_classifier(
        probe.to(device or "cpu"),
        (xt, yt),
        (xv, yv),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        seed=seed,
        callback=callback,
    )


def knn_scores(
    train_x: torch.Tensor | np.ndarray,
    train_y: torch.Tensor | np.ndarray,
    query_x: torch.Tensor | np.ndarray,
    k: int = 20,
    temperature: float | None = None,
    chunk_size: int = 4096,
) -> np.ndarray:
    """Cosine k-nearest-neighbour class scores.

    Each query's score for class c is the mean of the labels of its k most cosine-similar training samples,
    weighted by ``exp(similarity / temperature)`` when a temperature is given (DINO's weighted k-NN uses 0.07),
    uniform otherwise. With fewer than k training samples every training sample is a neighbour.

    Args:
        train_x: training features (N, D) (e.g. pooled tokens).
        train_y: binary training labels (N, C).
        query_x: query features (M, D).
        k: number of neighbours (choose it on validation, e.g. with :func:`select_knn_k`).
        temperature: softmax temperature of the neighbour weights; None for a plain mean.
        chunk_size: queries per similarity block (memory bound).

    Returns:
        float64 scores (M, C) in [0, 1].

    Raises:
        ValueError: bad shapes (the argument is named), non-binary labels, ``k < 1`` or ``temperature <= 0``.
    """
    xt = torch.from_numpy(_matrix(train_x, "train_x"))
    yt = torch.from_numpy(_binary(train_y, "train_y", xt.shape[0]))
    xq = torch.from_numpy(_matrix(query_x, "query_x", dim=xt.shape[1]))
    if int(k) < 1:
        raise ValueError(f"knn_scores: k must be >= 1, got {k}.")
    if temperature is not None and not temperature > 0:
        raise ValueError(f"knn_scores: temperature must be > 0 or None, got {temperature}.")
    k = min(int(k), xt.shape[0])
    xt, xq = F.normalize(xt, dim=1), F.normalize(xq, dim=1)
    out = []
    for start in range(0, xq.shape[0], int(chunk_size)):
        sims, idx = (xq[start : start + int(chunk_size)] @ xt.T).topk(k, dim=1)
        if temperature is None:
            weights = torch.ones_like(sims)
        else:
            weights = torch.exp((sims - sims[:, :1]) / temperature)  # shifted by the top similarity: no overflow
        out.append((weights[..., None] * yt[idx]).sum(1) / weights.sum(1, keepdim=True))
    return torch.cat(out).numpy()


def select_knn_k(
    train_x: torch.Tensor | np.ndarray,
    train_y: torch.Tensor | np.ndarray,
    val_x: torch.Tensor | np.ndarray,
    val_y: torch.Tensor | np.ndarray,
    ks: Sequence[int] = (5, 10, 20, 50, 100),
    temperature: float | None = None,
) -> tuple[int, dict[int, float]]:
    """Choose k for :func:`knn_scores` by the validation mean AUROC (ties: the smaller k; values of k above the
    number of training samples are skipped, except the smallest).

    Returns:
        ``(best_k, {k: validation mean AUROC})``.
    """
    n = _matrix(train_x, "train_x").shape[0]
    yv = _binary(val_y, "val_y", _matrix(val_x, "val_x").shape[0])
    if not _has_defined_class(yv):
        raise ValueError("select_knn_k: val_y has no class with both labels; k cannot be chosen.")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"select_knn_k: ks must be positive integers, got {ks}.")
    usable = [k for k in ks if k <= n] or ks[:1]
    aurocs = {k: mean_auroc(yv, knn_scores(train_x, train_y, val_x, k, temperature)) for k in usable}
    best = max(usable, key=lambda k: (aurocs[k], -k))
    return best, aurocs
