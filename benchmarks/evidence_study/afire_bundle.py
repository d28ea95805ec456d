"""AFiRe arms run through the real ``afire_pretrain`` bundle: ``train.json`` [+ ``afire_plus.json``] + a study overlay
with the preset's sizes, executed by ``monai.bundle.run`` (what ``python -m monai.bundle run`` calls), in process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from .arms import Arm
from .presets import Preset

__all__ = [
    "BUNDLE_DIR",
    "CONFIG_DIR",
    "study_overlay",
    "config_files",
    "bundle_command",
    "run_afire_bundle",
    "load_afire_network",
    "changes_from_train_json",
]

BUNDLE_DIR = Path(__file__).resolve().parents[2] / "bundles" / "afire_pretrain"
CONFIG_DIR = BUNDLE_DIR / "configs"

#: overlay keys that rescale the authors' recipe to the preset, with the reason printed in evidence.md.
SCALED = {
    "image_size": "preset image size (authors: 224)",
    "arch": "ViT built from the preset's sizes (authors: vit_base)",
    "hidden_size": "preset encoder width",
    "num_layers": "preset encoder depth",
    "num_heads": "preset heads",
    "mlp_dim": "preset MLP width",
    "num_prototypes": "fewer positions and films (authors: 256)",
    "head_hidden_dim": "head scaled to the encoder (authors: 1024)",
    "head_bottleneck_dim": "head scaled to the encoder (authors: 256)",
    "decoder_dim": "decoder scaled to the encoder (authors: 512)",
    "decoder_depth": "decoder scaled to the encoder (authors: 8)",
    "decoder_heads": "decoder scaled to the encoder (authors: 16)",
    "batch_size": "one process, small model (authors: 64 per GPU)",
    "max_epochs": "same image-steps as every arm: epochs = passes (authors: 400)",
    "lesion_copies_per_epoch": "one lesioned copy per film per epoch, so an epoch is one pass (authors: 5)",
    "base_lr": "short run of a tiny model: higher base rate (authors: 5e-4 x batch/256)",
    "warmup_epochs": "warm-up in passes, scaled to the short run (authors: 10 of 400 epochs)",
    "teacher_momentum": "a teacher that can follow a run of a few thousand steps (authors: 0.996 over 400 epochs)",
    "num_workers": "data cached in memory, loading in process",
    "train#films#_target_": "CacheDataset: the prepared films are cached, the lesions drawn fresh",
}


def config_files(arm: Arm) -> list[str]:
    """``train.json`` and the arm's overlays, as paths.

    Raises:
        FileNotFoundError: an overlay (e.g. ``afire_plus.json``) is not in the bundle.
    """
    files = [CONFIG_DIR / "train.json", *[CONFIG_DIR / c for c in arm.configs]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"Arm {arm.name}: bundle config(s) {missing} not found.")
    return [str(f) for f in files]


def study_overlay(
    preset: Preset, arm: Arm, seed: int, dataset_dir: str | os.PathLike, workdir: str | os.PathLike
) -> dict:
    """The study overlay of one AFiRe run: the preset's sizes and budget, the data, the run's folders, the arm's
    overrides (flat ``a#b`` keys change one entry of a dict such as ``lesion_kwargs``)."""
    workdir = Path(workdir)
    overlay: dict[str, Any] = {
        "bundle_root": str(BUNDLE_DIR),
        "dataset_dir": str(dataset_dir),
        "dataset_reader": "simcxr",
        "dataset_reader_kwargs": {},
        "ckpt_dir": str(workdir / "models"),
        "output_dir": str(workdir / "train"),
        "seed": 1000 * int(seed),  # the bundle reseeds every epoch with seed + epoch: keep the seeds' streams apart
        "image_size": preset.image_size,
        "patch_size": preset.patch_size,
        "arch": "vit_tiny",
        "hidden_size": preset.hidden_size,
        "num_layers": preset.num_layers,
        "num_heads": preset.num_heads,
        "mlp_dim": preset.mlp_dim,
        "num_prototypes": preset.num_prototypes,
        "head_hidden_dim": preset.head_hidden_dim,
        "head_bottleneck_dim": preset.head_bottleneck_dim,
        "decoder_dim": preset.decoder_dim,
        "decoder_depth": preset.decoder_depth,
        "decoder_heads": preset.decoder_heads,
        "batch_size": preset.batch_size,
        "num_workers": 0,
        "max_epochs": preset.passes,
        "lesion_copies_per_epoch": 1,
        "base_lr": preset.base_lr,
        "warmup_epochs": preset.warmup_passes,
        "teacher_momentum": preset.teacher_momentum,
        "train#films#_target_": "CacheDataset",
        "train#films#progress": False,
    }
    if preset.amp:
        overlay["amp"] = "bf16"
    overlay.update(arm.overrides)
    return overlay


def bundle_command(files: list[str], overlay_path: str | os.PathLike) -> str:
    """The equivalent command line (paths relative to the repository root when inside it)."""
    root = BUNDLE_DIR.parents[1]

    def rel(p: str | os.PathLike) -> str:
        path = Path(p).resolve()
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    listed = ",".join(f"'{rel(f)}'" for f in [*files, overlay_path])
    return f'python -m monai.bundle run --config_file "[{listed}]"'


def changes_from_train_json(preset: Preset) -> list[tuple[str, Any, Any, str]]:
    """(key, train.json value, study value, why) for every overlay key that differs from ``train.json``."""
    from .arms import ARMS

    train = json.loads((CONFIG_DIR / "train.json").read_text())
    overlay = study_overlay(preset, ARMS["afire"], 0, "DATA", "WORK")
    rows = []
    for key, why in SCALED.items():
        base = train
        for part in key.split("#"):
            base = base.get(part) if isinstance(base, dict) else None
        if key in overlay and base != overlay[key]:
            rows.append((key, base, overlay[key], why))
    return rows


def run_afire_bundle(
    preset: Preset, arm: Arm, seed: int, dataset_dir: str | os.PathLike, workdir: str | os.PathLike
) -> Path:
    """Pre-train one AFiRe arm with the bundle; returns the teacher encoder's state dict file.

    Resumes from the newest bundle checkpoint in ``workdir/models`` (the bundle's own resume); skips the run when
    ``workdir/done.json`` exists.
    """
    from monai.bundle import run

    workdir = Path(workdir)
    encoder_file = workdir / "models" / "teacher_encoder.pt"
    if (workdir / "done.json").is_file() and encoder_file.is_file():
        return encoder_file
    workdir.mkdir(parents=True, exist_ok=True)
    files = config_files(arm)
    overlay_path = workdir / "study_overlay.json"
    overlay_path.write_text(json.dumps(study_overlay(preset, arm, seed, dataset_dir, workdir), indent=2) + "\n")
    command = bundle_command(files, overlay_path)
    print(f"$ {command}", flush=True)
    start = time.time()
    run(config_file=[*files, str(overlay_path)], logging_file=str(CONFIG_DIR / "logging.conf"))
    if not encoder_file.is_file():
        raise RuntimeError(f"Arm {arm.name} seed {seed}: the bundle finished without writing {encoder_file}.")
    info = {"command": command, "config_files": [*files, str(overlay_path)], "seconds": time.time() - start}
    (workdir / "done.json").write_text(json.dumps(info, indent=2) + "\n")
    return encoder_file


def load_afire_network(workdir: str | os.PathLike) -> torch.nn.Module:
    """The whole AFiRe model (student, teacher, decoder) of a finished run, from its newest checkpoint."""
    from monai.bundle import ConfigParser

    from monai_afire.handlers import latest_checkpoint
    from monai_afire.networks import load_afire_checkpoint

    workdir = Path(workdir)
    info = json.loads((workdir / "done.json").read_text())
    parser = ConfigParser()
    parser.read_config(info["config_files"])
    parser["device"] = "cpu"
    network = parser.get_parsed_content("network_def")
    return load_afire_checkpoint(network, latest_checkpoint(workdir / "models")).eval()
