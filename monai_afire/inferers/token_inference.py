"""Token features and per-token anomaly maps of the pre-trained teacher, and a handler that saves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from ignite.engine import Engine, Events
from monai.inferers import Inferer

from monai_afire.engines.pretrainer import unwrap_model

__all__ = ["TokenAnomalyInferer", "TokenOutputWriter", "token_outputs"]


@torch.no_grad()
def token_outputs(model: nn.Module, images: torch.Tensor, temperature: float = 0.1) -> dict[str, torch.Tensor]:
    """Teacher token features and per-token anomaly scores of ``images``.

    The anomaly score of a token is the probability of the shared lesion prototype under
    ``softmax(logits / temperature)`` over the K position prototypes plus the lesion one (the category-consistency
    prototype, DESIGN.md section 1 step 5): no labels needed.

    Args:
        model: a trained :class:`monai_afire.networks.AFiRe` (its teacher is used).
        images: (B, C, *spatial) in [0, 1].
        temperature: the student temperature used in training.

    Returns:
        ``features`` (B, L, D) and ``anomaly`` (B, *grid_size) in [0, 1].
    """
    teacher = unwrap_model(model).teacher
    tokens = teacher.patch_tokens(images)
    logits = teacher.head(tokens, with_lesion=True)
    anomaly = torch.softmax(logits.float() / temperature, dim=-1)[..., -1]
    grid = tuple(teacher.encoder.grid_size)
    return {"features": tokens, "anomaly": anomaly.reshape(anomaly.shape[0], *grid)}


class TokenAnomalyInferer(Inferer):
    """MONAI inferer: ``network`` (an AFiRe model) -> dict of :func:`token_outputs`."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = float(temperature)

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Token features and anomaly maps of ``inputs``."""
        if hasattr(inputs, "as_tensor"):
            inputs = inputs.as_tensor()
        return token_outputs(network, inputs, self.temperature)


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
