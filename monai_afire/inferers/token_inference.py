"""Token features and per-token anomaly maps of a pre-trained AFiRe model (teacher by default), and a handler that
saves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from ignite.engine import Engine, Events
from monai.inferers import Inferer

from .anomaly_maps import _branch, _lesion_probability

__all__ = ["TokenAnomalyInferer", "TokenOutputWriter", "token_outputs"]


@torch.no_grad()
def token_outputs(
    model: nn.Module, images: torch.Tensor, temperature: float = 0.1, network: str = "teacher"
) -> dict[str, torch.Tensor]:
    """Token features and per-token anomaly scores of ``images``.

    The anomaly score of a token is its lesion probability (see :func:`monai_afire.inferers.lesion_probability`):
    no labels needed.

    Args:
        model: a trained :class:`monai_afire.networks.AFiRe` (DDP/compile wrappers are unwrapped).
        images: (B, C, *spatial) in [0, 1].
        temperature: the student temperature used in training.
        network: ``"teacher"`` (the encoder kept after pre-training) or ``"student"``.

    Returns:
        ``features`` (B, L, D) and ``anomaly`` (B, *grid_size) in [0, 1].
    """
    branch = _branch(model, network, "token_outputs")
    tokens = branch.patch_tokens(images)
    anomaly = _lesion_probability(branch, tokens, temperature, "token_outputs")
    grid = tuple(branch.encoder.grid_size)
    return {"features": tokens, "anomaly": anomaly.reshape(anomaly.shape[0], *grid)}


class TokenAnomalyInferer(Inferer):
    """MONAI inferer: ``network`` (an AFiRe model) -> dict of :func:`token_outputs`.

    Args:
        temperature: the student temperature used in training.
        network: the branch of the model to read, ``"teacher"`` or ``"student"``.
    """

    def __init__(self, temperature: float = 0.1, network: str = "teacher") -> None:
        super().__init__()
        self.temperature = float(temperature)
        self.network = network

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Token features and anomaly maps of ``inputs``."""
        if hasattr(inputs, "as_tensor"):
            inputs = inputs.as_tensor()
        return token_outputs(network, inputs, self.temperature, self.network)


class TokenOutputWriter:
    """Save each image's token features and anomaly map as ``{output_dir}/{stem}_tokens.npz``.

    The arrays are ``features`` (L, D) float16 and ``anomaly`` (grid) float32; the stem is the source file name
    (from the MetaTensor ``filename_or_obj``), or the running index when unknown.

    Args:
        output_dir: folder of the outputs (created).
        image_key: batch key whose metadata names the source file.
    """

    def __init__(self, output_dir: str | Path, image_key: str = "image") -> None:
        self.output_dir, self.image_key, self.written = Path(output_dir), image_key, []

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _names(self, engine: Engine, n: int) -> list[str]:
        image = engine.state.batch.get(self.image_key) if isinstance(engine.state.batch, dict) else None
        names = getattr(image, "meta", {}).get("filename_or_obj") if image is not None else None
        if names is None or isinstance(names, str) or len(names) != n:
            start = len(self.written)
            return [f"image_{start + i:05d}" for i in range(n)]
        return [Path(str(name)).name.split(".")[0] for name in names]

    def __call__(self, engine: Engine) -> None:
        pred = engine.state.output["pred"]
        features, anomaly = pred["features"], pred["anomaly"]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(self._names(engine, features.shape[0])):
            path = self.output_dir / f"{name}_tokens.npz"
            np.savez_compressed(
                path,
                features=features[i].float().cpu().numpy().astype(np.float16),
                anomaly=anomaly[i].float().cpu().numpy(),
            )
            self.written.append(path)
