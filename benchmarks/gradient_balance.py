"""Gradient norm of each AFiRe loss term, at initialisation and after some steps, for both recipes of the bundle.

    python benchmarks/gradient_balance.py [--arch vit_base] [--image-size 224] [--batch 8] [--steps 50]
        [--lr 1.25e-4] [--seed 0] [--out benchmarks/results/gradient_balance.md]

A batch is ``--batch`` lesioned copies of the real chest film ``RG1_UNCR.dcm`` (``pydicom-data``), prepared by
``radiograph_transforms`` at ``--image-size``, each with its own Synthetic Lesion Mask (the transform's defaults,
i.e. the authors' lesions). Two recipes start from the same weights:

- ``authors`` (``train.json``): no lesion prototype, no category term, restoration on ImageNet-normalised pixels;
- ``afire_plus`` (``train.json`` + ``afire_plus.json``): the lesion prototype and the category term (weight 1).

At initialisation and after ``--steps`` training steps (none with ``--steps 0``), on one fixed measurement batch,
the script backpropagates each weighted term alone and reports the L2 norm of its gradient over all trained
parameters (student encoder and head, decoder), the norm of the total gradient, and what the clipping at 3.0 leaves
of the structure term's gradient under per-tensor clipping (the authors') and global clipping: the norm of the
structure part of the clipped total gradient divided by its unclipped norm.

The training steps follow the recipe's first epoch (prototype banks frozen, prototype state replaced by the batch
mean, teacher EMA 0.996, AdamW with the recipe's weight-decay groups at 0.04, per-tensor clipping at 3.0), each on a
fresh draw of lesions, but at a constant learning rate ``--lr`` (default 5e-4 x 64 / 256, the recipe's peak on one
GPU of 64 images) instead of the warm-up, which in a real run keeps the first steps near zero.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from monai_afire.engines import clip_gradients
from monai_afire.losses import AFiReLoss
from monai_afire.networks import AFiRe, AFiReEncoder
from monai_afire.optimizers import weight_decay_param_groups
from monai_afire.transforms import RandSyntheticLesiond, radiograph_transforms

__all__ = ["RECIPES", "lesioned_batch", "measure", "main"]

#: the two recipes: (lesion prototype, category weight); the rest is train.json's for both
RECIPES = {"authors": (False, 0.0), "afire_plus": (True, 1.0)}
TERMS = ("structure", "category", "restoration")
CLIP = 3.0


def lesioned_batch(image: torch.Tensor, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch`` lesioned copies of ``image`` (1, S, S) with the default lesions: (lesioned, clean, mask)."""
    lesion = RandSyntheticLesiond(keys="image").set_random_state(seed)
    items = [lesion({"image": image}) for _ in range(batch)]
    return tuple(torch.stack([torch.as_tensor(item[k]) for item in items]) for k in ("image", "clean", "lesion_mask"))


def _trained(model: AFiRe) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _grads(params: Sequence[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]


def _norm(grads: Sequence[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def measure(model: AFiRe, loss_fn: AFiReLoss, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """Gradient norm of each weighted term and of the total, and the fraction of the structure gradient left after
    per-tensor and global clipping of the total gradient. The prototype state is not updated."""
    lesioned, clean, mask = batch
    params = _trained(model)
    loss_fn.eval()  # keep the prototype state
    model.train()
    out = model(lesioned, clean, mask)
    structure, category = loss_fn.anatomy.structure_and_category(
        out["student_logits"], out["teacher_logits"], out["token_labels"]
    )
    restoration = loss_fn.restoration(out["reconstruction"], clean, mask)
    weighted = {
        "structure": loss_fn.structure_weight * structure,
        "category": loss_fn.category_weight * category,
        "restoration": loss_fn.restoration_weight * restoration,
    }
    parts: dict[str, list[torch.Tensor]] = {}
    for name, term in weighted.items():
        model.zero_grad(set_to_none=True)
        if term.requires_grad and float(term.detach()) != 0.0:
            term.backward(retain_graph=True)
        parts[name] = _grads(params)
    model.zero_grad(set_to_none=True)
    loss_fn.train()
    total = [sum(g) for g in zip(*parts.values())]
    result = {name: _norm(g) for name, g in parts.items()}
    result["total"] = _norm(total)
    structure_norm = result["structure"]
    # per-tensor: each tensor's factor min(1, 3 / (|g_t| + 1e-6)) scales every term's part of that tensor
    factors = [torch.clamp(CLIP / (torch.linalg.vector_norm(g) + 1e-6), max=1.0) for g in total]
    result["structure_left_per_tensor"] = _norm([f * g for f, g in zip(factors, parts["structure"])]) / structure_norm
    result["structure_left_global"] = min(1.0, CLIP / (result["total"] + 1e-6))
    result["losses"] = {name: float(term.detach()) for name, term in weighted.items()}  # type: ignore[assignment]
    return result


def train_steps(
    model: AFiRe, loss_fn: AFiReLoss, image: torch.Tensor, batch: int, steps: int, lr: float, seed: int
) -> float:
    """``steps`` training steps of the recipe's first epoch at a constant ``lr``; returns the seconds per step."""
    optimizer = torch.optim.AdamW(weight_decay_param_groups(model, 0.04), lr=lr)
    prototypes = list(model.prototype_parameters())
    start = time.perf_counter()
    for step in range(steps):
        lesioned, clean, mask = lesioned_batch(image, batch, seed + 1 + step)
        model.train()
        out = model(lesioned, clean, mask)
        loss, _ = loss_fn(out, clean, mask, replace_prototypes=True)  # first epoch: P <- batch mean
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p in prototypes:  # first epoch: prototype banks frozen
            p.grad = None
        clip_gradients(_trained(model), CLIP, "per_tensor")
        optimizer.step()
        model.update_teacher(0.996)
    return (time.perf_counter() - start) / max(steps, 1)


def film(image_size: int) -> torch.Tensor:
    """The prepared demo film (1, S, S)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm", download=False)
    if path is None:
        raise RuntimeError("RG1_UNCR.dcm is not installed: run `pip install pydicom-data`.")
    return radiograph_transforms(image_size)({"image": path})["image"].as_tensor()


def run(args: argparse.Namespace) -> str:
    """Measure both recipes; returns the markdown table."""
    torch.manual_seed(args.seed)
    image = film(args.image_size)
    plus = AFiRe(AFiReEncoder(args.arch, img_size=args.image_size), lesion_prototype=True)
    common = {k: v for k, v in plus.state_dict().items() if "lesion_prototype" not in k}
    probe = lesioned_batch(image, args.batch, args.seed)
    rows = []
    for recipe, (lesion_prototype, category_weight) in RECIPES.items():
        model = plus if lesion_prototype else AFiRe(AFiReEncoder(args.arch, img_size=args.image_size))
        if not lesion_prototype:
            model.load_state_dict(common)  # the same initial weights as the afire_plus model
        loss_fn = AFiReLoss(model.num_positions, model.num_prototypes, category_weight=category_weight)
        loss_fn.anatomy.update_prototype_state(model(*probe)["teacher_logits"])  # P from the first batch
        start = time.perf_counter()
        rows.append((recipe, "initialisation", measure(model, loss_fn, probe)))
        print(f"{recipe}: measured at initialisation in {time.perf_counter() - start:.0f} s", flush=True)
        if args.steps > 0:
            seconds = train_steps(model, loss_fn, image, args.batch, args.steps, args.lr, args.seed)
            print(f"{recipe}: {args.steps} steps, {seconds:.1f} s per step", flush=True)
            rows.append((recipe, f"after {args.steps} steps", measure(model, loss_fn, probe)))
    lines = [
        "| recipe | when | structure | category | restoration | total | structure left after per-tensor clip "
        "| structure left after global clip | loss terms (structure / category / restoration) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for recipe, when, r in rows:
        losses = r["losses"]
        lines.append(
            f"| {recipe} | {when} | {r['structure']:.3g} | {r['category']:.3g} | {r['restoration']:.3g} "
            f"| {r['total']:.3g} | {r['structure_left_per_tensor']:.3f} | {r['structure_left_global']:.3f} "
            f"| {losses['structure']:.3f} / {losses['category']:.3f} / {losses['restoration']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vit_base", help="encoder architecture (default vit_base)")
    parser.add_argument("--image-size", type=int, default=224, help="side of the film in pixels")
    parser.add_argument("--batch", type=int, default=8, help="lesioned copies of the film per batch")
    parser.add_argument("--steps", type=int, default=50, help="training steps before the second measurement")
    parser.add_argument("--lr", type=float, default=5e-4 * 64 / 256, help="learning rate of those steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the lesions")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    table = run(args)
    elapsed = time.perf_counter() - start
    command = (
        f"python benchmarks/gradient_balance.py --arch {args.arch} --image-size {args.image_size} --batch {args.batch} "
        f"--steps {args.steps} --lr {args.lr:g} --seed {args.seed}" + (f" --out {args.out}" if args.out else "")
    )
    header = (
        f"Command: `{command}`\n\n{platform.machine()} CPU, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {elapsed / 60:.0f} min. Gradient norms are L2 norms over all trained parameters of the gradient "
        f"of each weighted term alone (clip at {CLIP}); measured on one fixed batch of {args.batch} lesioned copies "
        "of RG1_UNCR.dcm.\n"
    )
    print(header)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# Gradient balance of the AFiRe loss terms\n\n{header}\n{table}\n")


if __name__ == "__main__":
    main()
