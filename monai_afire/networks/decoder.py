"""Anomaly-removal decoder: restores the clean image from tokens with the abnormal ones masked out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
from einops import rearrange
from monai.networks.layers import trunc_normal_

from .position_embedding import sincos_position_embedding
from .transformer import transformer_blocks

__all__ = ["AnomalyRemovalDecoder"]

_UNPATCHIFY = {
    2: "b (h w) (p1 p2 c) -> b c (h p1) (w p2)",
    3: "b (h w d) (p1 p2 p3 c) -> b c (h p1) (w p2) (d p3)",
}


class AnomalyRemovalDecoder(nn.Module):
    """Transformer decoder that replaces abnormal tokens by a learnable per-position mask token and predicts pixels.

    Tokens (B, L, encoder_dim) are projected to ``decoder_dim``; where ``token_labels`` is True the token is
    replaced (``torch.where``) by the mask token of its position; a fixed sin-cos position embedding is added,
    then ``depth`` MONAI ``TransformerBlock``, a LayerNorm and a linear layer to ``prod(patch_size) * out_channels``
    values per token, rearranged (un-patchified) to an image (B, out_channels, *grid * patch).

    Args:
        num_positions: the token grid (one value per spatial axis, 2 or 3 of them); an int means a square 2-D grid.
        patch_size: patch side, an int or one value per axis.
        out_channels: channels of the restored image.
        encoder_dim: width of the incoming tokens.
        decoder_dim: width inside the decoder.
        depth: number of transformer blocks.
        num_heads: attention heads (must divide ``decoder_dim``).
        mlp_dim: MLP width of the blocks; defaults to 4 x ``decoder_dim``.
    """

    def __init__(
        self,
        num_positions: int | Sequence[int],
        patch_size: int | Sequence[int],
        out_channels: int,
        encoder_dim: int,
        decoder_dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_dim: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_positions, int):
            side = math.isqrt(num_positions)
            if side * side != num_positions:
                raise ValueError(
                    f"AnomalyRemovalDecoder: num_positions {num_positions} is not a square; pass the grid instead."
                )
            grid = (side, side)
        else:
            grid = tuple(int(g) for g in num_positions)
        if len(grid) not in (2, 3):
            raise ValueError(f"AnomalyRemovalDecoder: the grid must have 2 or 3 axes, got {num_positions}.")
        patch = (int(patch_size),) * len(grid) if isinstance(patch_size, int) else tuple(int(p) for p in patch_size)
        if len(patch) != len(grid):
            raise ValueError(f"AnomalyRemovalDecoder: patch_size {patch_size} does not match the grid {grid}.")
        if decoder_dim % num_heads:
            raise ValueError(f"AnomalyRemovalDecoder: decoder_dim {decoder_dim} must be divisible by {num_heads}.")
        self.grid_size = grid
        self.patch_size = patch
        self.out_channels = int(out_channels)
        self.num_positions = math.prod(grid)
        self.embed = nn.Linear(encoder_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(self.num_positions, decoder_dim))
        trunc_normal_(self.mask_token, mean=0.0, std=0.02, a=-2.0, b=2.0)
        self.register_buffer("position_embedding", sincos_position_embedding(grid, decoder_dim), persistent=False)
        self.blocks = transformer_blocks(decoder_dim, mlp_dim or 4 * decoder_dim, num_heads, depth)
        self.norm = nn.LayerNorm(decoder_dim)
        self.to_pixels = nn.Linear(decoder_dim, math.prod(patch) * self.out_channels)
        axes = {f"p{i + 1}": p for i, p in enumerate(patch)}
        axes.update(dict(zip("hwd", grid)))
        self._unpatchify_axes = axes

    def forward(self, tokens: torch.Tensor, token_labels: torch.Tensor) -> torch.Tensor:
        """Restore an image from tokens (B, L, encoder_dim), masking those where ``token_labels`` (B, L) is True."""
        if tokens.ndim != 3 or tokens.shape[1] != self.num_positions or token_labels.shape != tokens.shape[:2]:
            raise ValueError(
                f"AnomalyRemovalDecoder: expected tokens (B, {self.num_positions}, D) and token_labels (B, "
                f"{self.num_positions}), got {tuple(tokens.shape)} and {tuple(token_labels.shape)}."
            )
        x = self.embed(tokens)
        x = torch.where(token_labels.bool().unsqueeze(-1), self.mask_token.to(x.dtype), x)
        x = x + self.position_embedding.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        pixels = self.to_pixels(self.norm(x))
        return rearrange(pixels, _UNPATCHIFY[len(self.grid_size)], c=self.out_channels, **self._unpatchify_axes)
