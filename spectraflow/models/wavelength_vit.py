"""A wavelength-conditioned vision transformer that reads any sensor's bands.

After DOFA (Xiong et al. 2024, "Neural plasticity-inspired multimodal foundation model for
Earth observation") and HyperFree (2025): the patch-embedding kernel of each input band is not
a stored weight but the output of a small hypernetwork fed with the band's centre wavelength and
FWHM. The same weights therefore accept EMIT's 285, EnMAP's 224 or Sentinel-2's 13 bands.

Cross-sensor design (where this departs from DOFA):

- **The embedding is a spectral integral, not a band sum.** A patch embeds as
  ``Σ_i w_i · K(λ_i, Δ_i) ⊛ x_i + Σ_i w_i · b(λ_i, Δ_i)`` with quadrature weights ``w_i`` that
  sum to 1 (:func:`band_weights`): the mean over the covered spectrum of the generated kernel
  times the reflectance. A band sum would grow with the band count (285/224 = 1.27× from EnMAP
  to EMIT), so features would shift with the sensor for the same surface.
- **Per-band kernels come from an MLP only.** DOFA runs a transformer across the band
  embeddings, which makes each band's kernel depend on which other bands are present; here
  ``K(λ, Δ)`` is one smooth function of the band's own wavelength and FWHM, so the weighted band
  sum is a quadrature of one fixed integral, whatever the sampling.
- **A full-resolution spectral skip.** The hypernetwork also generates a 1 × 1 kernel per band
  (integrated the same way), giving per-pixel spectral features to the decoder, which patch-4
  tokens alone would blur.

The embedding is invariant to the band order (a weighted sum) and to duplicated bands
(duplicates share their weight).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from spectraflow.errors import BandMismatchError, ConfigError
from spectraflow.models.layers.hierarchical import HierarchicalAttentionBlock
from spectraflow.models.layers.transformer import TransformerBlock

__all__ = ["SpectralHypernetwork", "WavelengthViT", "band_weights", "spectral_encoding"]

Backbone = Literal["vit", "hierarchical"]

# Periods (µm) of the wavelength code, geometric from 4 µm (longer than the 0.38–2.5 µm range:
# a slowly varying code) down to 50 nm (about five EMIT/EnMAP band spacings), so that generated
# kernels vary slowly between neighbouring bands and the weighted band sum is a good quadrature.
_PERIODS_UM = (4.0, 2.14, 1.14, 0.61, 0.33, 0.175, 0.094, 0.05)
# The FWHM is coded as u = ln(1 + FWHM / 25 nm): nearly flat over imaging spectrometers' 6–12 nm
# (u 0.21–0.39; a smooth spectrum looks the same through any of them, so features should not
# move with it) and spread over multispectral widths (u 1.0 at 40 nm, 2.4 at 250 nm).
_FWHM_SCALE_NM = 25.0
_FWHM_FREQUENCIES = (1.0, 2.0)
ENCODING_DIM = 2 + 2 * len(_PERIODS_UM) + 2 * len(_FWHM_FREQUENCIES)
# ∫ of a peak-1 Gaussian response per unit FWHM: √(π / (4 ln 2)).
_EQUIVALENT_WIDTH_PER_FWHM = math.sqrt(math.pi / (4.0 * math.log(2.0)))


def spectral_encoding(wavelengths_nm: torch.Tensor, fwhm_nm: torch.Tensor) -> torch.Tensor:
    """Sinusoidal code of each band's wavelength (in µm) and FWHM: ``[C]`` to ``[C, 22]``."""
    um = wavelengths_nm / 1000.0
    periods = torch.tensor(_PERIODS_UM, dtype=um.dtype, device=um.device)
    phase = (2.0 * math.pi) * um[:, None] / periods
    log_width = torch.log1p(fwhm_nm / _FWHM_SCALE_NM)[:, None]
    freqs = torch.tensor(_FWHM_FREQUENCIES, dtype=um.dtype, device=um.device)
    return torch.cat(
        [
            um[:, None] - 1.4,  # centred on the 0.38–2.5 µm range
            phase.sin(),
            phase.cos(),
            log_width,
            (log_width * freqs).sin(),
            (log_width * freqs).cos(),
        ],
        dim=-1,
    )


def band_weights(wavelengths_nm: torch.Tensor, fwhm_nm: torch.Tensor) -> torch.Tensor:
    """Quadrature weights (summing to 1) that turn a band sum into a spectral mean.

    Each band owns the part of the covered range nearer to its centre than to any other band's
    (cells split at the midpoints between sorted neighbours); the covered range runs from the
    first to the last centre, extended at each end by half that band's equivalent width
    (1.064 × FWHM for a Gaussian response). A band's weight is its cell's length over the
    range's. So the band sum is the nearest-band (midpoint-rule) estimate of the mean over the
    range: for densely sampled spectrometers the weight is the band spacing, whatever the band
    count, and overlapping VNIR/SWIR detectors share their cells; gaps (dropped water-vapour
    bands, the spaces between multispectral bands) are bridged by their nearest bands, so
    sensors that drop different bands still estimate the same integral. Duplicated bands split
    one cell.

    Parameters
    ----------
    wavelengths_nm, fwhm_nm
        ``[C]`` band centres and full widths at half maximum, in nm, in any order.

    Returns
    -------
    torch.Tensor
        ``[C]`` non-negative weights summing to 1, in the input order.
    """
    order = torch.argsort(wavelengths_nm, stable=True)
    centre = wavelengths_nm[order]
    half = (0.5 * _EQUIVALENT_WIDTH_PER_FWHM) * fwhm_nm[order]
    mid = 0.5 * (centre[1:] + centre[:-1])
    low = torch.cat([centre[:1] - half[:1], mid])
    high = torch.cat([mid, centre[-1:] + half[-1:]])
    cell = high - low
    weights = torch.empty_like(cell)
    weights[order] = cell / cell.sum()
    return weights


class SpectralHypernetwork(nn.Module):
    """Per-band patch kernels, biases and pixel kernels from wavelength and FWHM.

    Parameters
    ----------
    dim
        Token width (output channels of the patch embedding).
    patch
        Patch side in pixels.
    hidden
        Width of the band-encoding MLP.
    pixel_dim
        Channels of the 1 × 1 (per-pixel) spectral embedding.
    """

    def __init__(self, dim: int, patch: int, *, hidden: int = 64, pixel_dim: int = 32) -> None:
        super().__init__()
        self.dim = dim
        self.patch = patch
        self.encoder = nn.Sequential(
            nn.Linear(ENCODING_DIM, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU()
        )
        self.to_kernel = nn.Linear(hidden, dim * patch * patch)
        self.to_bias = nn.Linear(hidden, dim)
        self.to_pixel = nn.Linear(hidden, pixel_dim)

    def forward(
        self, wavelengths_nm: torch.Tensor, fwhm_nm: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[C]`` bands to kernels ``[C, dim, p, p]``, biases ``[C, dim]``, pixel ``[C, P]``."""
        h = self.encoder(spectral_encoding(wavelengths_nm, fwhm_nm))
        kernel = self.to_kernel(h).reshape(-1, self.dim, self.patch, self.patch)
        return kernel, self.to_bias(h), self.to_pixel(h)


class WavelengthViT(nn.Module):
    """Wavelength-conditioned ViT for dense prediction from any band set.

    ``forward(x, wavelengths_nm, fwhm_nm)`` maps ``[B, C, H, W]`` reflectance (any ``C``) and
    the ``[C]`` band centres and FWHM in nm to ``[B, num_classes, H, W]`` logits.

    Pipeline: wavelength-generated patch embedding (a spectral integral, see the module
    docstring) → backbone on the ``H/patch × W/patch`` token grid → decoder: tokens
    pixel-shuffled back to full resolution, concatenated with the per-pixel spectral
    embedding, a 3 × 3 convolution, and the 1 × 1 classifier ``head``.

    Parameters
    ----------
    in_channels
        Band count the model is usually run with; only a hint (stored, not enforced): forward
        accepts any number of bands.
    num_classes
        Output classes.
    backbone
        ``"vit"``: global self-attention blocks (with a depth-wise convolutional position
        encoding, so no fixed grid size). ``"hierarchical"``: FasterViT-style
        :class:`~spectraflow.models.layers.hierarchical.HierarchicalAttentionBlock` s, for
        large tiles (window attention plus global carrier tokens).
    patch
        Patch side in pixels.
    width
        Token width.
    depth
        Number of blocks; default 6 (``"vit"``) or 4 (``"hierarchical"``, whose blocks carry
        a second, carrier attention and feed-forward).
    heads
        Attention heads.
    mlp_ratio
        Feed-forward hidden width relative to ``width``.
    window
        Window side in tokens (``"hierarchical"`` only).
    carriers_per_window
        Carrier tokens per window (``"hierarchical"`` only; a square number).
    hyper_dim
        Width of the hypernetwork's band-encoding MLP.
    decoder_dim
        Channels of the full-resolution decoder and of the per-pixel spectral embedding.

    Notes
    -----
    Scaled down from the papers: DOFA embeds with ViT-B/L (width 768/1024, depth 12/24,
    16 × 16 patches, ~110–330 M parameters) and a transformer hypernetwork; here width 128,
    depth 6 (ViT) or 4 (hierarchical), 4 × 4 patches, an MLP hypernetwork of width 64, so a model
    has ~1.4 M (ViT) or ~1.8 M (hierarchical) parameters (< 10 MB float32) and trains on two CPU
    cores in minutes. FasterViT's stages (convolutional early stages, 2–4 HAT stages with
    downsampling, widths 64–1024) are reduced to one HAT stage on the patch grid.

    ``size_multiple`` is ``patch`` for ``"vit"`` and ``patch × window`` for ``"hierarchical"``
    (set per instance; the class value 32 is the default hierarchical one, an upper bound for
    both defaults).
    """

    size_multiple: int = 32
    # Global attention: every output pixel sees the whole tile; the model is designed and
    # trained for 64-pixel tiles, so the tiler's halo should give it that much context.
    receptive_field_px: ClassVar[int] = 64
    wavelength_conditioned: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        backbone: Backbone = "vit",
        patch: int = 4,
        width: int = 128,
        depth: int | None = None,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        window: int = 8,
        carriers_per_window: int = 1,
        hyper_dim: int = 64,
        decoder_dim: int = 32,
    ) -> None:
        super().__init__()
        if backbone not in ("vit", "hierarchical"):
            raise ConfigError(
                f"unknown backbone {backbone!r}",
                where="backbone",
                fix='use backbone="vit" or backbone="hierarchical"',
            )
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("patch", patch),
            ("width", width),
        ):
            if value < 1:
                raise ConfigError(
                    f"{name}={value} is not positive", where=name, fix="use a positive value"
                )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.backbone_kind: Backbone = backbone
        self.patch = patch
        self.size_multiple = patch * window if backbone == "hierarchical" else patch
        depth = depth if depth is not None else (6 if backbone == "vit" else 4)

        self.hyper = SpectralHypernetwork(width, patch, hidden=hyper_dim, pixel_dim=decoder_dim)
        self.pixel_bias = nn.Parameter(torch.zeros(decoder_dim))
        self.blocks: nn.ModuleList
        if backbone == "vit":
            self.pos = nn.Conv2d(width, width, 3, padding=1, groups=width)
            self.blocks = nn.ModuleList(
                TransformerBlock(width, heads, mlp_ratio) for _ in range(depth)
            )
        else:
            self.blocks = nn.ModuleList(
                HierarchicalAttentionBlock(
                    width,
                    heads,
                    window=window,
                    carriers_per_window=carriers_per_window,
                    mlp_ratio=mlp_ratio,
                )
                for _ in range(depth)
            )
        self.norm = nn.LayerNorm(width)
        self.up = nn.Conv2d(width, decoder_dim * patch * patch, 1)
        self.fuse = nn.Conv2d(2 * decoder_dim, decoder_dim, 3, padding=1)
        self.head = nn.Conv2d(decoder_dim, num_classes, 1)

    def forward(
        self, x: torch.Tensor, wavelengths_nm: torch.Tensor, fwhm_nm: torch.Tensor
    ) -> torch.Tensor:
        """Per-pixel logits ``[B, num_classes, H, W]`` for ``[B, C, H, W]`` reflectance.

        Raises
        ------
        BandMismatchError
            ``wavelengths_nm`` or ``fwhm_nm`` is not ``[C]`` for the ``C`` bands of ``x``, or
            holds non-finite or non-positive values.
        ConfigError
            ``x`` is not ``[B, C, H, W]`` with ``H`` and ``W`` multiples of ``size_multiple``.
        """
        self._check(x, wavelengths_nm, fwhm_nm)
        wl = wavelengths_nm.to(device=x.device, dtype=torch.float32)
        fwhm = fwhm_nm.to(device=x.device, dtype=torch.float32)

        weights = band_weights(wl, fwhm)
        kernel, bias, pixel = self.hyper(wl, fwhm)
        patch_weight = (kernel * weights[:, None, None, None]).transpose(0, 1)
        tokens = F.conv2d(
            x, patch_weight.to(x.dtype), (weights @ bias).to(x.dtype), stride=self.patch
        )
        pixel_weight = (pixel * weights[:, None]).T[:, :, None, None]
        pixels = F.gelu(F.conv2d(x, pixel_weight.to(x.dtype), self.pixel_bias.to(x.dtype)))

        grid = self._backbone(tokens)
        up = F.pixel_shuffle(self.up(grid), self.patch)
        decoded = F.gelu(self.fuse(torch.cat([up, pixels], dim=1)))
        out: torch.Tensor = self.head(decoded)
        return out

    def _backbone(self, grid: torch.Tensor) -> torch.Tensor:
        """``[B, width, h, w]`` token map through the blocks and the final norm."""
        b, d, h, w = grid.shape
        if self.backbone_kind == "vit":
            seq = (grid + self.pos(grid)).flatten(2).transpose(1, 2)
            for block in self.blocks:
                seq = block(seq)
        else:
            for block in self.blocks:
                grid = block(grid)
            seq = grid.flatten(2).transpose(1, 2)
        return self.norm(seq).transpose(1, 2).reshape(b, d, h, w)

    def _check(self, x: torch.Tensor, wavelengths_nm: torch.Tensor, fwhm_nm: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ConfigError(
                f"input has shape {tuple(x.shape)}, not [B, C, H, W]",
                where="x",
                fix="pass a batch of band-first tiles",
            )
        c, h, w = x.shape[1:]
        m = self.size_multiple
        if h % m or w % m:
            raise ConfigError(
                f"tile {h} × {w} is not a multiple of {m} pixels",
                where="x",
                fix=f"pad tiles to a multiple of {m} (size_multiple)",
            )
        for name, values in (("wavelengths_nm", wavelengths_nm), ("fwhm_nm", fwhm_nm)):
            if tuple(values.shape) != (c,):
                raise BandMismatchError(
                    f"{name} has shape {tuple(values.shape)} but the input has {c} bands",
                    where=name,
                    fix="pass one wavelength and one FWHM (nm) per band of x, in the same order",
                )
            if not bool((torch.isfinite(values) & (values > 0)).all()):
                raise BandMismatchError(
                    f"{name} holds non-finite or non-positive values",
                    where=name,
                    fix="drop bands without a known wavelength and FWHM",
                )
