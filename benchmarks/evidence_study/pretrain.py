"""Pre-training of one arm / seed; every ViT arm ends with ``WORK/encoder.pt`` (an encoder state dict)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .arms import Arm
from .presets import Preset
from .ssl import GlobalDINO, MaskedAutoencoder, dino_views, seeded_encoder, train_ssl

__all__ = ["pretrain_arm", "build_mae", "build_dino", "load_mae"]


def build_mae(preset: Preset, seed: int) -> MaskedAutoencoder:
    """The MAE of the preset (encoder initialised with ``seed``)."""
    encoder = seeded_encoder(seed, **preset.encoder_kwargs())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        return MaskedAutoencoder(encoder, preset.decoder_dim, preset.decoder_depth, preset.decoder_heads)


def build_dino(preset: Preset, seed: int) -> GlobalDINO:
    """The global DINO of the preset (encoder initialised with ``seed``); prototypes: twice AFiRe's per position."""
    encoder = seeded_encoder(seed, **preset.encoder_kwargs())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        return GlobalDINO(encoder, 2 * preset.num_prototypes, preset.head_hidden_dim, preset.head_bottleneck_dim)


def load_mae(workdir: str | os.PathLike, preset: Preset) -> MaskedAutoencoder:
    """A trained MAE from ``WORK/mae.pt``."""
    model = build_mae(preset, 0)
    model.load_state_dict(torch.load(Path(workdir) / "mae.pt", weights_only=True))
    return model.eval()


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def pretrain_arm(
    arm: Arm,
    seed: int,
    preset: Preset,
    pretrain_dir: str | os.PathLike,
    workdir: str | os.PathLike,
    images: Callable[[], torch.Tensor],
) -> Path:
    """Pre-train (or, for ``random``, just initialise) one arm; returns ``WORK/encoder.pt``. A finished run (its
    ``pretrain.json`` written last) is not run again; an AFiRe run resumes from its newest bundle checkpoint.

    Args:
        arm: a ViT arm (``random``, ``mae``, ``dino`` or ``afire``).
        seed: pre-training seed.
        preset: settings (every arm gets ``preset.image_steps`` image-steps).
        pretrain_dir: the simulated pre-training films (read by the AFiRe bundle).
        workdir: output folder of this run.
        images: returns the prepared pre-training films (N, 1, S, S) (MAE and DINO).
    """
    work = Path(workdir)
    target = work / "encoder.pt"
    if target.is_file() and (work / "pretrain.json").is_file():
        return target
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    steps = preset.image_steps // preset.batch_size
    warmup = int(round(preset.warmup_passes * preset.pretrain_films / preset.batch_size))
    common = {
        "image_steps": preset.image_steps,
        "batch_size": preset.batch_size,
        "base_lr": preset.base_lr,
        "warmup_steps": warmup,
        "seed": seed,
        "device": preset.device,
        "amp": preset.amp,
    }
    info: dict = {"arm": arm.name, "seed": seed, "image_steps": preset.image_steps, "steps": steps}
    if arm.kind == "random":
        encoder = seeded_encoder(seed, **preset.encoder_kwargs())
        _save(target, encoder.state_dict())
    elif arm.kind == "mae":
        model = build_mae(preset, seed)
        info["history"] = train_ssl(model, lambda b, g: model.loss(b), images(), **common)
        _save(work / "mae.pt", model.cpu().state_dict())
        _save(target, model.encoder.state_dict())
    elif arm.kind == "dino":
        model = build_dino(preset, seed)
        info["history"] = train_ssl(
            model,
            lambda b, g: model.loss(dino_views(b, g), dino_views(b, g)),
            images(),
            teacher_momentum=preset.teacher_momentum,
            **common,
        )
        _save(target, model.cpu().teacher.encoder.state_dict())
    elif arm.kind == "afire":
        from .afire_bundle import run_afire_bundle

        encoder_file = run_afire_bundle(preset, arm, seed, pretrain_dir, work / "bundle")
        info["bundle"] = json.loads((work / "bundle" / "done.json").read_text())
        _save(target, torch.load(encoder_file, weights_only=True))
    else:
        raise ValueError(f"pretrain_arm: arm {arm.name} ({arm.kind}) has no encoder to pre-train.")
    info["seconds"] = time.time() - start
    (work / "pretrain.json").write_text(json.dumps(info, indent=2) + "\n")
    return target
