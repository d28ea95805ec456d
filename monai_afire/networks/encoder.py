"""Vision Transformer encoder of AFiRe, built from MONAI blocks, returning every patch token."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.networks.blocks import PatchEmbeddingBlock
from monai.networks.layers import trunc_normal_
from monai.utils import ensure_tuple_rep

from monai_afire.utils.checks import check_patch_size

from .transformer import transformer_blocks

__all__ = ["AFiReEncoder", "VIT_PRESETS"]

#: hidden size, number of transformer blocks and attention heads of each named architecture.
VIT_PRESETS: dict[str, tuple[int, int, int]] = {
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
    "vit_base": (768, 12, 12),
}


class AFiReEncoder(nn.Module):
    """ViT encoder with a fixed sin-cos position embedding that returns all patch tokens.

    Built from ``monai.networks.blocks.PatchEmbeddingBlock`` (convolutional patches, ``pos_embed_type="sincos"``,
    which MONAI stores as a parameter with ``requires_grad=False``), a stack of ``TransformerBlock`` (see
    :func:`~monai_afire.networks.transformer_blocks`) and a final ``LayerNorm``. Tokens are in the raster order of
    MONAI's patch grid (first spatial axis slowest), the order used by :func:`monai_afire.transforms.patch_labels`.

    Args:
        arch: preset name, one of ``VIT_PRESETS`` (``"vit_tiny"``, ``"vit_small"``, ``"vit_base"``).
        img_size: input spatial size, an int for every axis or one value per axis; divisible by ``patch_size``.
        in_channels: number of input channels.
        spatial_dims: 2 or 3.
        patch_size: patch side, an int or one value per axis.
        class_token: prepend a learnable class token (without position embedding) and also return it.
        hidden_size: overrides the preset's token width (must divide by 4 in 2-D, by 6 in 3-D, and by ``num_heads``).
        num_layers: overrides the preset's number of transformer blocks.
        num_heads: overrides the preset's number of attention heads.
        mlp_dim: width of the blocks' MLP; defaults to 4 x ``hidden_size``.
        dropout_rate: dropout in the embedding and the blocks.

    Example::

        encoder = AFiReEncoder("vit_small", img_size=224)
        tokens = encoder(torch.rand(2, 1, 224, 224))  # (2, 196, 384)
    """

    def __init__(
        self,
        arch: str = "vit_small",
        img_size: int | Sequence[int] = 224,
        in_channels: int = 1,
        spatial_dims: int = 2,
        patch_size: int | Sequence[int] = 16,
        class_token: bool = False,
        hidden_size: int | None = None,
        num_layers: int | None = None,
        num_heads: int | None = None,
        mlp_dim: int | None = None,
        dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if arch not in VIT_PRESETS:
            raise ValueError(f"AFiReEncoder: unknown arch {arch!r}, expected one of {sorted(VIT_PRESETS)}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"AFiReEncoder: spatial_dims must be 2 or 3, got {spatial_dims}.")
        preset_hidden, preset_layers, preset_heads = VIT_PRESETS[arch]
        hidden = int(hidden_size or preset_hidden)
        layers = int(num_layers or preset_layers)
        heads = int(num_heads or preset_heads)
        mlp = int(mlp_dim or 4 * hidden)
        img = tuple(int(s) for s in ensure_tuple_rep(img_size, spatial_dims))
        patch = tuple(int(p) for p in ensure_tuple_rep(patch_size, spatial_dims))
        check_patch_size("AFiReEncoder img_size", img, patch)
        if hidden % heads:
            raise ValueError(f"AFiReEncoder: hidden_size {hidden} must be divisible by num_heads {heads}.")
        if hidden % (2 * spatial_dims):
            raise ValueError(
                f"AFiReEncoder: hidden_size {hidden} must be divisible by {2 * spatial_dims} for the "
                f"{spatial_dims}-D sin-cos position embedding."
            )
        self.config: dict[str, Any] = {
            "arch": arch,
            "img_size": img,
            "in_channels": int(in_channels),
            "spatial_dims": int(spatial_dims),
            "patch_size": patch,
            "class_token": bool(class_token),
            "hidden_size": hidden,
            "num_layers": layers,
            "num_heads": heads,
            "mlp_dim": mlp,
            "dropout_rate": float(dropout_rate),
        }
        self.hidden_size = hidden
        self.spatial_dims = spatial_dims
        self.img_size = img
        self.patch_size = patch
        self.grid_size = tuple(s // p for s, p in zip(img, patch))
        self.num_positions = int(torch.tensor(self.grid_size).prod().item())
        self.class_token = bool(class_token)
        with warnings.catch_warnings():  # MONAI's sin-cos builder calls torch.meshgrid without indexing
            warnings.filterwarnings("ignore", message=".*meshgrid.*", category=UserWarning)
            self.patch_embedding = PatchEmbeddingBlock(
                in_channels=in_channels,
                img_size=img,
                patch_size=patch,
                hidden_size=hidden,
                num_heads=heads,
                proj_type="conv",
                pos_embed_type="sincos",
                dropout_rate=dropout_rate,
                spatial_dims=spatial_dims,
            )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden)) if self.class_token else None
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, mean=0.0, std=0.02, a=-2.0, b=2.0)
        self.blocks = transformer_blocks(hidden, mlp, heads, layers, dropout_rate)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Encode images (B, C, *img_size) to patch tokens (B, L, D), plus the class token (B, D) when enabled."""
        # the check is skipped while tracing (TorchScript export): the traced graph is fixed to the traced shape
        if not torch.jit.is_tracing() and (tuple(x.shape[2:]) != self.img_size or x.ndim != self.spatial_dims + 2):
            raise ValueError(
                f"AFiReEncoder: expected input (B, {self.config['in_channels']}, *{self.img_size}), "
                f"got {tuple(x.shape)}."
            )
        tokens = self.patch_embedding(x)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        if self.cls_token is not None:
            return tokens[:, 1:], tokens[:, 0]
        return tokens
