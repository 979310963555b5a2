"""Hierarchical attention with carrier tokens, after FasterViT (Hatamizadeh et al. 2024).

FasterViT's hierarchical attention (HAT) keeps window attention's linear cost on large token
grids and still lets every token see the whole grid. Each ``window × window`` window of the grid
is summarised by a few *carrier tokens*, initialised by average-pooling the window. One block:

1. adds a depth-wise 3 × 3 convolution of the map (a conditional position encoding, so the
   block is translation-equivariant and works on any grid size);
2. lets all carrier tokens of the map attend to each other (global, but cheap: one token per
   ``window² / carriers_per_window`` grid cells);
3. lets each window's tokens attend jointly with that window's carrier tokens (local detail plus
   the global summary the carriers now hold);
4. propagates the carriers back: the update the carriers received in 2–3 is upsampled to the
   pixels they summarise and added to the window tokens. Only the update is added, not the
   carrier itself, whose pooled part is already in the tokens.

The paper keeps carrier tokens across the blocks of a stage and merges them at the stage end;
here each block re-initialises them so that the block maps a ``[B, dim, H, W]`` map to the
same shape and stacks like any other layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spectraflow.errors import ConfigError
from spectraflow.models.layers.attention import SelfAttention
from spectraflow.models.layers.mlp import Mlp

__all__ = ["HierarchicalAttentionBlock"]


class HierarchicalAttentionBlock(nn.Module):
    """Window attention plus global carrier-token attention: ``[B, dim, H, W]`` to the same.

    Parameters
    ----------
    dim
        Channel (token) width; divisible by ``heads``.
    heads
        Attention heads of both the carrier and the window attention.
    window
        Side of the square windows in grid cells; ``H`` and ``W`` must be multiples of it.
    carriers_per_window
        Carrier tokens per window: a square number ``k²`` whose root ``k`` divides ``window``
        (each carrier summarises a ``window/k``-sided sub-window).
    mlp_ratio
        Hidden width of the feed-forward blocks relative to ``dim``.

    Notes
    -----
    Linear layers are named ``qkv``/``proj`` (attention) and ``fc1``/``fc2`` (feed-forward), so
    :func:`~spectraflow.models.layers.lora.add_lora` can adapt them; the carrier path lives in
    ``carrier_attn``/``carrier_mlp``, the window path in ``attn``/``mlp``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        window: int = 8,
        carriers_per_window: int = 1,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if window < 1:
            raise ConfigError(
                f"window={window} is not positive", where="window", fix="use e.g. window=8"
            )
        k = math.isqrt(max(carriers_per_window, 0))
        if carriers_per_window < 1 or k * k != carriers_per_window or window % k:
            raise ConfigError(
                f"carriers_per_window={carriers_per_window} is not a square k² with k dividing "
                f"window={window}",
                where="carriers_per_window",
                fix="use 1, 4 (window even), 16 (window divisible by 4), …",
            )
        hidden = max(1, round(dim * mlp_ratio))
        self.window = window
        self.carrier_side = k
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.carrier_norm1 = nn.LayerNorm(dim)
        self.carrier_attn = SelfAttention(dim, heads)
        self.carrier_norm2 = nn.LayerNorm(dim)
        self.carrier_mlp = Mlp(dim, hidden)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, dim, H, W]`` (``H``, ``W`` multiples of ``window``) to the same shape."""
        b, d, h, w = x.shape
        win, k = self.window, self.carrier_side
        if h % win or w % win:
            raise ConfigError(
                f"feature map {h} × {w} is not a multiple of the window {win}",
                where="x",
                fix=f"pad the map to a multiple of {win}",
            )
        nh, nw = h // win, w // win
        x = x + self.pos(x)

        # Carriers: k × k per window, each the mean of a (win/k)-sided sub-window.
        init = F.avg_pool2d(x, win // k)  # [B, D, nh*k, nw*k]
        ct = init.flatten(2).transpose(1, 2)  # [B, nh*k*nw*k, D], all carriers of the map
        ct = ct + self.carrier_attn(self.carrier_norm1(ct))
        ct = ct + self.carrier_mlp(self.carrier_norm2(ct))

        # Per window: its k² carriers followed by its win² tokens.
        carriers = _windows(ct.transpose(1, 2).reshape(b, d, nh * k, nw * k), k)
        tokens = _windows(x, win)
        joint = torch.cat([carriers, tokens], dim=1)
        joint = joint + self.attn(self.norm1(joint))
        joint = joint + self.mlp(self.norm2(joint))
        carriers, tokens = joint[:, : k * k], joint[:, k * k :]

        out = _unwindows(tokens, b, nh, nw, win)
        update = _unwindows(carriers, b, nh, nw, k) - init
        # Each carrier's update goes to the (win/k)-sided sub-window it summarised.
        return out + update.repeat_interleave(win // k, dim=2).repeat_interleave(win // k, dim=3)


def _windows(x: torch.Tensor, side: int) -> torch.Tensor:
    """``[B, D, nh*side, nw*side]`` to ``[B*nh*nw, side², D]`` (row-major windows)."""
    b, d, h, w = x.shape
    nh, nw = h // side, w // side
    x = x.reshape(b, d, nh, side, nw, side).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b * nh * nw, side * side, d)


def _unwindows(x: torch.Tensor, b: int, nh: int, nw: int, side: int) -> torch.Tensor:
    """Inverse of :func:`_windows`: ``[B*nh*nw, side², D]`` to ``[B, D, nh*side, nw*side]``."""
    d = x.shape[-1]
    x = x.reshape(b, nh, nw, side, side, d).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, d, nh * side, nw * side)
