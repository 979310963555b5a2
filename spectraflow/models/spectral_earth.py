"""SpectralEarth spectral adapter + ViT/4 for land-cover segmentation (any number of bands).

Braham et al. 2024, "SpectralEarth: Training hyperspectral foundation models at scale", put a
*spectral adapter* in front of a standard vision backbone so that one backbone reads EnMAP's
224 bands (or any other band count): spectral-only 3D convolutions (kernels k × 1 × 1 along the
band axis) with BatchNorm, ReLU and pooling along the band axis, then an adaptive pooling to a
fixed channel count. A ViT with 4 × 4-pixel tokens reads those channels. Written here from the
paper's description; the decoder is our own light choice for dense prediction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spectraflow.errors import ConfigError
from spectraflow.models.layers.transformer import TransformerBlock

__all__ = ["SpectralAdapter", "SpectralEarthViT"]

_PATCH = 4  # ViT-S/4: the "/4" is the token size, kept from the paper


class _BandMaxPool(nn.Module):
    """2× max pooling along the band axis of ``[B, F, C, H, W]`` (ceil mode: C=1 stays 1).

    Same result as ``nn.MaxPool3d((2, 1, 1), ceil_mode=True)``, about 10× faster on CPU, where
    the 3D pooling kernel dominated the whole forward pass.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] % 2:
            x = torch.cat([x, x[:, :, -1:]], dim=2)
        return torch.maximum(x[:, :, 0::2], x[:, :, 1::2])


class SpectralAdapter(nn.Module):
    """Band-count-agnostic spectral adapter: ``[B, C, H, W] -> [B, channels, H, W]``.

    Three spectral-only 3D convolutions (kernels 7, 5, 3 along the band axis — our choice of
    lengths — and ``1 × 1`` in space), each followed by BatchNorm, ReLU and a 2× max pooling
    along the band axis; then an adaptive average pooling of the band axis to
    ``channels // filters[-1]`` bins, whose filters × bins are the output channels. No spatial
    mixing happens here.

    Parameters
    ----------
    channels
        Output channel count (the paper uses 128); must be divisible by ``filters[-1]``.
    filters
        Filters of the three 3D convolutions.
    """

    def __init__(self, *, channels: int = 128, filters: tuple[int, int, int] = (8, 16, 16)) -> None:
        super().__init__()
        if len(filters) != 3 or channels % filters[-1]:
            raise ConfigError(
                f"channels {channels} is not divisible by the last of filters {filters}",
                where="filters",
                fix="give three filter counts whose last divides channels",
            )
        layers: list[nn.Module] = []
        c_in = 1
        for kernel, c_out in zip((7, 5, 3), filters, strict=True):
            layers += [
                nn.Conv3d(c_in, c_out, (kernel, 1, 1), padding=(kernel // 2, 0, 0), bias=False),
                nn.BatchNorm3d(c_out),
                nn.ReLU(inplace=True),
                _BandMaxPool(),
            ]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.bins = channels // filters[-1]
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` (any C ≥ 1) to ``[B, channels, H, W]``."""
        b, _, h, w = x.shape
        y = self.convs(x.unsqueeze(1))  # [B, F, C', H, W]
        y = F.adaptive_avg_pool3d(y, (self.bins, h, w))
        return y.reshape(b, self.channels, h, w)


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SpectralEarthViT(nn.Module):
    """SpectralEarth spectral adapter + ViT/4 + a light upsampling decoder (dense logits).

    ``forward(x: [B, C, H, W]) -> [B, num_classes, H, W]`` with H and W multiples of 4. The
    adapter makes the network band-count agnostic: a model built for EnMAP's 224 bands also
    runs on 48 or 285 bands (``in_channels`` is recorded, not enforced).

    Architecture: spectral adapter (:class:`SpectralAdapter`) → 4 × 4 patch embedding
    (``patch_embed``) → learnable position embeddings for a ``pos_grid`` × ``pos_grid`` token
    grid, bilinearly interpolated to the actual grid → ``depth`` pre-norm blocks
    (:class:`~spectraflow.models.layers.attention.SelfAttention` with ``qkv``/``proj``,
    :class:`~spectraflow.models.layers.mlp.Mlp`) → LayerNorm → tokens reshaped to a grid → two
    (bilinear 2× upsampling, 3 × 3 conv, BN, ReLU) stages back to full resolution, plus a 1 × 1
    projection of the adapter output added at full resolution (sharp class boundaries
    despite 4 × 4 tokens) → ``head`` (1 × 1 conv to the classes).

    Sizes: the paper's ViT-S/4 has width 384, depth 12, 6 heads (≈ 21.3 M parameters in its
    blocks, ≈ 85 MB float32) behind a 128-channel adapter, on 128 × 128-px patches. Scaled down
    here by default to width 128, depth 4, 4 heads, adapter filters (8, 16, 16), no class token
    (≈ 1.19 M parameters, ≈ 4.7 MB float32, for any band count) so it trains on 2 CPU cores in
    minutes; pass ``dim=384, depth=12, heads=6`` for the paper's backbone.

    Parameters
    ----------
    in_channels
        Number of input bands the model is meant for (recorded; any count is accepted).
    num_classes
        Number of output classes.
    dim, depth, heads, mlp_ratio
        ViT width, number of blocks, attention heads, MLP hidden width ÷ ``dim``.
    adapter_channels, adapter_filters
        Output channels and 3D-convolution filters of the spectral adapter.
    pos_grid
        Side of the learned position-embedding grid, in tokens (16 tokens = 64 px tiles).
    decoder_channels
        Widths of the two upsampling stages.
    """

    size_multiple: int = _PATCH
    wavelength_conditioned: bool = False
    # Global attention: every output pixel sees the whole tile. The position embeddings are
    # learned on a 16 × 16 token grid, i.e. 64-px tiles, the tile size it is designed for.
    receptive_field_px: int = 64

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        adapter_channels: int = 128,
        adapter_filters: tuple[int, int, int] = (8, 16, 16),
        pos_grid: int = 16,
        decoder_channels: tuple[int, int] = (64, 32),
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ConfigError(
                f"in_channels {in_channels} and num_classes {num_classes} must be ≥ 1",
                where="in_channels/num_classes",
                fix="pass positive band and class counts",
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.adapter = SpectralAdapter(channels=adapter_channels, filters=adapter_filters)
        self.patch_embed = nn.Conv2d(adapter_channels, dim, _PATCH, stride=_PATCH)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, pos_grid, pos_grid))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        c1, c2 = decoder_channels
        self.decoder = nn.Sequential(_up_block(dim, c1), _up_block(c1, c2))
        self.skip = nn.Sequential(
            nn.Conv2d(adapter_channels, c2, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU()
        )
        self.head = nn.Conv2d(c2, num_classes, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # patch embedding initialised like a linear layer over the flattened patch (as in ViT)
        w = self.patch_embed.weight
        nn.init.trunc_normal_(w, std=1.0 / math.sqrt(w[0].numel()))

    def _pos(self, gh: int, gw: int) -> torch.Tensor:
        pos: torch.Tensor = self.pos_embed
        if pos.shape[-2:] != (gh, gw):
            pos = F.interpolate(pos, size=(gh, gw), mode="bilinear", align_corners=False)
        return pos.flatten(2).transpose(1, 2)  # [1, gh·gw, dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` reflectance-like inputs to ``[B, num_classes, H, W]`` logits."""
        if x.ndim != 4 or x.shape[-2] % _PATCH or x.shape[-1] % _PATCH:
            raise ConfigError(
                f"input of shape {tuple(x.shape)} is not [B, C, H, W] with H and W "
                f"multiples of {_PATCH}",
                where="x",
                fix=f"pad H and W to a multiple of {self.size_multiple}",
            )
        b = x.shape[0]
        feats = self.adapter(x)  # [B, A, H, W]
        tokens = self.patch_embed(feats)  # [B, D, H/4, W/4]
        gh, gw = tokens.shape[-2:]
        t = tokens.flatten(2).transpose(1, 2) + self._pos(gh, gw)
        for block in self.blocks:
            t = block(t)
        grid = self.norm(t).transpose(1, 2).reshape(b, -1, gh, gw)
        y = self.decoder(grid) + self.skip(feats)
        return self.head(y)
