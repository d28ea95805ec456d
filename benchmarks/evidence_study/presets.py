"""Study presets: image and encoder size, data, pre-training budget, seeds and downstream settings.

``smoke`` is for the tests (seconds), ``cpu`` for the project's shared 2-core build machine (about 90 minutes), ``gpu``
for a lent accelerator. Every number the study uses lives here, so ``evidence.md`` can print the preset whole.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Preset", "PRESETS", "get_preset", "preset_from_dict"]


@dataclass(frozen=True)
class Preset:
    """All settings of one study run.

    Attributes:
        name: preset name.
        image_size: side of the square films (the simulated films are generated at this size).
        patch_size: ViT patch side.
        hidden_size: token width of the ViT.
        num_layers: transformer blocks.
        num_heads: attention heads.
        mlp_dim: MLP width of the blocks.
        num_prototypes: AFiRe prototypes per position (the authors' 256, scaled to the smaller grid).
        head_hidden_dim: AFiRe / DINO head hidden width (authors: 1024).
        head_bottleneck_dim: AFiRe / DINO head bottleneck (authors: 256).
        decoder_dim: AFiRe / MAE decoder width (authors: 512).
        decoder_depth: AFiRe / MAE decoder blocks (authors: 8).
        decoder_heads: decoder heads (authors: 16).
        pretrain_films: unlabelled pre-training films (normal, as the authors' MIMIC-CXR normals).
        pretrain_data_seed: generator seed of the pre-training films.
        downstream_films: labelled downstream films (another seed).
        downstream_data_seed: generator seed of the downstream films.
        downstream_prevalence: per-finding probability of the downstream films (all seven simulated findings).
        test_fraction: fraction of the downstream patients in the test split.
        val_fraction: fraction of the remaining patients in the validation split.
        passes: pre-training passes over the films; every pre-trained arm gets ``passes * pretrain_films``
            image-steps.
        batch_size: pre-training batch size of every arm.
        base_lr: base learning rate (scaled by batch / 256, as the bundle does).
        warmup_passes: linear warm-up, in passes.
        teacher_momentum: starting EMA momentum of the AFiRe and DINO teachers (cosine to 1).
        arms: the arms run.
        seeds: pre-training seeds per arm (arms not listed: ``(0,)``).
        label_fractions: downstream label fractions (nested, patient-wise).
        probe_cs: linear-probe C grid (chosen on validation).
        knn_ks: k grid of the k-NN (chosen on validation).
        attention_epochs: epochs of the attention-pooling probe (best validation epoch kept).
        finetune_arms: arms fine-tuned end to end.
        finetune_seeds: how many of an arm's pre-training seeds are fine-tuned.
        finetune_epochs: fine-tuning epochs per label fraction (best validation epoch kept).
        finetune_lr: fine-tuning peak learning rate.
        finetune_batch_size: fine-tuning batch size.
        finetune_weight_decay: fine-tuning weight decay.
        layer_decay: layer-wise learning-rate decay of the ViT blocks.
        densenet_epochs: DenseNet121 epochs per label fraction.
        densenet_lr: DenseNet121 learning rate.
        densenet_image_size: DenseNet121 sees the films area-downsampled to this side (None: the films' size); on a
            CPU a DenseNet121 step costs about 35 ViT steps at 128 px.
        pixel_side: raw pixels are area-downsampled to this side for the pixel arm.
        localisation_films: test films with findings scored for localisation (at most).
        cohesion_films: normal test films scored for anatomy cohesion (at most).
        bootstrap_samples: bootstrap replicates.
        threads: torch and BLAS threads (None: their defaults). On a shared, loaded machine one thread per process is
            many times faster than two (OpenMP threads spin while they wait for a core).
        device: ``"cpu"`` or ``"cuda"``.
        amp: bfloat16 autocast in pre-training (the bundle's ``amp``, and the MAE / DINO loop).
        ablation_base: arm whose recipe the ablations change.
    """

    name: str
    image_size: int = 128
    patch_size: int = 16
    hidden_size: int = 96
    num_layers: int = 4
    num_heads: int = 3
    mlp_dim: int = 192
    num_prototypes: int = 32
    head_hidden_dim: int = 256
    head_bottleneck_dim: int = 64
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    pretrain_films: int = 3000
    pretrain_data_seed: int = 1000
    downstream_films: int = 2000
    downstream_data_seed: int = 2000
    downstream_prevalence: float = 0.15
    test_fraction: float = 0.25
    val_fraction: float = 0.2
    passes: int = 6
    batch_size: int = 32
    base_lr: float = 0.002
    warmup_passes: float = 1.0
    teacher_momentum: float = 0.99
    arms: tuple[str, ...] = ()
    seeds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    label_fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    probe_cs: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    knn_ks: tuple[int, ...] = (5, 20, 50)
    attention_epochs: int = 30
    finetune_arms: tuple[str, ...] = ()
    finetune_seeds: int = 1
    finetune_epochs: Mapping[float, int] = field(default_factory=lambda: {0.01: 40, 0.1: 20, 1.0: 6})
    finetune_lr: float = 1e-3
    finetune_batch_size: int = 32
    finetune_weight_decay: float = 0.05
    layer_decay: float = 0.75
    densenet_epochs: Mapping[float, int] = field(default_factory=lambda: {0.01: 20, 0.1: 8, 1.0: 3})
    densenet_lr: float = 1e-3
    densenet_image_size: int | None = None
    pixel_side: int = 32
    localisation_films: int = 300
    cohesion_films: int = 150
    bootstrap_samples: int = 1000
    threads: int | None = None
    device: str = "cpu"
    amp: bool = False
    ablation_base: str = "afire_plus"

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"Preset {self.name}: image_size {self.image_size} is not a multiple of {self.patch_size}."
            )
        if self.hidden_size % self.num_heads or self.hidden_size % 4:
            raise ValueError(
                f"Preset {self.name}: hidden_size {self.hidden_size} must divide by num_heads {self.num_heads} and 4."
            )
        if not all(0 < f <= 1 for f in self.label_fractions):
            raise ValueError(f"Preset {self.name}: label fractions must lie in (0, 1], got {self.label_fractions}.")
        missing = [f for f in self.label_fractions if f not in self.finetune_epochs or f not in self.densenet_epochs]
        if missing:
            raise ValueError(f"Preset {self.name}: no fine-tuning epochs for the label fractions {missing}.")
        unknown = sorted(set(self.finetune_arms) - set(self.arms))
        if unknown:
            raise ValueError(f"Preset {self.name}: finetune_arms {unknown} are not among the arms {self.arms}.")
        if self.passes < 1 or self.batch_size < 1:
            raise ValueError(f"Preset {self.name}: passes and batch_size must be >= 1.")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"Preset {self.name}: device must be 'cpu' or 'cuda', got {self.device!r}.")

    @property
    def image_steps(self) -> int:
        """Pre-training image-steps of every pre-trained arm."""
        return self.passes * self.pretrain_films

    @property
    def num_positions(self) -> int:
        """Tokens per film."""
        return (self.image_size // self.patch_size) ** 2

    def arm_seeds(self, arm: str) -> tuple[int, ...]:
        """Pre-training seeds of ``arm``."""
        return tuple(self.seeds.get(arm, (0,)))

    def encoder_kwargs(self) -> dict[str, Any]:
        """Arguments of :class:`monai_afire.networks.AFiReEncoder` shared by every ViT arm."""
        return {
            "arch": "vit_tiny",
            "img_size": self.image_size,
            "patch_size": self.patch_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
        }

    #: fields that do not change what is cached for an arm / seed (data, pre-training, selection, test scores)
    RUN_ONLY = ("arms", "seeds", "finetune_arms", "finetune_seeds", "bootstrap_samples", "threads")

    def cache_key(self) -> dict[str, Any]:
        """The settings a cached study depends on (every field but :attr:`RUN_ONLY`)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RUN_ONLY}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (mapping keys as strings)."""
        out = dataclasses.asdict(self)
        out["seeds"] = {k: list(v) for k, v in self.seeds.items()}
        out["finetune_epochs"] = {str(k): v for k, v in self.finetune_epochs.items()}
        out["densenet_epochs"] = {str(k): v for k, v in self.densenet_epochs.items()}
        return out

    def to_json(self) -> str:
        """The preset as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def preset_from_dict(values: Mapping[str, Any]) -> Preset:
    """Inverse of :meth:`Preset.to_dict` (unknown keys are an error naming them)."""
    names = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"preset_from_dict: unknown preset keys {unknown}; expected some of {sorted(names)}.")
    kwargs = dict(values)
    for key in ("arms", "label_fractions", "probe_cs", "knn_ks", "finetune_arms"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    if "seeds" in kwargs:
        kwargs["seeds"] = {k: tuple(v) for k, v in kwargs["seeds"].items()}
    for key in ("finetune_epochs", "densenet_epochs"):
        if key in kwargs:
            kwargs[key] = {float(k): int(v) for k, v in kwargs[key].items()}
    return Preset(**kwargs)


ALL_ARMS = (
    "random",
    "pixels",
    "densenet121",
    "mae",
    "dino",
    "afire",
    "afire_plus",
    "no_restoration",
    "no_structure",
    "no_lesions",
    "clip_lesion",
)
MAIN_FINETUNE = ("random", "densenet121", "mae", "dino", "afire", "afire_plus")

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        image_size=32,
        patch_size=8,
        hidden_size=24,
        num_layers=2,
        num_heads=2,
        mlp_dim=48,
        num_prototypes=8,
        head_hidden_dim=32,
        head_bottleneck_dim=16,
        decoder_dim=16,
        decoder_depth=1,
        decoder_heads=2,
        pretrain_films=24,
        downstream_films=80,
        downstream_prevalence=0.3,
        test_fraction=0.3,
        val_fraction=0.3,
        passes=1,
        batch_size=8,
        arms=ALL_ARMS,
        seeds={"afire": (0, 1), "mae": (0, 1)},
        label_fractions=(0.1, 1.0),
        probe_cs=(0.1, 1.0),
        knn_ks=(3, 5),
        attention_epochs=2,
        finetune_arms=MAIN_FINETUNE,
        finetune_epochs={0.1: 1, 1.0: 1},
        densenet_epochs={0.1: 1, 1.0: 1},
        pixel_side=8,
        localisation_films=10,
        cohesion_films=6,
        bootstrap_samples=50,
        threads=1,
    ),
    "cpu": Preset(
        name="cpu",
        pretrain_films=2000,
        passes=8,
        downstream_films=4000,
        downstream_prevalence=0.1,
        arms=ALL_ARMS,
        seeds={"random": (0, 1, 2), "afire": (0, 1, 2), "afire_plus": (0, 1, 2), "mae": (0, 1, 2)},
        finetune_arms=MAIN_FINETUNE,
        finetune_seeds=1,
        finetune_epochs={0.01: 20, 0.1: 8, 1.0: 3},
        finetune_lr=3e-4,
        densenet_epochs={0.01: 10, 0.1: 4, 1.0: 1},
        densenet_image_size=64,
        threads=1,
    ),
    "gpu": Preset(
        name="gpu",
        image_size=224,
        patch_size=16,
        hidden_size=384,
        num_layers=12,
        num_heads=6,
        mlp_dim=1536,
        num_prototypes=256,
        head_hidden_dim=1024,
        head_bottleneck_dim=256,
        decoder_dim=256,
        decoder_depth=4,
        decoder_heads=8,
        pretrain_films=20000,
        downstream_films=8000,
        downstream_prevalence=0.1,
        passes=20,
        batch_size=128,
        base_lr=0.0005,
        warmup_passes=2,
        teacher_momentum=0.996,
        arms=ALL_ARMS,
        seeds={arm: (0, 1, 2) for arm in ("random", "afire", "afire_plus", "mae", "dino")},
        finetune_arms=MAIN_FINETUNE,
        finetune_seeds=3,
        finetune_epochs={0.01: 100, 0.1: 50, 1.0: 20},
        densenet_epochs={0.01: 100, 0.1: 50, 1.0: 20},
        finetune_lr=3e-4,
        finetune_batch_size=64,
        attention_epochs=50,
        localisation_films=1000,
        cohesion_films=500,
        bootstrap_samples=2000,
        device="cuda",
        amp=True,
    ),
}


def get_preset(name: str, overrides: Sequence[str] = ()) -> Preset:
    """A named preset, with ``key=value`` overrides (values parsed as JSON, else kept as strings).

    Raises:
        ValueError: unknown preset name or key, or a malformed override.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}.")
    values = PRESETS[name].to_dict()
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"Preset override {item!r} must look like key=value (e.g. passes=4).")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key not in values:
            raise ValueError(f"Preset override {item!r}: unknown key {key!r}; expected one of {sorted(values)}.")
        values[key] = value
    return preset_from_dict(values)
