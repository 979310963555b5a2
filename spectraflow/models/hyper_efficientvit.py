"""HyperEfficientViT: EfficientViT with the HyperspectralViTs changes, for plume segmentation.

EfficientViT (Cai et al. 2023, "EfficientViT: Lightweight multi-scale attention for
high-resolution dense prediction") is a convolutional stem, two stages of MBConv blocks
(inverted residuals: 1 × 1 expand, 3 × 3 depthwise, 1 × 1 project) and two stages of
EfficientViT modules. A module is a *context* part, lightweight multi-scale attention (LiteMLA:
q/k/v from one projection, a second copy of them aggregated over 5 × 5 neighbourhoods by small
depthwise + grouped 1 × 1 convolutions, and ReLU-kernel linear attention, whose cost is linear
in the number of pixels, on both copies), and a *local* part, an MBConv. The segmentation head
projects the last three stages to one width, upsamples and adds them, refines them with MBConvs
and classifies.

HyperspectralViTs (Růžička & Markham 2024/2025, "HyperspectralViTs: General hyperspectral
models for on-board remote sensing", IEEE JSTARS) adds

1. a 1 × 1 "spectral" convolution before the stem and before each stage;
2. a first stage of total stride 2 instead of 4 (here the first MBConv stage keeps the stem's
   resolution), so every later stage and the head work at twice the resolution;
3. a learned 2× upscaling block between the head's features and the classifier.

The head therefore works at 1/4 of the input resolution (EfficientViT: 1/8); the upscaling
block brings it to 1/2 and the logits are interpolated bilinearly for the last factor of 2.

The attention projections are ``nn.Linear`` layers named ``qkv`` and ``proj`` (applied over
the channel axis, i.e. the 1 × 1 convolutions of the paper), so the default
``add_lora(model)`` targets apply. The classifier is ``head``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spectraflow.errors import ConfigError
from spectraflow.models.hyper_segformer import UpscaleBlock, check_input

__all__ = ["HyperEfficientViT", "LiteMLA", "MBConv"]


def _conv_bn(
    cin: int, cout: int, kernel: int = 1, *, stride: int = 1, groups: int = 1
) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    )


class MBConv(nn.Module):
    """Inverted residual: 1 × 1 expand, 3 × 3 depthwise (with ``stride``), 1 × 1 project.

    Hardswish after the first two, BatchNorm after each; with ``fewer_norm`` (used where an
    MBConv opens an attention stage) the first two take a bias instead of a norm.
    """

    def __init__(
        self, cin: int, cout: int, *, stride: int = 1, expand: float = 4.0, fewer_norm: bool = False
    ) -> None:
        super().__init__()
        mid = round(cin * expand)
        self.expand = nn.Conv2d(cin, mid, 1, bias=fewer_norm)
        self.norm1: nn.Module = nn.Identity() if fewer_norm else nn.BatchNorm2d(mid)
        self.depthwise = nn.Conv2d(
            mid, mid, 3, stride=stride, padding=1, groups=mid, bias=fewer_norm
        )
        self.norm2: nn.Module = nn.Identity() if fewer_norm else nn.BatchNorm2d(mid)
        self.project = _conv_bn(mid, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, cin, H, W]`` to ``[B, cout, H / stride, W / stride]``."""
        x = F.hardswish(self.norm1(self.expand(x)))
        x = F.hardswish(self.norm2(self.depthwise(x)))
        return self.project(x)


class _DSConv(nn.Module):
    """Depthwise-separable conv of the stem: 3 × 3 depthwise + BN + hardswish, 1 × 1 + BN."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.depthwise = _conv_bn(dim, dim, 3, groups=dim)
        self.pointwise = _conv_bn(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(F.hardswish(self.depthwise(x)))


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LiteMLA(nn.Module):
    """Lightweight multi-scale ReLU linear attention: ``[B, dim, H, W] -> [B, dim, H, W]``.

    ``qkv`` (a linear over channels) gives ``heads`` q/k/v triples of ``head_dim`` channels;
    for each of ``scales`` a 5 × 5 depthwise conv and a grouped 1 × 1 conv (one group per
    q, k or v of a head) aggregate them over a neighbourhood into more heads. Each head then
    computes ``relu(q) (relu(k)ᵀ v) / (relu(q) Σ relu(k))``, global and linear in pixels; the
    heads are concatenated and ``proj`` (a linear over channels, then BatchNorm) maps back.
    """

    def __init__(self, dim: int, *, head_dim: int = 16, scales: Sequence[int] = (5,)) -> None:
        super().__init__()
        self.heads = max(dim // head_dim, 1)
        self.head_dim = head_dim
        total = self.heads * head_dim
        self.qkv = nn.Linear(dim, 3 * total, bias=False)
        self.aggregate = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * total, 3 * total, s, padding=s // 2, groups=3 * total, bias=False),
                nn.Conv2d(3 * total, 3 * total, 1, groups=3 * self.heads, bias=False),
            )
            for s in scales
        )
        self.proj = nn.Linear(total * (1 + len(scales)), dim, bias=False)
        self.proj_norm = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, dim, H, W]`` to ``[B, dim, H, W]``."""
        b, _, h, w = x.shape
        qkv = self.qkv(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        multi = torch.cat([qkv, *(agg(qkv) for agg in self.aggregate)], dim=1)
        # [B, heads', 3 · head_dim, N] → q, k, v of [B, heads', N, head_dim]
        multi = multi.reshape(b, -1, 3 * self.head_dim, h * w).transpose(-1, -2)
        # float32 even under autocast: the normaliser sums N products and can be tiny.
        with torch.autocast(device_type=x.device.type, enabled=False):
            q, k, v = multi.float().chunk(3, dim=-1)
            q, k = F.relu(q), F.relu(k)
            kv = k.transpose(-1, -2) @ v  # [B, heads', d, d]
            numerator = q @ kv
            denominator = q @ k.sum(dim=-2, keepdim=True).transpose(-1, -2)
            out = (numerator / (denominator + 1e-15)).to(x.dtype)
        out = out.transpose(-1, -2).reshape(b, -1, h, w)
        out = self.proj(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.proj_norm(out)


class _EfficientViTBlock(nn.Module):
    """Context (LiteMLA) then local (MBConv) mixing, both residual."""

    def __init__(self, dim: int, *, head_dim: int, expand: float) -> None:
        super().__init__()
        self.context = _Residual(LiteMLA(dim, head_dim=head_dim))
        self.local = _Residual(MBConv(dim, dim, expand=expand, fewer_norm=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local(self.context(x))


class HyperEfficientViT(nn.Module):
    """EfficientViT backbone and segmentation head with the HyperspectralViTs changes.

    ``forward(x: [B, in_channels, H, W]) -> [B, num_classes, H, W]`` per-pixel logits; H and W
    must be multiples of :attr:`size_multiple`.

    Layout: spectral conv + stem (3 × 3 conv stride 2, ``depths[0]`` DSConvs) at ``widths[0]``;
    stages 1–2: spectral conv, a downsampling MBConv and ``depths[i] - 1`` residual MBConvs;
    stages 3–4: spectral conv, a downsampling MBConv and ``depths[i]`` EfficientViT modules. The
    first MBConv stage has stride 1 (HyperspectralViTs) or 2 (EfficientViT), so the stage
    strides are 2/2/4/8/16 (or 2/4/8/16/32). The head projects stages 2–4 to ``head_width``,
    adds them at stage 2's resolution, applies ``head_depth`` residual MBConvs and a 1 × 1
    expansion (``head_expand``), then the upscaling block and the classifier ``head``.

    Sizes. The paper uses EfficientViT-b1: widths 16/32/64/128/256, depths 1/2/3/3/4, 16
    channels per attention head, MBConv expansion 4, head width 64, head depth 3, head expansion
    4; built here at that size with 87 bands and a 64-wide upscaling block it has 4.94 M
    parameters (19.8 MB in float32). The defaults halve the widths (8/16/32/64/128) and the
    head width (32), shorten the depths to 1/1/2/2/2 and the head to one MBConv: 0.75 M
    parameters with 87 bands (3.0 MB), so that a model trains on two CPU cores in minutes.
    Pass ``widths=(16, 32, 64, 128, 256), depths=(1, 2, 3, 3, 4), head_width=64,
    head_depth=3, upscale_dim=64`` for the paper's size.

    Parameters
    ----------
    in_channels
        Input bands (e.g. 86 selected EMIT bands, 87 with the matched-filter channel).
    num_classes
        Output classes (2 for plume / background).
    widths, depths
        Stem and four stages: channels and number of blocks (five each).
    head_dim
        Channels per linear-attention head.
    expand
        MBConv expansion ratio in the backbone and the head.
    head_width, head_depth, head_expand
        Segmentation head: width, residual MBConvs, expansion of its last 1 × 1 conv.
    upscale_dim
        Width after the 2× upscaling block (the classifier's input).
    first_stride
        Total stride after the first stage: 2 (HyperspectralViTs) or 4 (EfficientViT).
    spectral_convs
        Whether to put a 1 × 1 convolution before the stem and each stage.
    upscale
        Whether to add the learned 2× upscaling block before the classifier; without it the
        logits are interpolated bilinearly from the head's resolution as in EfficientViT.
    """

    wavelength_conditioned = False
    #: Default total downsampling (stage 4 at 1/16); instances with ``first_stride=4`` set 32.
    size_multiple: int = 16
    #: Linear attention in stages 3–4 is global over the tile, so there is no finite receptive
    #: field; 64 px is the tile edge the defaults are trained on (the tiler adds a 32-px halo).
    receptive_field_px: int = 64

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        widths: Sequence[int] = (8, 16, 32, 64, 128),
        depths: Sequence[int] = (1, 1, 2, 2, 2),
        head_dim: int = 16,
        expand: float = 4.0,
        head_width: int = 32,
        head_depth: int = 1,
        head_expand: float = 4.0,
        upscale_dim: int = 32,
        first_stride: int = 2,
        spectral_convs: bool = True,
        upscale: bool = True,
    ) -> None:
        super().__init__()
        if len(widths) != 5 or len(depths) != 5:
            raise ConfigError(
                f"widths and depths need 5 values each, got {len(widths)} and {len(depths)}",
                where="HyperEfficientViT",
                fix="give the stem and the four stages, e.g. widths=(16, 32, 64, 128, 256)",
            )
        if min(depths[1:]) < 1:
            raise ConfigError(
                "every stage needs at least one block",
                where="depths",
                fix="use depths ≥ 1 for stages 1–4",
            )
        if first_stride not in (2, 4):
            raise ConfigError(
                f"first_stride must be 2 or 4, got {first_stride}",
                where="first_stride",
                fix="use 2 (HyperspectralViTs) or 4 (EfficientViT)",
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.size_multiple = 8 * first_stride

        def spectral(dim: int) -> nn.Module:
            return nn.Conv2d(dim, dim, 1) if spectral_convs else nn.Identity()

        self.stem = nn.Sequential(
            spectral(in_channels),
            _conv_bn(in_channels, widths[0], 3, stride=2),
            nn.Hardswish(),
            *(_Residual(_DSConv(widths[0])) for _ in range(depths[0])),
        )
        stages: list[nn.Module] = []
        for i in (1, 2):
            stride = 1 if i == 1 and first_stride == 2 else 2
            stages.append(
                nn.Sequential(
                    spectral(widths[i - 1]),
                    MBConv(widths[i - 1], widths[i], stride=stride, expand=expand),
                    *(
                        _Residual(MBConv(widths[i], widths[i], expand=expand))
                        for _ in range(depths[i] - 1)
                    ),
                )
            )
        for i in (3, 4):
            stages.append(
                nn.Sequential(
                    spectral(widths[i - 1]),
                    MBConv(widths[i - 1], widths[i], stride=2, expand=expand, fewer_norm=True),
                    *(
                        _EfficientViTBlock(widths[i], head_dim=head_dim, expand=expand)
                        for _ in range(depths[i])
                    ),
                )
            )
        self.stages = nn.ModuleList(stages)
        # Segmentation head over stages 2, 3 and 4.
        self.lateral = nn.ModuleList(_conv_bn(widths[i], head_width) for i in (2, 3, 4))
        self.refine = nn.Sequential(
            *(_Residual(MBConv(head_width, head_width, expand=expand)) for _ in range(head_depth))
        )
        head_out = round(head_width * head_expand)
        self.head_expand = nn.Sequential(_conv_bn(head_width, head_out), nn.Hardswish())
        self.upscale: nn.Module = UpscaleBlock(head_out, upscale_dim) if upscale else nn.Identity()
        self.head = nn.Conv2d(upscale_dim if upscale else head_out, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W]`` to ``[B, num_classes, H, W]`` logits."""
        check_input(
            x,
            in_channels=self.in_channels,
            size_multiple=self.size_multiple,
            model="HyperEfficientViT",
        )
        size = x.shape[-2:]
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        grid = features[1].shape[-2:]
        y = self.lateral[0](features[1])
        for feature, lateral in zip(features[2:], self.lateral[1:], strict=True):
            y = y + F.interpolate(lateral(feature), size=grid, mode="bilinear", align_corners=False)
        y = self.head(self.upscale(self.head_expand(self.refine(y))))
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y
