"""Fixed sin-cos position embeddings for any width, on top of MONAI's builder."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from monai.networks.blocks.pos_embed_utils import build_sincos_position_embedding

__all__ = ["sincos_position_embedding"]


def sincos_position_embedding(grid_size: Sequence[int], embed_dim: int) -> torch.Tensor:
    """Sin-cos position embedding (1, L, embed_dim) of a 2-D or 3-D token grid, as a plain (non-trainable) tensor.

    MONAI's ``build_sincos_position_embedding`` needs ``embed_dim`` divisible by 4 (2-D) or 6 (3-D); here the
    largest such width is filled by it and the remaining few channels are zero, so any width works (e.g. 512 in 3-D).

    Args:
        grid_size: number of patches along each spatial axis (2 or 3 values).
        embed_dim: token width.
    """
    grid = [int(g) for g in grid_size]
    if len(grid) not in (2, 3):
        raise ValueError(f"sincos_position_embedding: grid_size must have 2 or 3 values, got {grid_size}.")
    step = 2 * len(grid)
    used = embed_dim - embed_dim % step
    if used <= 0:
        raise ValueError(f"sincos_position_embedding: embed_dim {embed_dim} must be at least {step}.")
    with warnings.catch_warnings():  # MONAI's builder calls torch.meshgrid without indexing (it means "ij")
        warnings.filterwarnings("ignore", message=".*meshgrid.*", category=UserWarning)
        table = build_sincos_position_embedding(grid, used, spatial_dims=len(grid)).detach().clone()
    if used < embed_dim:
        table = torch.cat([table, table.new_zeros(1, table.shape[1], embed_dim - used)], dim=-1)
    return table
