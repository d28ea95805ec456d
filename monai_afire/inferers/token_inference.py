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

from .anomaly_maps import _branch, _lesion_probability, anomaly_maps

__all__ = ["ANOMALY_KINDS", "TokenAnomalyInferer", "TokenOutputWriter", "token_outputs"]

#: what ``token_outputs(...)["anomaly"]`` holds, by whether the model has a lesion prototype
ANOMALY_KINDS = {True: "lesion_probability", False: "restoration_residual"}


@torch.no_grad()
def token_outputs(
    model: nn.Module, images: torch.Tensor, temperature: float = 0.1, network: str = "teacher"
) -> dict[str, Any]:
    """Token features and per-token anomaly scores of ``images``, no labels needed.

    The anomaly score depends on the recipe the model was trained with, and ``anomaly_kind`` says which it is:

    - ``"lesion_probability"`` (a model with the lesion prototype, trained with the category term: the
      afire_pretrain bundle's ``afire_plus.json``): the token's lesion probability (see
      :func:`monai_afire.inferers.lesion_probability`), in [0, 1].
    - ``"restoration_residual"`` (the authors' recipe: no lesion prototype, so no lesion probability to show): the
      mean absolute restoration residual ``|x - x^|`` of each patch, the branch's tokens decoded with no token masked
      (``token_residual`` of :func:`monai_afire.inferers.anomaly_maps`); >= 0, on the intensity scale of the images.

    Args:
        model: a trained :class:`monai_afire.networks.AFiRe` (DDP/compile wrappers are unwrapped).
        images: (B, C, *spatial) in [0, 1].
        temperature: the student temperature used in training.
        network: ``"teacher"`` (the encoder kept after pre-training) or ``"student"``.

    Returns:
        ``features`` (B, L, D), ``anomaly`` (B, *grid_size) and ``anomaly_kind`` (a string).
    """
    branch = _branch(model, network, "token_outputs")
    tokens = branch.patch_tokens(images)
    has_lesion = branch.head.has_lesion_prototype
    if has_lesion:
        anomaly = _lesion_probability(branch, tokens, temperature, "token_outputs")
    else:
        anomaly = anomaly_maps(model, images, temperature, network=network)["token_residual"]
    grid = tuple(branch.encoder.grid_size)
    return {
        "features": tokens,
        "anomaly": anomaly.reshape(anomaly.shape[0], *grid),
        "anomaly_kind": ANOMALY_KINDS[has_lesion],
    }


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

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Token features and anomaly maps of ``inputs``."""
        if hasattr(inputs, "as_tensor"):
            inputs = inputs.as_tensor()
        return token_outputs(network, inputs, self.temperature, self.network)


class TokenOutputWriter:
    """Save each image's token features and anomaly map as ``{output_dir}/{stem}_tokens.npz``.

    The arrays are ``features`` (L, D) float16, ``anomaly`` (grid) float32 and ``anomaly_kind`` (a string:
    ``"lesion_probability"`` or ``"restoration_residual"``, see :func:`token_outputs`); the stem is the source file
    name without its extension (from the MetaTensor ``filename_or_obj``; ``1.2.840.113619.2.55.3.dcm``, a DICOM file
    named by its UID, keeps ``1.2.840.113619.2.55.3``), or the running index when unknown. A stem met again (files of
    the same name in different folders) gets ``_2``, ``_3``, ...; ``self.sources`` maps each written file to its
    source.

    Args:
        output_dir: folder of the outputs (created).
        image_key: batch key whose metadata names the source file.
    """

    def __init__(self, output_dir: str | Path, image_key: str = "image") -> None:
        self.output_dir, self.image_key, self.written = Path(output_dir), image_key, []
        self.sources: dict[Path, str] = {}
        self._counts: dict[str, int] = {}

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _names(self, engine: Engine, n: int) -> list[tuple[str, str]]:
        """(output stem, source) for each image of the batch."""
        image = engine.state.batch.get(self.image_key) if isinstance(engine.state.batch, dict) else None
        names = getattr(image, "meta", {}).get("filename_or_obj") if image is not None else None
        if names is None or isinstance(names, str) or len(names) != n:
            start = len(self.written)
            return [(f"image_{start + i:05d}", "") for i in range(n)]
        out = []
        for name in map(str, names):
            file = Path(name).name
            stem = file[: -len(".nii.gz")] if file.lower().endswith(".nii.gz") else Path(file).stem
            count = self._counts[stem] = self._counts.get(stem, 0) + 1
            out.append((stem if count == 1 else f"{stem}_{count}", name))
        return out

    def __call__(self, engine: Engine) -> None:
        pred = engine.state.output["pred"]
        features, anomaly = pred["features"], pred["anomaly"]
        kind = str(pred.get("anomaly_kind", ANOMALY_KINDS[True]))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for i, (name, source) in enumerate(self._names(engine, features.shape[0])):
            path = self.output_dir / f"{name}_tokens.npz"
            self.sources[path] = source
            np.savez_compressed(
                path,
                features=features[i].float().cpu().numpy().astype(np.float16),
                anomaly=anomaly[i].float().cpu().numpy(),
                anomaly_kind=np.array(kind),
            )
            self.written.append(path)
