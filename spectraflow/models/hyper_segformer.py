"""HyperSegFormer: SegFormer with the HyperspectralViTs changes, for plume segmentation.

SegFormer (Xie et al. 2021, "SegFormer: Simple and efficient design for semantic segmentation
with transformers") is a Mix Transformer (MiT) encoder of four stages, each an overlapping
patch embedding (a strided convolution and LayerNorm) followed by transformer blocks whose
attention shrinks keys and values by a spatial-reduction ratio (a strided convolution) and whose
feed-forward network mixes positions with a 3 × 3 depthwise convolution (Mix-FFN, which replaces
positional encodings); an all-MLP decoder projects every stage to one width, upsamples them to
the first stage's grid, concatenates and fuses them.

HyperspectralViTs (Růžička & Markham 2024/2025, "HyperspectralViTs: General hyperspectral
models for on-board remote sensing", IEEE JSTARS) adapts it to hundreds of bands and small
plumes:

1. a 1 × 1 "spectral" convolution before each stage's patch embedding (the first one mixes the
   raw bands before any spatial filtering);
2. a first stage of stride 2 instead of 4, so the finest features keep twice the resolution;
3. a learned 2× upscaling block after the decoder, so the logits come out at full input
   resolution instead of being interpolated from a coarse grid.

The attention projections are ``nn.Linear`` layers named ``q``, ``kv`` and ``proj`` (separate
``q`` and ``kv`` because keys and values come from the spatially reduced grid); LoRA adapts
them with ``add_lora(model, targets=("q", "kv", "proj"))``. The classifier is ``head``.

:class:`UpscaleBlock` and :func:`check_input` are shared with
:mod:`spectraflow.models.hyper_efficientvit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spectraflow.errors import BandMismatchError, ConfigError

__all__ = ["EfficientSelfAttention", "HyperSegFormer", "MixFFN", "UpscaleBlock", "check_input"]


def check_input(x: torch.Tensor, *, in_channels: int, size_multiple: int, model: str) -> None:
    """Raise a clear error unless ``x`` is ``[B, in_channels, H, W]`` with H, W multiples.

    Raises
    ------
    BandMismatchError
        ``x`` is not 4-D or has the wrong number of bands.
    ConfigError
        H or W is not a multiple of ``size_multiple``.
    """
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise BandMismatchError(
            f"{model} expects a [B, {in_channels}, H, W] tensor, got shape {tuple(x.shape)}",
            where="x",
            fix=f"pass the {in_channels} bands the model was built for, as [B, C, H, W]",
        )
    h, w = x.shape[-2:]
    if h % size_multiple or w % size_multiple:
        raise ConfigError(
            f"{model} needs H and W to be multiples of {size_multiple}, got {h} × {w}",
            where="x",
            fix=f"pad the tile to a multiple of {size_multiple} (model.size_multiple)",
        )


class UpscaleBlock(nn.Module):
    """Learned 2× upsampling: transposed conv (k 2, s 2), then a 3 × 3 conv; BN and ReLU after each.

    The transposed convolution places a learned 2 × 2 pattern per input pixel; the 3 × 3
    convolution then smooths the seams and sharpens edges at the new resolution.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, H, W]`` to ``[B, C_out, 2H, 2W]``."""
        x = F.relu(self.norm1(self.up(x)))
        return F.relu(self.norm2(self.conv(x)))


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values come from a grid shrunk ``sr_ratio`` times.

    ``[B, N, dim]`` tokens on an ``h × w`` grid to ``[B, N, dim]``. The reduction is a
    ``sr_ratio × sr_ratio`` convolution of stride ``sr_ratio`` and a LayerNorm, so the cost is
    ``N · N / sr_ratio²`` instead of ``N²``.
    """

    def __init__(self, dim: int, heads: int, *, sr_ratio: int = 1, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(
                f"width {dim} is not divisible by {heads} heads",
                where="widths/heads",
                fix="choose widths that are multiples of the head counts",
            )
        self.heads = heads
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.sr_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Attend from every token to the reduced grid."""
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q(x).reshape(b, n, self.heads, hd).transpose(1, 2)
        if self.sr_ratio > 1:
            grid = x.transpose(1, 2).reshape(b, d, h, w)
            x = self.sr_norm(self.sr(grid).flatten(2).transpose(1, 2))
        kv = self.kv(x).reshape(b, -1, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MixFFN(nn.Module):
    """``fc2(GELU(dwconv3×3(fc1(x))))``: the depthwise conv gives tokens their position."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``[B, N, dim]`` tokens on an ``h × w`` grid to ``[B, N, dim]``."""
        x = self.fc1(x)
        b, _, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class _Block(nn.Module):
    """Pre-norm transformer block: efficient attention and Mix-FFN, both residual."""

    def __init__(self, dim: int, heads: int, *, sr_ratio: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EfficientSelfAttention(dim, heads, sr_ratio=sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class _Stage(nn.Module):
    """Spectral 1 × 1 conv (optional), overlapping patch embedding, blocks, LayerNorm."""

    def __init__(
        self,
        in_dim: int,
        dim: int,
        *,
        depth: int,
        heads: int,
        sr_ratio: int,
        mlp_ratio: float,
        patch: int,
        stride: int,
        spectral_conv: bool,
    ) -> None:
        super().__init__()
        self.spectral = nn.Conv2d(in_dim, in_dim, 1) if spectral_conv else nn.Identity()
        self.patch_embed = nn.Conv2d(in_dim, dim, patch, stride=stride, padding=patch // 2)
        self.embed_norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            _Block(dim, heads, sr_ratio=sr_ratio, mlp_ratio=mlp_ratio) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_dim, H, W]`` to ``[B, dim, H / stride, W / stride]``."""
        x = self.patch_embed(self.spectral(x))
        b, d, h, w = x.shape
        t = self.embed_norm(x.flatten(2).transpose(1, 2))
        for block in self.blocks:
            t = block(t, h, w)
        return self.norm(t).transpose(1, 2).reshape(b, d, h, w)


class HyperSegFormer(nn.Module):
    """SegFormer (MiT encoder + all-MLP decoder) with the HyperspectralViTs changes.

    ``forward(x: [B, in_channels, H, W]) -> [B, num_classes, H, W]`` per-pixel logits; H and W
    must be multiples of :attr:`size_multiple`.

    Sizes. The paper uses SegFormer-b0: widths 32/64/160/256, depths 2/2/2/2, heads 1/2/5/8,
    spatial-reduction ratios 8/4/2/1, MLP ratio 4, decoder width 256; built here at that size
    with 87 bands and a 128-wide upscaling block it has 4.16 M parameters (16.7 MB in float32).
    The defaults halve the stage widths (16/32/80/128, same heads, so 16 channels per head),
    shrink the decoder to 64 and the upscaling block to 32, and keep the depths, reduction
    ratios and MLP ratio: 0.98 M parameters with 87 bands (3.9 MB), so that a model trains on
    two CPU cores in minutes. Pass ``widths=(32, 64, 160, 256), decoder_dim=256,
    upscale_dim=128`` for the paper's size.

    Parameters
    ----------
    in_channels
        Input bands (e.g. 86 selected EMIT bands, 87 with the matched-filter channel).
    num_classes
        Output classes (2 for plume / background).
    widths, depths, heads, sr_ratios
        Per-stage token width, number of blocks, attention heads and spatial-reduction ratio.
    mlp_ratio
        Mix-FFN hidden width as a multiple of the stage width.
    decoder_dim
        Width of the all-MLP decoder.
    upscale_dim
        Width after the 2× upscaling block (the classifier's input).
    dropout
        Dropout before the upscaling block (SegFormer uses 0.1).
    first_stride
        Stride of the first patch embedding: 2 (HyperspectralViTs) or 4 (SegFormer).
    spectral_convs
        Whether to put a 1 × 1 convolution before each stage (HyperspectralViTs).
    upscale
        Whether to end with the learned 2× upscaling block (HyperspectralViTs); without it the
        logits are bilinearly interpolated to full resolution as in SegFormer.
    """

    wavelength_conditioned = False
    #: Default total downsampling: stride 16 at the last stage, and the first stage's 8 × 8 key
    #: reduction needs its (H/2)-grid to be a multiple of 8. Instances with ``first_stride=4``
    #: set 32 on themselves.
    size_multiple: int = 16
    #: Attention is global over the tile (every stage's queries see the whole reduced grid),
    #: so there is no finite receptive field; 64 px is the tile edge the defaults are trained
    #: on, i.e. the tiler adds a 32-px halo.
    receptive_field_px: int = 64

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        widths: Sequence[int] = (16, 32, 80, 128),
        depths: Sequence[int] = (2, 2, 2, 2),
        heads: Sequence[int] = (1, 2, 5, 8),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        mlp_ratio: float = 4.0,
        decoder_dim: int = 64,
        upscale_dim: int = 32,
        dropout: float = 0.1,
        first_stride: int = 2,
        spectral_convs: bool = True,
        upscale: bool = True,
    ) -> None:
        super().__init__()
        if not len(widths) == len(depths) == len(heads) == len(sr_ratios):
            raise ConfigError(
                "widths, depths, heads and sr_ratios differ in length",
                where="HyperSegFormer",
                fix="give one value per stage in each",
            )
        if first_stride not in (2, 4):
            raise ConfigError(
                f"first_stride must be 2 or 4, got {first_stride}",
                where="first_stride",
                fix="use 2 (HyperspectralViTs) or 4 (SegFormer)",
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        strides = [first_stride] + [2] * (len(widths) - 1)
        dims = [in_channels, *widths]
        self.stages = nn.ModuleList(
            _Stage(
                dims[i],
                dims[i + 1],
                depth=depths[i],
                heads=heads[i],
                sr_ratio=sr_ratios[i],
                mlp_ratio=mlp_ratio,
                patch=7 if i == 0 else 3,
                stride=strides[i],
                spectral_conv=spectral_convs,
            )
            for i in range(len(widths))
        )
        cumulative = [math.prod(strides[: i + 1]) for i in range(len(strides))]
        needs = [c * r for c, r in zip(cumulative, sr_ratios, strict=True)] + [cumulative[-1]]
        self.size_multiple = math.lcm(*needs)
        # All-MLP decoder: one linear per stage to decoder_dim, fused by a 1 × 1 conv.
        self.decoder_linears = nn.ModuleList(nn.Linear(w, decoder_dim) for w in widths)
        self.fuse = nn.Sequential(
            nn.Conv2d(len(widths) * decoder_dim, decoder_dim, 1, bias=False),
            nn.BatchNorm2d(decoder_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.upscale: nn.Module = (
            UpscaleBlock(decoder_dim, upscale_dim) if upscale else nn.Identity()
        )
        self.head = nn.Conv2d(upscale_dim if upscale else decoder_dim, num_classes, 1)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W]`` to ``[B, num_classes, H, W]`` logits."""
        check_input(
            x,
            in_channels=self.in_channels,
            size_multiple=self.size_multiple,
            model="HyperSegFormer",
        )
        size = x.shape[-2:]
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        grid = features[0].shape[-2:]
        decoded = []
        for feature, linear in zip(features, self.decoder_linears, strict=True):
            y = linear(feature.flatten(2).transpose(1, 2)).transpose(1, 2)
            y = y.reshape(y.shape[0], y.shape[1], *feature.shape[-2:])
            if y.shape[-2:] != grid:
                y = F.interpolate(y, size=grid, mode="bilinear", align_corners=False)
            decoded.append(y)
        # SegFormer concatenates coarsest first; the order only permutes the fuse weights.
        y = self.fuse(torch.cat(decoded[::-1], dim=1))
        y = self.head(self.upscale(self.dropout(y)))
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


def _init_weights(module: nn.Module) -> None:
    # SegFormer's initialisation: truncated normal (std 0.02) linears, fan-out normal convs.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, std=math.sqrt(2.0 / (fan_out // module.groups)))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
