"""The study's arms: what each one pre-trains (or not) and how it is evaluated downstream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Arm", "ARMS", "get_arm", "ablation_arm", "custom_arm"]

KINDS = ("random", "pixels", "densenet", "mae", "dino", "afire")


@dataclass(frozen=True)
class Arm:
    """One arm of the study.

    Attributes:
        name: key used in files and tables.
        label: name shown in the report.
        kind: ``random`` (untrained ViT), ``pixels`` (downsampled pixels), ``densenet`` (MONAI's DenseNet121, trained
            with labels only), ``mae``, ``dino`` or ``afire`` (run through the ``afire_pretrain`` bundle).
        configs: bundle configs layered after ``train.json`` (``afire`` only), e.g. ``("afire_plus.json",)``.
        overrides: bundle overrides of the arm on top of the study overlay (``afire`` only); a flat key ``a#b``
            changes one entry of the dict ``a`` (e.g. ``lesion_kwargs#prob``).
        description: one line for the report.
    """

    name: str
    label: str
    kind: str
    configs: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Arm {self.name}: kind must be one of {KINDS}, got {self.kind!r}.")

    @property
    def pretrained(self) -> bool:
        """Whether the arm has a self-supervised pre-training stage."""
        return self.kind in ("mae", "dino", "afire")

    @property
    def has_encoder(self) -> bool:
        """Whether the arm yields a ViT encoder (frozen probes, k-NN, cohesion, fine-tuning)."""
        return self.kind in ("random", "mae", "dino", "afire")

    @property
    def has_lesion_prototype(self) -> bool:
        """Whether the arm trains the shared lesion prototype (lesion-probability maps)."""
        return self.kind == "afire" and "afire_plus.json" in self.configs

    @property
    def has_restoration(self) -> bool:
        """Whether the arm has a restoring decoder (restoration-residual maps)."""
        if self.kind == "mae":
            return True
        return self.kind == "afire" and float(self.overrides.get("restoration_weight", 1.0)) > 0


def ablation_arm(name: str, label: str, base: Arm, overrides: Mapping[str, Any], description: str) -> Arm:
    """An ablation: ``base``'s configs with extra overrides."""
    return Arm(name, f"{base.label}: {label}", "afire", base.configs, {**base.overrides, **overrides}, description)


_AFIRE = Arm(
    "afire", "AFiRe (authors' recipe)", "afire", (), {}, "train.json: structure + restoration, no category term"
)
_AFIRE_PLUS = Arm(
    "afire_plus",
    "AFiRe + category term",
    "afire",
    ("afire_plus.json",),
    {},
    "train.json + afire_plus.json: adds the shared lesion prototype and the category term",
)

ARMS: dict[str, Arm] = {
    "random": Arm("random", "random init", "random", description="the same ViT, untrained (fine-tuned: from scratch)"),
    "pixels": Arm("pixels", "raw pixels", "pixels", description="area-downsampled pixels, logistic regression"),
    "densenet121": Arm(
        "densenet121", "DenseNet121 (supervised)", "densenet", description="MONAI DenseNet121 from scratch"
    ),
    "mae": Arm("mae", "MAE", "mae", description="75% random masking, encoder on visible tokens, light decoder"),
    "dino": Arm("dino", "global DINO", "dino", description="EMA teacher, Sinkhorn targets, one head on mean token"),
    "afire": _AFIRE,
    "afire_plus": _AFIRE_PLUS,
}


def _ablations(base: Arm) -> dict[str, Arm]:
    return {
        "no_restoration": ablation_arm(
            "no_restoration", "- restoration", base, {"restoration_weight": 0.0}, "restoration weight 0"
        ),
        "no_structure": ablation_arm(
            "no_structure", "- structure", base, {"structure_weight": 0.0}, "structure weight 0"
        ),
        "no_lesions": ablation_arm(
            "no_lesions", "- synthetic lesions", base, {"lesion_kwargs#prob": 0.0}, "clean film in to both"
        ),
        "clip_lesion": ablation_arm(
            "clip_lesion",
            "ceiling clip on lesion only",
            base,
            {"lesion_kwargs#clip_scope": "lesion"},
            "the 235/255 ceiling clips the lesioned pixels only, not the whole film",
        ),
    }


def get_arm(name: str, ablation_base: str = "afire_plus") -> Arm:
    """The arm called ``name``; ablations change the recipe of ``ablation_base``.

    Raises:
        ValueError: unknown arm or ablation base.
    """
    if ablation_base not in ("afire", "afire_plus"):
        raise ValueError(f"ablation_base must be 'afire' or 'afire_plus', got {ablation_base!r}.")
    arms = {**ARMS, **_ablations(ARMS[ablation_base])}
    if name not in arms:
        raise ValueError(f"Unknown arm {name!r}; expected one of {sorted(arms)}.")
    return arms[name]


def custom_arm(name: str, spec: Mapping[str, Any], ablation_base: str = "afire_plus") -> Arm:
    """An extra AFiRe arm for exploration on validation: ``spec = {"base": arm name, "overrides": {...},
    "label": ...}`` (the base's configs, its overrides updated).

    Raises:
        ValueError: the base is not an AFiRe arm, or the spec has unknown keys.
    """
    unknown = sorted(set(spec) - {"base", "overrides", "label", "description"})
    if unknown:
        raise ValueError(f"custom arm {name}: unknown keys {unknown}; expected base, overrides, label, description.")
    base = get_arm(str(spec.get("base", "afire_plus")), ablation_base)
    if base.kind != "afire":
        raise ValueError(f"custom arm {name}: the base {base.name} is not an AFiRe arm.")
    overrides = dict(spec.get("overrides", {}))
    label = str(spec.get("label", f"{base.label} {overrides}"))
    return Arm(name, label, "afire", base.configs, {**base.overrides, **overrides}, str(spec.get("description", label)))
