"""The evidence study: what AFiRe pre-training buys over random weights, raw pixels, supervised training, MAE and a
global DINO, with the ablations of each AFiRe term, on simulated chest films.

Usage::

    python benchmarks/evidence.py --preset cpu --out benchmarks/results/evidence   # ~90 min on 2 cores
    python benchmarks/evidence.py --preset gpu --out results/evidence_gpu          # a lent GPU
    python benchmarks/evidence.py --preset gpu --dry-run                            # the plan, nothing run

Every stage is cached under ``OUT/cache``: a rerun resumes. ``OUT/evidence.md`` holds the tables (with the command,
wall time, machine and load), ``OUT/evidence.csv`` every number, ``OUT/evidence.png`` AUROC by label fraction.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.evidence_study import PRESETS, STAGES, Study, get_arm, get_preset  # noqa: E402
from benchmarks.evidence_study.arms import custom_arm  # noqa: E402


def dry_run(preset, arms) -> str:
    """The plan of a run, without running anything: arms, seeds, budget, AFiRe bundle commands."""
    from benchmarks.evidence_study.afire_bundle import CONFIG_DIR, bundle_command, changes_from_train_json

    lines = [
        f"preset {preset.name}: {preset.image_size} px, patch {preset.patch_size}, ViT {preset.hidden_size} x "
        f"{preset.num_layers}; {preset.pretrain_films} pre-training films, {preset.downstream_films} downstream "
        f"films; {preset.image_steps} image-steps per pre-trained arm ({preset.passes} passes, batch "
        f"{preset.batch_size}); device {preset.device}"
    ]
    runs = 0
    for name in arms:
        arm = name if not isinstance(name, str) else get_arm(name, preset.ablation_base)
        name = arm.name
        seeds = preset.arm_seeds(name)
        fine = name in preset.finetune_arms
        runs += len(seeds) if arm.pretrained else 0
        lines.append(
            f"  {name:16s} {arm.kind:8s} seeds {list(seeds)}{' + fine-tuning' if fine else ''}: {arm.description}"
        )
        if arm.kind == "afire":
            files = [str(CONFIG_DIR / "train.json"), *[str(CONFIG_DIR / c) for c in arm.configs]]
            missing = [f for f in files if not Path(f).is_file()]
            command = bundle_command(files, "OUT/cache/pretrain/<arm>/seed<k>/bundle/study_overlay.json")
            lines.append(f"      {command}" + (f"   (MISSING: {missing})" if missing else ""))
            if arm.overrides:
                lines.append(f"      arm overrides: {dict(arm.overrides)}")
    lines.append(f"pre-training runs: {runs} x {preset.image_steps} image-steps")
    lines.append(
        "changes from train.json: " + "; ".join(f"{k}: {a} -> {b}" for k, a, b, _ in changes_from_train_json(preset))
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> Path | None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="study size (default cpu)")
    parser.add_argument("--out", default="benchmarks/results/evidence", help="output folder (cache in OUT/cache)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides (JSON values)")
    parser.add_argument("--arms", default=None, help="comma-separated subset of the preset's arms")
    parser.add_argument(
        "--extra-arms",
        default=None,
        type=json.loads,
        help='JSON {name: {"base": "afire_plus", "overrides": {...}}}: extra AFiRe arms (exploration)',
    )
    parser.add_argument("--until", default="report", choices=STAGES, help="stop after this stage")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    preset = get_preset(args.preset, args.set)
    arms: list = list(args.arms.split(",")) if args.arms else list(preset.arms)
    for name in arms:
        get_arm(name, preset.ablation_base)
    arms += [custom_arm(name, spec, preset.ablation_base) for name, spec in (args.extra_arms or {}).items()]
    if args.dry_run:
        print(dry_run(preset, arms))
        return None
    command = "python benchmarks/evidence.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    path = Study(preset, args.out, arms=tuple(arms)).run(command=command, until=args.until)
    if path is not None:
        print(f"Wrote {path}")
    return path


if __name__ == "__main__":
    main()
