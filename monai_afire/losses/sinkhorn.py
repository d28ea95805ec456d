"""Sinkhorn-Knopp equipartition of prototype scores."""

from __future__ import annotations

import torch

from monai_afire.utils.distributed import all_reduce_

__all__ = ["sinkhorn_knopp"]

_TINY = torch.finfo(torch.float64).tiny
_MAX_EXPONENT = 700.0  # exp(-700) is still a normal float64


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor,
    epsilon: float = 0.05,
    iterations: int = 3,
    rows_distributed: bool = False,
    check_range: bool = True,
) -> torch.Tensor:
    """Turn scores (N, K) into soft assignments whose rows sum to 1 and whose columns get equal mass.

    Computes ``exp(scores / epsilon)`` (in float64, after subtracting the global maximum, so the result equals
    the unshifted procedure of SwAV/DINO), then alternates
    ``iterations`` times: scale columns to mass 1/K each, then rows to 1/N each; finally rows are scaled to sum 1.
    Positions are rows and prototypes columns. The score range divided by ``epsilon`` must stay below 700
    (cosine logits with epsilon 0.05 give at most 40).

    Args:
        scores: (N, K), e.g. the prototype state P (L, K).
        epsilon: temperature; smaller is sharper.
        iterations: alternating normalisation rounds (>= 1).
        rows_distributed: the rows are sharded across processes: the maximum, column sums and row count are
            all-reduced. Without a process group this changes nothing.
        check_range: read the score range on the host and raise for non-finite scores or a range over ``epsilon``
            above 700 (one host-device synchronisation). False (for training steps that must not wait for the
            device) skips the read: exponents are clamped at -700 instead (no underflow), and non-finite scores give
            non-finite targets, which a non-finite loss check catches.

    Returns:
        float tensor (N, K) in the dtype of ``scores`` (float32 for integer input), no gradient.
    """
    if scores.ndim != 2 or scores.numel() == 0:
        raise ValueError(f"sinkhorn_knopp: scores must be a non-empty (N, K) matrix, got {tuple(scores.shape)}.")
    if epsilon <= 0 or iterations < 1:
        raise ValueError(f"sinkhorn_knopp: need epsilon > 0 and iterations >= 1, got {epsilon} and {iterations}.")
    out_dtype = scores.dtype if scores.is_floating_point() else torch.float32
    q = scores.detach().to(torch.float64)
    peak, neg_low = q.max(), -q.min()
    num_rows = torch.full((), float(q.shape[0]), dtype=torch.float64, device=q.device)
    if rows_distributed:
        all_reduce_(peak, "max")
        all_reduce_(neg_low, "max")
        all_reduce_(num_rows)
    if check_range:
        spread = float((peak + neg_low) / epsilon)  # the only host-device sync; NaN or inf for non-finite scores
        if not spread <= _MAX_EXPONENT:
            raise ValueError(
                f"sinkhorn_knopp: the score range over epsilon is {spread:.4g} (NaN or infinite scores give nan/inf); "
                f"it must be finite and at most {_MAX_EXPONENT}, else exp() underflows float64: rescale the scores or "
                "raise epsilon."
            )
        q = torch.exp((q - peak) / epsilon)
    else:
        q = torch.exp(((q - peak) / epsilon).clamp_min(-_MAX_EXPONENT))
    num_cols = q.shape[1]
    for _ in range(iterations):
        col = q.sum(dim=0, keepdim=True)
        if rows_distributed:
            all_reduce_(col)
        q = q / (col.clamp_min(_TINY) * num_cols)
        q = q / (q.sum(dim=1, keepdim=True).clamp_min(_TINY) * num_rows)
    return (q * num_rows).to(out_dtype)
