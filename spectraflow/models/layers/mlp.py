"""Token-wise feed-forward blocks: the transformer MLP and SwiGLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Mlp", "SwiGLU"]


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``: the standard transformer feed-forward block."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applied to the last dimension."""
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """``w3(SiLU(a) * b)`` with ``a, b = w12(x)`` (Shazeer 2020, "GLU variants")."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applied to the last dimension."""
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)
