"""The pre-norm transformer block shared by the ViT backbones."""

from __future__ import annotations

import torch
from torch import nn

from spectraflow.models.layers.attention import SelfAttention
from spectraflow.models.layers.mlp import Mlp

__all__ = ["TransformerBlock"]


class TransformerBlock(nn.Module):
    """``x + attn(norm1(x))``, then ``+ mlp(norm2(x))``, on ``[B, N, dim]`` tokens.

    The MLP's hidden width is ``dim × mlp_ratio`` (rounded, at least 1).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, max(1, round(dim * mlp_ratio)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, dim]`` tokens to ``[B, N, dim]``."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
