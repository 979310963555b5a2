"""Multi-head self-attention over token sequences.

The query/key/value and output projections are plain ``nn.Linear`` layers named ``qkv`` and
``proj`` so that :func:`spectraflow.models.layers.lora.add_lora` can adapt them by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SelfAttention"]


class SelfAttention(nn.Module):
    """Multi-head self-attention: ``[B, N, dim] -> [B, N, dim]``.

    Parameters
    ----------
    dim
        Token width; must be divisible by ``heads``.
    heads
        Number of attention heads.
    qkv_bias
        Whether the query/key/value projection has a bias.
    """

    def __init__(self, dim: int, heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, dim]`` tokens to ``[B, N, dim]``."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # Fused kernel: flash/memory-efficient attention on GPU, a fused CPU kernel otherwise.
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))
