"""Shared test settings and fixtures, in one place: tiny AFiRe models and batches, tiny bundle overrides, synthetic
films, the bundles' config folders, a test case with a temporary folder."""

from __future__ import annotations

import os
import tempfile
import unittest
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from monai_afire.engines import AFiRePretrainer
from monai_afire.handlers import FreezePrototypes, LearningRateSchedule, TeacherEMA, WeightDecaySchedule
from monai_afire.losses import AFiReLoss
from monai_afire.networks import AFiRe, AFiReEncoder
from monai_afire.optimizers import weight_decay_param_groups

__all__ = [
    "AFIRE",
    "BUNDLE_OVERRIDES",
    "CLASSIFICATION_CONFIGS",
    "ENCODER",
    "IMAGE",
    "PRETRAIN_CONFIGS",
    "TmpDirTestCase",
    "error_messages",
    "run_bundle",
    "simulated_set",
    "tiny_batches",
    "tiny_loss",
    "tiny_model",
    "tiny_trainer",
    "write_films",
]

IMAGE = 32
PROTOTYPES = 8

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
PRETRAIN_CONFIGS = BUNDLES / "afire_pretrain" / "configs"
CLASSIFICATION_CONFIGS = BUNDLES / "afire_cxr_classification" / "configs"

#: a tiny encoder and AFiRe head/decoder (16 tokens of 8 x 8 pixels on 32 x 32 films)
ENCODER = {"arch": "vit_tiny", "img_size": 32, "patch_size": 8, "hidden_size": 32, "num_layers": 2, "num_heads": 2}
AFIRE = {"num_prototypes": 8, "head_hidden_dim": 32, "head_bottleneck_dim": 16, "decoder_dim": 32, "decoder_depth": 1,
         "decoder_heads": 2}  # fmt: skip
#: the same encoder as bundle config overrides, on the CPU
BUNDLE_OVERRIDES = {
    "device": "$torch.device('cpu')",
    "image_size": 32,
    "patch_size": 8,
    "arch": "vit_tiny",
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "mlp_dim": 64,
    "batch_size": 4,
    "num_workers": 0,
}


class TmpDirTestCase(unittest.TestCase):
    """A ``unittest.TestCase`` with a fresh temporary folder ``self.tmp`` (a Path) for each test."""

    def setUp(self) -> None:
        super().setUp()
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.tmp = Path(folder.name)


def write_films(folder: Path, n: int = 8, size: int = 32) -> None:
    """Radiograph-like PNGs ``film_<i>.png``: a bright body ellipse with noise on a dark background."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size] / size
    for i in range(n):
        body = ((xx - 0.5) / 0.4) ** 2 + ((yy - 0.5) / 0.45) ** 2 < 1
        img = body * (120 + 60 * rng.random((size, size))) + 10 * rng.random((size, size))
        Image.fromarray(img.astype(np.uint8)).save(folder / f"film_{i}.png")


def simulated_set(root: Path, num_images: int, **kwargs) -> Path:
    """A simulated chest X-ray set in ``root/simcxr`` (``generate_simcxr``), its CT cache in ``root/ct_cache``."""
    from monai_afire.data.simcxr import generate_simcxr

    with mock.patch.dict(os.environ, {"MONAI_AFIRE_CACHE": str(root / "ct_cache")}):
        return Path(generate_simcxr(root / "simcxr", num_images, **kwargs))


def run_bundle(configs: Path | Sequence[Path], workflow_type: str, **overrides):
    """Initialise, check, run and finalise a MONAI ``ConfigWorkflow`` of bundle config files; return it."""
    from monai.bundle import ConfigWorkflow

    files = [Path(configs)] if isinstance(configs, (str, Path)) else [Path(c) for c in configs]
    workflow = ConfigWorkflow(
        config_file=[str(f) for f in files] if len(files) > 1 else str(files[0]),
        meta_file=str(files[0].parent / "metadata.json"),
        logging_file=str(files[0].parent / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )
    workflow.initialize()
    missing = workflow.check_properties()
    if missing:
        raise AssertionError(f"the workflow lacks the required properties {missing}")
    workflow.run()
    workflow.finalize()
    return workflow


def error_messages(err: BaseException | None) -> str:
    """The messages of an exception and of its chained causes (MONAI's config parser wraps errors), one a line."""
    messages = []
    while err is not None:
        messages.append(str(err))
        err = err.__cause__ or err.__context__
    return "\n".join(messages)


def tiny_model(seed: int = 0, hidden: int = 32, lesion_prototype: bool = False) -> AFiRe:
    """A 2-layer ViT on 32x32 images with 8x8 patches (16 tokens) and a 1-block decoder."""
    torch.manual_seed(seed)
    encoder = AFiReEncoder(
        "vit_tiny", img_size=IMAGE, patch_size=8, hidden_size=hidden, num_layers=2, num_heads=2, mlp_dim=2 * hidden
    )
    return AFiRe(
        encoder,
        num_prototypes=PROTOTYPES,
        head_hidden_dim=32,
        head_bottleneck_dim=16,
        decoder_dim=32,
        decoder_depth=1,
        decoder_heads=2,
        lesion_prototype=lesion_prototype,
    )


def tiny_batches(n: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` samples with the SLM keys: a random clean image and one square lesion (4 abnormal tokens)."""
    g = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n):
        clean = torch.rand(1, IMAGE, IMAGE, generator=g) * 0.8
        mask = torch.zeros(1, IMAGE, IMAGE)
        mask[:, 8:24, 8:24] = 0.3
        data.append({"image": (clean + mask).clamp(0, 1), "clean": clean, "lesion_mask": mask})
    return data


def tiny_loss(model: AFiRe) -> AFiReLoss:
    """AFiReLoss sized for ``model``, with the category term exactly when the model has a lesion prototype."""
    return AFiReLoss(model.num_positions, PROTOTYPES, category_weight=1.0 if model.has_lesion_prototype else 0.0)


def tiny_trainer(
    model: AFiRe,
    max_epochs: int = 2,
    batch_size: int = 4,
    handlers: list | None = None,
    n: int = 8,
    loader: DataLoader | None = None,
    **kwargs,
) -> AFiRePretrainer:
    """A trainer with the paper's handlers (schedules, EMA, frozen prototypes) plus ``handlers``."""
    optimizer = torch.optim.AdamW(weight_decay_param_groups(model), lr=1e-3)
    if loader is None:
        loader = DataLoader(tiny_batches(n), batch_size=batch_size, shuffle=False)
    core = [
        LearningRateSchedule(optimizer, 1e-3, warmup_epochs=1),
        WeightDecaySchedule(optimizer),
        FreezePrototypes(model),
        TeacherEMA(model),
    ]
    loss = tiny_loss(model.module if hasattr(model, "module") else model)
    return AFiRePretrainer(
        "cpu", max_epochs, loader, model, optimizer, loss, train_handlers=core + (handlers or []), **kwargs
    )
