"""The network inside the wrappers that training adds (DistributedDataParallel, DataParallel, ``torch.compile``)."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["unwrap_model"]


def unwrap_model(network: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel/DataParallel or ``torch.compile`` wrappers (any nesting)."""
    while True:
        if isinstance(network, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            network = network.module
        elif hasattr(network, "_orig_mod"):
            network = network._orig_mod
        else:
            return network
