"""Cost of AFiRe's head, Sinkhorn, losses and EMA on top of the networks, and the vectorised head versus loops.

For each architecture, on the CPU or a GPU, this times one training step of

- (a) the full AFiRe step: student encoder, prototype head and decoder forward/backward, teacher encoder and head
  forward, :class:`~monai_afire.losses.AFiReLoss` (prototype update, Sinkhorn, three terms), gradient clipping,
  AdamW and the EMA update of the teacher;
- (b) the floor: the same student encoder and decoder forward/backward and teacher encoder forward with a
  trivial loss, gradient clipping and AdamW over the parameters used;

each in its own process on the CPU (so the peak resident memory of each is its own), reporting the median step
time (the best over ``--repeats`` alternating rounds), the ratio a/b (target <= 1.10) and the peak memory.
It also times the head and structure loss alone (forward and backward) vectorised against a loop over positions
and tokens, as the authors' code does.

The model and loss are those the recorded results were measured with: the lesion prototype and the category term
(the afire_pretrain bundle's ``afire_plus.json``) and global gradient clipping.

Usage::

    python benchmarks/step_overhead.py --quick            # small, under a minute on a laptop CPU
    python benchmarks/step_overhead.py --archs vit_small vit_base --batch 64 --device cuda
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import platform
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from monai_afire.losses import AFiReLoss, AnatomyConsistencyLoss
from monai_afire.networks import AFiRe, AFiReEncoder, SpatialPrototypeHead
from monai_afire.transforms.tokens import patch_labels

__all__ = ["main"]


def build(arch: str, image_size: int, quick: bool, device: torch.device) -> AFiRe:
    """The AFiRe model of the paper's sizes, or a shallow one with ``quick``."""
    torch.manual_seed(0)
    shallow = {"num_layers": 4} if quick else {}
    encoder = AFiReEncoder(arch, img_size=image_size, **shallow)
    decoder = {"decoder_depth": 2} if quick else {}
    return AFiRe(encoder, lesion_prototype=True, **decoder).to(device)


def make_batch(batch: int, image_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean images, lesioned copies and lesion masks with a square lesion in every other image."""
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(batch, 1, image_size, image_size, generator=g)
    mask = torch.zeros_like(clean)
    side = image_size // 4
    for i in range(0, batch, 2):
        y, x = (int(v) for v in torch.randint(0, image_size - side, (2,), generator=g))
        mask[i, 0, y : y + side, x : x + side] = 0.4
    return (clean + mask).clamp(0, 235 / 255).to(device), clean.to(device), mask.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_steps(variant: str, args: argparse.Namespace) -> dict[str, float]:
    """Median step time (s) and peak memory (MiB) of ``variant`` ("full" or "floor")."""
    device = torch.device(args.device)
    model = build(args.arch, args.image_size, args.quick, device)
    lesioned, clean, mask = make_batch(args.batch, args.image_size, device)
    loss_fn = AFiReLoss(model.num_positions, model.num_prototypes, category_weight=1.0).to(device)
    if variant == "full":
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        params = [p for m in (model.student.encoder, model.decoder) for p in m.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=1e-4)
    patch = model.student.encoder.patch_size

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=getattr(args, "amp", False))

    def full_step(first: bool) -> None:
        with autocast:
            out = model(lesioned, clean, mask)
            total, _ = loss_fn(out, clean, mask, replace_prototypes=first)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        model.update_teacher(0.996)

    def floor_step(first: bool) -> None:
        with autocast:
            labels = patch_labels(mask, patch)
            tokens = model.student.patch_tokens(lesioned)
            reconstruction = model.decoder(tokens, labels)
            with torch.no_grad():
                teacher_tokens = model.teacher.patch_tokens(clean)
            loss = F.mse_loss(reconstruction.float(), clean) + 0.0 * teacher_tokens.float().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    step = full_step if variant == "full" else floor_step
    times = []
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(args.warmup + args.steps):
        _sync(device)
        start = time.perf_counter()
        step(i == 0)
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    return {"time": statistics.median(times), "memory": _peak_memory_mib(device)}


def _child(variant: str, args: argparse.Namespace, queue: multiprocessing.Queue) -> None:
    torch.set_num_threads(args.threads)
    queue.put(time_steps(variant, args))


def measure(variant: str, args: argparse.Namespace) -> dict[str, float]:
    """Run ``time_steps`` in a fresh process on the CPU (own peak RSS), in this process on a GPU."""
    if args.device != "cpu":
        return time_steps(variant, args)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(variant, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def head_loss_vectorised(head, anatomy, tokens, teacher, labels) -> torch.Tensor:
    """Head and structure loss as the library computes them."""
    structure, _ = anatomy.structure_and_category(head(tokens), teacher, labels)
    return structure


def head_loss_loops(head, anatomy, tokens, teacher, labels) -> torch.Tensor:
    """The same value with a loop over positions (one matrix product each) and over tokens for the loss."""
    q = anatomy.targets()
    u = F.normalize(head.mlp(tokens), dim=-1)
    banks, lesion = head.prototype_vectors()
    total, count = tokens.new_zeros(()), 0
    for j in range(tokens.shape[1]):
        logits = torch.cat([u[:, j] @ banks[j].T, (u[:, j] @ lesion).unsqueeze(-1)], dim=-1)
        for b in range(tokens.shape[0]):
            if not labels[b, j]:
                log_p = F.log_softmax(logits[b] / anatomy.student_temperature, dim=-1)
                total = total - (q[j] * log_p[: q.shape[1]]).sum()
                count += 1
    return total / max(count, 1)


def loop_comparison(args: argparse.Namespace) -> dict[str, float]:
    """Forward+backward time of the head and structure loss, vectorised and looped, and their difference."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    width = AFiReEncoder(args.arch, img_size=args.image_size).hidden_size
    grid = args.image_size // 16
    n = grid * grid
    head = SpatialPrototypeHead(width, n, lesion_prototype=True).to(device)
    anatomy = AnatomyConsistencyLoss(n, head.num_prototypes, category_weight=1.0).to(device)
    tokens = torch.randn(args.batch, n, width, device=device, requires_grad=True)
    with torch.no_grad():
        teacher = head(torch.randn(args.batch, n, width, device=device), with_lesion=False)
    anatomy.update_prototype_state(teacher)
    anatomy.eval()
    labels = torch.rand(args.batch, n, device=device) < 0.2
    result = {}
    values = {}
    for name, fn in (("vectorised", head_loss_vectorised), ("loops", head_loss_loops)):
        times = []
        for i in range(1 + args.loop_steps):
            _sync(device)
            start = time.perf_counter()
            value = fn(head, anatomy, tokens, teacher, labels)
            value.backward()
            _sync(device)
            if i:
                times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
        values[name] = value.item()
    result["difference"] = abs(values["vectorised"] - values["loops"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["vit_small", "vit_base"], help="encoder presets to time")
    parser.add_argument("--batch", type=int, default=64, help="images per step")
    parser.add_argument("--image-size", type=int, default=224, help="side of the images in pixels")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant (median; 3, quick 8)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (1, quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="(floor, full) rounds, best kept (1, quick 3)")
    parser.add_argument("--loop-steps", type=int, default=2, help="timed repeats of the loop comparison")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda when available, else cpu)",
    )
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast for forward and losses")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads on the CPU"
    )
    parser.add_argument("--quick", action="store_true", help="vit_small, 96 px, batch 8, 4 + 2 blocks, 8 steps x 3")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.batch, args.image_size = ["vit_small"], 8, 96
    for key, default, quick in (("steps", 3, 8), ("warmup", 1, 2), ("repeats", 1, 3)):  # given values win
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else default)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "CPU"
    memory_kind = "torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "max RSS of the process"
    lines = [
        f"# AFiRe step overhead ({args.device}: {device_name}, torch {torch.__version__}, "
        f"{args.threads} threads{', quick' if args.quick else ''}{', bf16 autocast' if args.amp else ', float32'})",
        "",
        f"batch {args.batch}, {args.image_size} px, median of {args.steps} steps after {args.warmup} warm-up "
        f"(best of {args.repeats} alternating rounds); "
        f"peak memory = {memory_kind}.",
        "",
        "| arch | (a) full AFiRe step s | (b) floor step s | ratio a/b | peak MiB (a) | peak MiB (b) "
        "| head+L_stru vectorised ms | loops ms | loops / vectorised |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(lines), flush=True)
    for arch in args.archs:
        args.arch = arch
        floors, fulls = [], []
        for _ in range(args.repeats):  # alternate the two variants; keep each one's fastest median
            floors.append(measure("floor", args))
            fulls.append(measure("full", args))
        floor = {"time": min(r["time"] for r in floors), "memory": max(r["memory"] for r in floors)}
        full = {"time": min(r["time"] for r in fulls), "memory": max(r["memory"] for r in fulls)}
        loops = loop_comparison(args)
        row = (
            f"| {arch}{' (4+2 blocks)' if args.quick else ''} | {full['time']:.3f} | {floor['time']:.3f} | "
            f"{full['time'] / floor['time']:.3f} | {full['memory']:.0f} | {floor['memory']:.0f} | "
            f"{1000 * loops['vectorised']:.1f} | {1000 * loops['loops']:.1f} | "
            f"{loops['loops'] / loops['vectorised']:.1f} |"
        )
        print(row, f"(loop vs vectorised |difference| {loops['difference']:.2e})", flush=True)
        lines.append(row)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
