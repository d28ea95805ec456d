"""Spatial prototype head: an MLP projection scored against one bank of unit prototypes per token position."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers import trunc_normal_

__all__ = ["SpatialPrototypeHead"]


class SpatialPrototypeHead(nn.Module):
    """Per-position prototype logits of patch tokens, optionally plus one shared lesion prototype.

    Tokens go through an MLP (``nlayers`` linear layers with GELU between them) and are L2-normalised to ``u``.
    Position ``j`` owns a bank ``C_j`` of ``num_prototypes`` vectors; the logits are the cosines
    ``s[b, j, k] = <u[b, j], C_j[k]>`` for all positions at once (one ``torch.einsum``). With ``lesion_prototype``
    (monai-afire's category term; the authors' head has none) a single lesion prototype ``v``, shared by every
    position, adds the logit ``<u[b, j], v>`` at index K.

    Unit norm of the prototypes: the raw parameters ``prototypes`` (L, K, bottleneck) and ``lesion_prototype``
    (bottleneck,) are L2-normalised in every forward pass, so the vectors used are always unit rows and their
    norm is not learnt (the logits and their gradients do not depend on the raw norm; this is weight
    normalisation with the gain fixed at 1). Weight decay on them (the authors decay the banks) only shrinks the
    raw norm, which raises the effective step size of the direction.

    Args:
        in_dim: token width of the encoder.
        num_positions: number of token positions L.
        num_prototypes: prototypes per position K.
        hidden_dim: width of the MLP's hidden layers.
        bottleneck_dim: width of the projected, normalised token and of each prototype.
        nlayers: number of linear layers in the MLP (1 maps ``in_dim`` straight to ``bottleneck_dim``).
        lesion_prototype: add the shared lesion prototype (its parameter is None otherwise).
    """

    def __init__(
        self,
        in_dim: int,
        num_positions: int,
        num_prototypes: int = 256,
        hidden_dim: int = 1024,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        lesion_prototype: bool = False,
    ) -> None:
        super().__init__()
        if min(in_dim, num_positions, num_prototypes, hidden_dim, bottleneck_dim, nlayers) < 1:
            raise ValueError(
                "SpatialPrototypeHead: in_dim, num_positions, num_prototypes, hidden_dim, bottleneck_dim and "
                f"nlayers must be >= 1, got {in_dim}, {num_positions}, {num_prototypes}, {hidden_dim}, "
                f"{bottleneck_dim}, {nlayers}."
            )
        self.num_positions = int(num_positions)
        self.num_prototypes = int(num_prototypes)
        widths = [in_dim] + [hidden_dim] * (nlayers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(w_in, w_out))
            if i < nlayers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, mean=0.0, std=0.02, a=-2.0, b=2.0)
                nn.init.zeros_(m.bias)
        self.prototypes = nn.Parameter(F.normalize(torch.randn(num_positions, num_prototypes, bottleneck_dim), dim=-1))
        self.lesion_prototype: nn.Parameter | None
        if lesion_prototype:
            self.lesion_prototype = nn.Parameter(F.normalize(torch.randn(bottleneck_dim), dim=0))
        else:
            self.register_parameter("lesion_prototype", None)

    @property
    def has_lesion_prototype(self) -> bool:
        """Whether the head has the shared lesion prototype (logit K)."""
        return self.lesion_prototype is not None

    def prototype_vectors(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The unit prototype banks (L, K, bottleneck) and the unit lesion prototype (bottleneck,) used in forward
        (None without a lesion prototype)."""
        lesion = None if self.lesion_prototype is None else F.normalize(self.lesion_prototype, dim=0)
        return F.normalize(self.prototypes, dim=-1), lesion

    def forward(self, tokens: torch.Tensor, with_lesion: bool | None = None) -> torch.Tensor:
        """Score tokens (B, L, in_dim) against their position's prototypes.

        Args:
            tokens: (B, L, in_dim).
            with_lesion: append the lesion logit; None appends it when the head has a lesion prototype.

        Returns:
            logits (B, L, K + 1) with the lesion logit last, or (B, L, K) without it.

        Raises:
            ValueError: on tokens of the wrong shape, or ``with_lesion=True`` on a head without a lesion prototype.
        """
        if tokens.ndim != 3 or tokens.shape[1] != self.num_positions:
            raise ValueError(
                f"SpatialPrototypeHead: expected tokens (B, {self.num_positions}, D), got {tuple(tokens.shape)}."
            )
        if with_lesion and not self.has_lesion_prototype:
            raise ValueError(
                "SpatialPrototypeHead: with_lesion=True, but the head has no lesion prototype (it was built with "
                "lesion_prototype=False, the authors' head; the bundle's afire_plus.json overlay adds it)."
            )
        u = F.normalize(self.mlp(tokens), dim=-1)
        banks, lesion = self.prototype_vectors()
        logits = torch.einsum("bld,lkd->blk", u, banks)
        if lesion is None or with_lesion is False:
            return logits
        return torch.cat([logits, (u @ lesion).unsqueeze(-1)], dim=-1)
