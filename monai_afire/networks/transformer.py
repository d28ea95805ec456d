"""Stacks of MONAI transformer blocks without unused (DDP-unfriendly) trainable parameters."""

from __future__ import annotations

import torch.nn as nn
from monai.networks.blocks import TransformerBlock

__all__ = ["transformer_blocks"]


def transformer_blocks(
    hidden_size: int, mlp_dim: int, num_heads: int, depth: int, dropout_rate: float = 0.0
) -> nn.ModuleList:
    """``depth`` self-attention ``TransformerBlock`` (qkv bias).

    PyTorch's fused scaled-dot-product attention is used only without attention dropout: MONAI 1.6.1 passes the
    dropout rate to it in eval mode too, which would make evaluation outputs random.

    MONAI's block always creates ``norm_cross_attn``, which is unused without cross-attention; its parameters
    are set to ``requires_grad=False`` so DistributedDataParallel needs no ``find_unused_parameters`` and
    optimisers skip them, while the state-dict keys stay those of MONAI's block.
    """
    fused = dropout_rate == 0
    blocks = nn.ModuleList(
        TransformerBlock(hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias=True, use_flash_attention=fused)
        for _ in range(depth)
    )
    for block in blocks:
        block.norm_cross_attn.requires_grad_(False)
    return blocks
