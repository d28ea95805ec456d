"""FLOP count of one AFiRe pre-training step per image, by part, with PyTorch's ``FlopCounterMode``.

Method: build the model (``vit_base``/16 at 224 with the bundle's head and decoder by default), run one training step
(forward of student, teacher and decoder, ``AFiReLoss``, backward) on a small batch under
``torch.utils.flop_counter.FlopCounterMode``, and divide by the batch. The counter adds 2 FLOP per multiply-add of
every matrix product and convolution (forward and backward); element-wise work (norms, activations, softmax, the
optimiser, the EMA) is not counted, as usual for model-FLOP utilisation. Attention runs through the math backend of
``scaled_dot_product_attention`` (``sdpa_kernel(SDPBackend.MATH)``), so its two matrix products are counted on every
device (PyTorch has no FLOP formula for the fused CPU kernel). Per part, ``FlopCounterMode`` files each operator under
the modules active when it ran; the gradient that flows from the decoder back into the student's tokens is filed
under both, so the parts add up to a little more than the total.

Usage::

    python benchmarks/flop_count.py                       # vit_base/16 at 224, batch 2, CPU: about a minute
    python benchmarks/flop_count.py --arch vit_small --out benchmarks/results/flop_count.md
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["PARTS", "afire_step_flops", "main"]

#: module paths of the parts reported (FlopCounterMode's names, below the top module "AFiRe")
PARTS = {
    "student encoder (forward + backward)": "AFiRe.student.encoder",
    "student prototype head (forward + backward)": "AFiRe.student.head",
    "teacher encoder + head (forward)": "AFiRe.teacher",
    "decoder (forward + backward)": "AFiRe.decoder",
}


def afire_step_flops(model: torch.nn.Module, loss_fn: torch.nn.Module, batch: int = 2) -> dict[str, float]:
    """FLOP per image of one training step of ``model`` (an AFiRe) with ``loss_fn``: ``"total"`` and each of PARTS.

    The model's parameters' gradients are left set; the model and the loss may be on any device.
    """
    device = next(model.parameters()).device
    encoder = model.student.encoder
    shape = (batch, encoder.config["in_channels"], *encoder.img_size)
    clean = torch.rand(shape, device=device)
    mask = torch.zeros(shape, device=device)
    mask[(slice(None), slice(None), *(slice(s // 4, s // 2) for s in encoder.img_size))] = 0.3
    lesioned = (clean + mask).clamp(0, 1)
    model.train()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False, depth=None) as counter:
        outputs = model(lesioned, clean, mask)
        total, _ = loss_fn(outputs, clean, mask)
        total.backward()
    counts = counter.get_flop_counts()
    result = {"total": sum(counts["Global"].values()) / batch}
    for name, key in PARTS.items():
        result[name] = sum(counts.get(key, {}).values()) / batch
    return result


def build(arch: str, image_size: int, **afire: Any) -> tuple[torch.nn.Module, torch.nn.Module]:
    """An AFiRe model with the bundle's head and decoder sizes (``afire`` overrides them) and its AFiReLoss."""
    from monai_afire.losses import AFiReLoss
    from monai_afire.networks import AFiRe, AFiReEncoder

    torch.manual_seed(0)
    model = AFiRe(AFiReEncoder(arch, img_size=image_size), **afire)
    return model, AFiReLoss(model.num_positions, model.num_prototypes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="vit_base", help="encoder preset (default vit_base)")
    parser.add_argument("--image-size", type=int, default=224, help="side of the images in pixels")
    parser.add_argument("--batch", type=int, default=2, help="images in the counted step (FLOP are per image)")
    parser.add_argument("--device", default="cpu", help="torch device of the counted step")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    model, loss_fn = build(args.arch, args.image_size)
    start = time.perf_counter()
    flops = afire_step_flops(model.to(args.device), loss_fn.to(args.device), args.batch)
    seconds = time.perf_counter() - start
    lines = [
        f"# FLOP per image of one AFiRe pre-training step ({args.arch}/16 at {args.image_size}, bundle head and "
        f"decoder)",
        "",
        f"`python benchmarks/flop_count.py --arch {args.arch} --image-size {args.image_size} --batch {args.batch}` "
        f"(torch {torch.__version__}, {args.device}, {seconds:.0f} s). Method: the module docstring of "
        "`benchmarks/flop_count.py` (FlopCounterMode over forward, loss and backward; matrix products and "
        "convolutions, 2 FLOP per multiply-add; attention through the math backend).",
        "",
        "| part | GFLOP per image |",
        "| --- | --- |",
        *(f"| {name} | {flops[name] / 1e9:.1f} |" for name in PARTS),
        f"| **one training step (counter total)** | **{flops['total'] / 1e9:.1f}** |",
        "",
        "The parts add up to a little more than the total: the gradient flowing from the decoder's input projection "
        "back into the student's tokens is filed under both modules.",
    ]
    print("\n".join(lines))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
