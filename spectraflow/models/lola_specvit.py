"""LoLA-SpecViT: 3D-conv spectral front-end, local window attention, SwiGLU, LoRA-ready.

Zidi et al. 2025, "LoLA-SpecViT: Local attention SwiGLU vision transformer with LoRA for
hyperspectral imaging": spectral-spatial 3D convolutions whose spectral axis is then folded
into channels, transformer blocks with self-attention restricted to local windows and SwiGLU
feed-forward layers, and low-rank adapters (LoRA) on the attention and projection layers so a
pretrained model is fine-tuned from few labels with a small fraction of its parameters. Written
here from the paper's description, as a dense (per-pixel) model.

Fine-tuning: :func:`spectraflow.models.layers.lora.add_lora` with its default targets
(``qkv``, ``proj``) adapts every window-attention layer and leaves ``head`` trainable;
:func:`~spectraflow.models.layers.lora.merge_lora` folds the adapters back for inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spectraflow.errors import BandMismatchError, ConfigError
from spectraflow.models.layers.mlp import SwiGLU

__all__ = ["LoLASpecViT", "WindowAttention"]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``window`` × ``window`` token windows.

    A learned relative-position bias (one value per head and relative offset, as in Swin) is
    added to the attention logits. Input ``[B, nW, N, dim]`` (``N = window²`` tokens per
    window), optional additive ``mask [nW, N, N]``; output of the same shape. The projections
    are ``nn.Linear`` layers named ``qkv`` and ``proj`` so that LoRA can target them.
    """

    rel_index: torch.Tensor

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(
                f"dim {dim} is not divisible by heads {heads}",
                where="dim/heads",
                fix="choose heads dividing dim",
            )
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        yy, xx = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack([yy.flatten(), xx.flatten()])  # [2, N]
        rel = coords[:, :, None] - coords[:, None, :] + window - 1  # [2, N, N], ≥ 0
        self.register_buffer("rel_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, nW, N, dim]`` to ``[B, nW, N, dim]``."""
        b, nw, n, d = x.shape
        qkv = self.qkv(x).reshape(b, nw, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5)  # each [B, nW, heads, N, hd]
        bias = self.rel_bias[self.rel_index].permute(2, 0, 1)  # [heads, N, N]
        if mask is not None:
            bias = bias + mask[:, None]  # [nW, heads, N, N]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, d))


def _to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, D]`` to ``[B, nW, window², D]`` (row-major windows)."""
    b, h, w, d = x.shape
    x = x.reshape(b, h // window, window, w // window, window, d).transpose(2, 3)
    return x.reshape(b, (h // window) * (w // window), window * window, d)


def _from_windows(x: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_to_windows`."""
    b, d = x.shape[0], x.shape[-1]
    x = x.reshape(b, h // window, w // window, window, window, d).transpose(2, 3)
    return x.reshape(b, h, w, d)


def _shift_mask(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """Additive mask ``[nW, N, N]`` that stops tokens rolled across the tile edge from mixing."""
    region = torch.zeros(h, w, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for ys in bounds:
        for xs in bounds:
            region[ys, xs] = label
            label += 1
    r = _to_windows(region[None, :, :, None], window)[0, :, :, 0]  # [nW, N]
    same = r[:, :, None] == r[:, None, :]
    return torch.zeros(same.shape, device=device).masked_fill(~same, float("-inf"))


class _Block(nn.Module):
    """Pre-norm block: (shifted) window attention then SwiGLU, both residual."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, hidden: int) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwiGLU(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, dim]`` tokens to the same shape."""
        _, h, w, _ = x.shape
        # A shift only changes the partition when there is more than one window.
        shift = self.shift if max(h, w) > self.window else 0
        y = self.norm1(x)
        mask = None
        if shift:
            y = torch.roll(y, (-shift, -shift), dims=(1, 2))
            mask = _shift_mask(h, w, self.window, shift, x.device)
        y = _from_windows(self.attn(_to_windows(y, self.window), mask), self.window, h, w)
        if shift:
            y = torch.roll(y, (shift, shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class LoLASpecViT(nn.Module):
    """LoLA-SpecViT as a dense model: ``[B, C, H, W] -> [B, num_classes, H, W]`` logits.

    Architecture: ``front`` = two 3D convolutions over ``[B, 1, C, H, W]`` — kernel 7 × 1 × 1
    (spectral) then 5 × 3 × 3 (spectral-spatial), each with stride 2 along the bands, BatchNorm
    and ReLU — whose ``filters[1]`` × ⌈C/4⌉ outputs are folded into channels; ``embed`` (a
    ``patch`` × ``patch`` strided conv) makes tokens; ``depth`` pre-norm blocks of window
    self-attention (``window`` × ``window`` tokens, learned relative-position bias, windows
    shifted by half a window in every second block) and SwiGLU feed-forward; LayerNorm; a 2×
    bilinear upsampling with a 3 × 3 conv (``up``) when ``patch`` is 2; ``head`` (1 × 1 conv).
    ``in_channels`` is enforced because the folded spectral axis fixes the embedding's width.

    Sizes: the paper reduces the bands to ~15 principal components first, classifies the centre
    pixel of small patches with a hierarchical (multi-stage) transformer and trains with a
    cyclical learning-rate schedule. Here the network reads all bands (no PCA: the 3D front-end
    does the reduction), predicts every pixel, uses one stage at 2 × 2-pixel tokens, width 96,
    depth 4, 4 heads, 8 × 8-token windows (16 × 16 px) — 0.84 M parameters (3.4 MB float32) for
    224 bands, 0.94 M for 285, so it trains on 2 CPU cores in minutes; with rank-4 LoRA on
    ``qkv``/``proj`` about 1 % of them (LoRA factors and ``head``) are trainable. Training
    schedules live in the trainer, not here.

    Parameters
    ----------
    in_channels
        Number of input bands (enforced).
    num_classes
        Number of output classes.
    dim, depth, heads
        Token width, number of blocks and attention heads.
    window
        Window side in tokens.
    patch
        Token side in pixels: 1 (pixel tokens) or 2.
    mlp_ratio
        SwiGLU hidden width ÷ ``dim``.
    filters
        Filters of the two 3D convolutions.
    shifted
        Whether every second block shifts its windows (Swin-style) so windows exchange context.
    """

    size_multiple: int = 16  # patch (2) × window (8) at the defaults; instances set their own
    wavelength_conditioned: bool = False
    receptive_field_px: int = 123  # at the defaults; see ``_receptive_field``

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        dim: int = 96,
        depth: int = 4,
        heads: int = 4,
        window: int = 8,
        patch: int = 2,
        mlp_ratio: float = 8 / 3,
        filters: tuple[int, int] = (8, 16),
        shifted: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1 or patch not in (1, 2) or window < 2:
            raise ConfigError(
                f"invalid sizes in_channels={in_channels}, num_classes={num_classes}, "
                f"patch={patch}, window={window}",
                where="LoLASpecViT",
                fix="use ≥ 1 bands and classes, patch 1 or 2, window ≥ 2",
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.patch = patch
        self.size_multiple = patch * window
        self.receptive_field_px = _receptive_field(depth, window, patch, shifted)
        f1, f2 = filters
        self.front = nn.Sequential(
            nn.Conv3d(1, f1, (7, 1, 1), stride=(2, 1, 1), padding=(3, 0, 0), bias=False),
            nn.BatchNorm3d(f1),
            nn.ReLU(inplace=True),
            nn.Conv3d(f1, f2, (5, 3, 3), stride=(2, 1, 1), padding=(2, 1, 1), bias=False),
            nn.BatchNorm3d(f2),
            nn.ReLU(inplace=True),
        )
        bands_out = _strided(_strided(in_channels, 7, 2), 5, 2)
        self.embed = nn.Conv2d(f2 * bands_out, dim, patch, stride=patch)
        hidden = round(dim * mlp_ratio)
        shifts = [window // 2 if shifted and i % 2 else 0 for i in range(depth)]
        self.blocks = nn.ModuleList(_Block(dim, heads, window, s, hidden) for s in shifts)
        self.norm = nn.LayerNorm(dim)
        self.up: nn.Module = nn.Identity()
        width = dim
        if patch == 2:
            width = dim // 2
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(dim, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.GELU(),
            )
        self.head = nn.Conv2d(width, num_classes, 1)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W]`` inputs to ``[B, num_classes, H, W]`` logits."""
        if x.ndim != 4 or x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ConfigError(
                f"input of shape {tuple(x.shape)} is not [B, C, H, W] with H and W "
                f"multiples of {self.size_multiple}",
                where="x",
                fix=f"pad H and W to a multiple of {self.size_multiple}",
            )
        if x.shape[1] != self.in_channels:
            raise BandMismatchError(
                f"input has {x.shape[1]} bands, the model was built for {self.in_channels}",
                where="x",
                fix="select the bands the model was trained on",
            )
        y = self.front(x.unsqueeze(1))  # [B, F, C', H, W]
        y = self.embed(y.flatten(1, 2))  # [B, dim, H/p, W/p]
        t = y.permute(0, 2, 3, 1)  # [B, h, w, dim]
        for block in self.blocks:
            t = block(t)
        return self.head(self.up(self.norm(t).permute(0, 3, 1, 2)))


def _strided(n: int, kernel: int, stride: int) -> int:
    """Length after a convolution padded by ``kernel // 2``."""
    return (n + 2 * (kernel // 2) - kernel) // stride + 1


def _receptive_field(depth: int, window: int, patch: int, shifted: bool) -> int:
    """Upper bound of the spatial extent (px) that influences one output pixel.

    A token reaches at most ``window - 1`` tokens further per block whose partition differs from
    the previous one (every block when shifted, otherwise only the first); a token spans
    ``patch`` pixels, the 3 × 3 front-end convolution adds one pixel, and with 2-px tokens the
    bilinear upsampling reads the neighbouring token and its 3 × 3 convolution one more pixel.
    """
    reach_tokens = (window - 1) * (depth if shifted else min(depth, 1))
    radius = reach_tokens * patch + (patch - 1) + 1 + (patch + 1 if patch == 2 else 0)
    return 2 * radius + 1
