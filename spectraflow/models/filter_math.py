"""Matched-filter mathematics in torch (pure: tensors in, tensors out; CPU or CUDA alike).

Data come in *groups* of pixels that share statistics, laid out band-major as ``x`` with shape
``(G, b, N)``: G groups (EMIT detector columns, or one group for a whole scene), b bands, N
pixels each. Band-major is the layout in which the per-pixel projections are fast (2.5× faster
than pixel-major on a 2-core CPU) and one transposing copy of a cube's (band, line, sample)
block. ``use`` (G, N) marks the pixels that enter the statistics (clear, dry, unsaturated);
every pixel gets an answer.

The model (mag1c's, Foote et al. 2020) for a pixel with enhancement c is ``x ≈ μ + R·c·t`` with
``t = k ⊙ μ`` (unit absorption ``k`` times the group mean) and ``R = xᵀμ / μᵀμ`` the pixel's
albedo relative to the mean (1 without albedo correction). The filter answer is::

    α = ((x − μ)ᵀ C⁻¹ t − λ) / (R · tᵀ C⁻¹ t)            λ = 0 on the first step

with ``C`` the covariance (optionally shrunk towards its diagonal), by a Cholesky solve. The
robust variant (``iterations > 0``) repeats: remove each used pixel's own signal ``a = R·α``
from the data, recompute μ, t and C, and reweight the L1 sparsity penalty
``λ = 1 / (R (α + ε))``, clipping α at 0. Removing the signal changes the sums exactly, by a
rank-2 term::

    Σ (x − a t)(x − a t)ᵀ = Σ x xᵀ − t (Σ a x)ᵀ − (Σ a x) tᵀ + (Σ a²) t tᵀ

so an iteration costs O(N b) (two matrix-vector products per pixel, in float32) instead of the
O(N b²) covariance recomputation of mag1c. ``Σ x xᵀ`` is formed once, in float64, and every
sum, covariance and solve is float64.

Everything a pixel's answer depends on, apart from the pixel itself, is per-group and per-step:
μ_j, C_j⁻¹t_j and t_jᵀC_j⁻¹t_j (:class:`FilterStatistics`). So a first pass over the scene
computes them, and :func:`apply_filter` then replays the steps on any tile and gets the first
pass's answer (to float32 rounding). Units follow mag1c: ``k`` is scaled by 10⁵ inside (its
sparsity weights and clamps are defined in those units), answers are scaled back to ppm·m.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "SCALE",
    "FilterSettings",
    "FilterStatistics",
    "apply_filter",
    "concat_statistics",
    "filter_statistics",
    "run_filter",
]

SCALE = 1e5
"""mag1c's template scaling: α is computed in units of 10⁵ ppm·m."""

_EPS = 1e-9  # mag1c's epsilon in the sparsity weights
# Per-pixel arithmetic (two matrix-vector products per step) runs in float32, which halves the
# memory traffic that bounds it; sums, means, covariances and solves are float64.
_PIXEL = torch.float32


@dataclass(frozen=True)
class FilterSettings:
    """How the filter runs.

    Parameters
    ----------
    iterations
        Reweighted-L1 iterations after the first step (0: single pass, EMIT production style).
    albedo
        Divide by the pixel's albedo factor R (mag1c's albedo correction).
    nonnegative
        Clip answers at 0.
    sparse
        Reweighted-L1 sparsity penalty in the iterations.
    shrinkage
        Coefficient in [0, 1] pulling the covariance towards its diagonal (mag1c's ``alpha``;
        0: none). Small values guard against singular covariances; on reflectance, whose
        band variances are dominated by smooth surface spectra, even 10⁻² raises the noise
        several-fold (docs/models.md), so the production default is 10⁻⁴.
    covariance_update
        Fraction of each pixel's signal removed from the statistics per iteration (mag1c: 1).
    """

    iterations: int = 0
    albedo: bool = False
    nonnegative: bool = False
    sparse: bool = True
    shrinkage: float = 1e-4
    covariance_update: float = 1.0


@dataclass(frozen=True)
class FilterStatistics:
    """Per-group statistics of every step, float64 (``S`` = iterations + 1 steps).

    ``mean`` (S, G, b), ``cit`` = C⁻¹t (S, G, b), ``norm`` = tᵀC⁻¹t (S, G) and ``noise``, the
    standard deviation of a background answer (S, G), in the scaled units; ``count`` (G,)
    pixels used; ``ok`` (G,) False where a group had too few pixels or a singular covariance
    (its answers are NaN).
    """

    mean: torch.Tensor
    cit: torch.Tensor
    norm: torch.Tensor
    noise: torch.Tensor
    count: torch.Tensor
    ok: torch.Tensor

    def take(self, groups: torch.Tensor) -> FilterStatistics:
        """The statistics of ``groups`` (indices), in that order."""
        return FilterStatistics(
            self.mean[:, groups], self.cit[:, groups], self.norm[:, groups],
            self.noise[:, groups], self.count[groups], self.ok[groups],
        )  # fmt: skip


def concat_statistics(parts: list[FilterStatistics]) -> FilterStatistics:
    """Statistics of consecutive group batches joined along the group axis."""
    return FilterStatistics(
        torch.cat([p.mean for p in parts], dim=1),
        torch.cat([p.cit for p in parts], dim=1),
        torch.cat([p.norm for p in parts], dim=1),
        torch.cat([p.noise for p in parts], dim=1),
        torch.cat([p.count for p in parts]),
        torch.cat([p.ok for p in parts]),
    )


def _project(xt: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """vᵀx for every pixel (G, N), from band-major pixels ``xt`` (G, b, N)."""
    return (v.to(xt.dtype).unsqueeze(1) @ xt).squeeze(1)


def _moments(xt: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ x and Σ x xᵀ in float64 over the pixels of ``xt`` (G, b, N) with ``weight`` 1.

    float64 throughout: a float32 accumulation errs by ~10⁻⁷ of the albedo-driven variance,
    which is ~10⁻³ of the noise variance the filter whitens (measured: 40 ppm·m after 30
    iterations). The multiply by the float64 weights converts and masks in one pass.
    """
    used = xt * weight.to(torch.float64).unsqueeze(1)
    return used.sum(-1), used @ used.transpose(1, 2)


def _albedo(xt: torch.Tensor, mean: torch.Tensor, albedo: bool) -> torch.Tensor:
    """R (G, N): the pixel's projection on the group mean, relative to the mean's own."""
    if not albedo:
        return torch.ones((xt.shape[0], xt.shape[2]), dtype=xt.dtype, device=xt.device)
    m = mean.to(xt.dtype)
    return _project(xt, m) / (m * m).sum(-1, keepdim=True)


def _step(
    xt: torch.Tensor,
    r: torch.Tensor,
    previous: torch.Tensor | None,
    mean: torch.Tensor,
    cit: torch.Tensor,
    norm: torch.Tensor,
    settings: FilterSettings,
) -> torch.Tensor:
    """One filter step for every pixel of ``xt`` (G, b, N): α (G, N) in scaled units."""
    # In place on fresh (G, N) tensors: these passes cost as much as the projection itself.
    offset = (mean * cit).sum(-1, keepdim=True).to(xt.dtype)
    alpha = _project(xt, cit).sub_(offset)
    if previous is not None and settings.sparse:
        alpha.sub_((previous + _EPS).mul_(r).reciprocal_())
    alpha.div_(r).div_(norm.to(xt.dtype).unsqueeze(-1))
    if settings.nonnegative or previous is not None:  # mag1c clips every iteration
        alpha.relu_()
    return alpha


def _solve(
    mean: torch.Tensor,
    scatter: torch.Tensor,
    count: torch.Tensor,
    k: torch.Tensor,
    shrinkage: float,
    *,
    clamp: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """C⁻¹t, tᵀC⁻¹t, the filter's noise, a success flag and C's Cholesky factor.

    The noise is the standard deviation of α for background pixels,
    √(wᵀ S w) / tᵀC⁻¹t with w = C⁻¹t and S the unshrunk covariance: exact also when the
    covariance ``C`` used by the filter is shrunk.
    """
    n = count.clamp(min=1).to(scatter.dtype)[:, None, None]
    sample = scatter / n - mean.unsqueeze(-1) * mean.unsqueeze(-2)
    diagonal = torch.diag_embed(torch.diagonal(sample, dim1=-2, dim2=-1))
    chol, info = torch.linalg.cholesky_ex(sample + shrinkage * (diagonal - sample))
    t = (k * mean).unsqueeze(-1)
    cit = torch.cholesky_solve(t, chol)
    norm = (t * cit).sum((-2, -1))
    if clamp:
        norm = norm.clamp(min=1.0)  # as mag1c does in its iterations
    noise = torch.sqrt((cit * (sample @ cit)).sum((-2, -1)).clamp(min=0)) / norm
    ok = (info == 0) & (count > mean.shape[-1]) & torch.isfinite(norm)
    cit = torch.where(ok[:, None], cit.squeeze(-1), 0.0)
    return cit, torch.where(ok, norm, 1.0), noise, ok, chol


def _woodbury(
    chol0: torch.Tensor,
    mean0: torch.Tensor,
    t: torch.Tensor,
    ax: torch.Tensor,
    a: torch.Tensor,
    n: torch.Tensor,
    target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """C⁻¹·target, tᵀC⁻¹t, noise and flag after removing the signal ``a t``, without refactoring.

    Removing ``a t`` changes the unshrunk covariance by a symmetric rank-2 term in
    span{t, u}: ``C = C₀ + t uᵀ + u tᵀ + c t tᵀ = C₀ + W M Wᵀ`` with ``W = [t u]``,
    ``u = (Σa μ₀ − Σ a x) / n``, ``c = Σa²/n − (Σa/n)²`` and ``M = [[c, 1], [1, 0]]``, so the
    Woodbury identity solves with C₀'s Cholesky factor and a 2 × 2 system: O(b²) instead of
    a new O(b³) factorisation per iteration.
    """
    big_a = a.sum(-1, keepdim=True) / n[:, None]
    u = big_a * mean0 - ax / n[:, None]
    c = (a * a).sum(-1) / n - big_a.squeeze(-1) ** 2
    w = torch.stack([t, u], dim=-1)  # (G, b, 2)
    z = torch.cholesky_solve(torch.cat([w, target.unsqueeze(-1)], dim=-1), chol0)
    m_inv = torch.zeros(len(c), 2, 2, dtype=c.dtype, device=c.device)
    m_inv[:, 0, 1] = m_inv[:, 1, 0] = 1.0
    m_inv[:, 1, 1] = -c
    capacitance = m_inv + w.transpose(1, 2) @ z[..., :2]
    rhs = w.transpose(1, 2) @ z[..., 2:]
    solution, info = torch.linalg.solve_ex(capacitance, rhs)
    cit = (z[..., 2:] - z[..., :2] @ solution).squeeze(-1)
    raw = (target * cit).sum(-1)
    norm = raw.clamp(min=1.0)  # as mag1c does in its iterations
    noise = torch.sqrt(raw.clamp(min=0)) / norm  # w = C⁻¹t, so wᵀCw = tᵀC⁻¹t
    ok = (info == 0) & torch.isfinite(norm)
    return torch.where(ok[:, None], cit, 0.0), torch.where(ok, norm, 1.0), noise, ok


def _finite_pixels(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (G, b, N) as float32 with non-finite pixels zeroed, and the (G, N) finite mask."""
    pixels = x.to(_PIXEL).contiguous()  # one copy of a strided view, not one per use
    finite = torch.isfinite(pixels.sum(1))  # NaN or ±inf anywhere makes the sum non-finite
    if not bool(finite.all()):
        pixels = torch.where(finite.unsqueeze(1), pixels, 0.0)
    return pixels, finite


def run_filter(
    x: torch.Tensor, use: torch.Tensor, k: torch.Tensor, settings: FilterSettings
) -> tuple[FilterStatistics, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """First pass: the per-group statistics of every step, and the answers for ``x``.

    Parameters
    ----------
    x
        (G, b, N) reflectance, band-major; pixels with a non-finite value get NaN answers and
        stay out of the statistics.
    use
        (G, N) bool, pixels that enter the statistics.
    k
        (b,) unit absorption per ppm·m.
    settings
        Variant and options.

    Returns
    -------
    stats, answers
        :class:`FilterStatistics`, and what :func:`apply_filter` gives for ``x``.
    """
    band_major, finite = _finite_pixels(x)
    use = use & finite
    k = k.to(device=x.device, dtype=torch.float64) * SCALE
    count = use.sum(-1)
    n = count.clamp(min=1).to(torch.float64)
    weight = use.to(_PIXEL)
    total0, scatter0 = _moments(band_major, weight)
    mean = total0 / n[:, None]
    cit, norm, noise, ok, chol0 = _solve(mean, scatter0, count, k, settings.shrinkage, clamp=False)
    mean0 = mean
    r = _albedo(band_major, mean, settings.albedo)
    signal = weight.mul_(r).mul_(settings.covariance_update)  # a = signal · α for used pixels
    means, cits, norms, noises = [mean], [cit], [norm], [noise]
    alpha = _step(band_major, r, None, mean, cit, norm, settings)
    for _ in range(settings.iterations):
        t = k * mean
        a = signal * alpha
        ax = (band_major @ a.unsqueeze(-1)).squeeze(-1).to(torch.float64)  # Σ a x  (G, b)
        a = a.to(torch.float64)
        total = total0 - a.sum(-1, keepdim=True) * t
        mean = total / n[:, None]
        if settings.shrinkage == 0:
            cit, norm, noise, ok_j = _woodbury(chol0, mean0, t, ax, a, n, k * mean)
        else:  # shrinking towards the diagonal is not a low-rank change: factor again
            outer = t.unsqueeze(-1) * ax.unsqueeze(-2)
            # Each iteration removes its signal from the original data (not cumulatively).
            scatter = (
                scatter0 - outer - outer.transpose(1, 2)
                + (a * a).sum(-1)[:, None, None] * t.unsqueeze(-1) * t.unsqueeze(-2)
            )  # fmt: skip
            cit, norm, noise, ok_j = _solve(
                mean, scatter, count, k, settings.shrinkage, clamp=True
            )[:4]
        ok = ok & ok_j
        alpha = _step(band_major, r, alpha, mean, cit, norm, settings)
        means.append(mean)
        cits.append(cit)
        norms.append(norm)
        noises.append(noise)
    stats = FilterStatistics(
        torch.stack(means), torch.stack(cits), torch.stack(norms), torch.stack(noises), count, ok
    )
    return stats, _answers(band_major, finite, r, alpha, stats, settings)


def filter_statistics(
    x: torch.Tensor, use: torch.Tensor, k: torch.Tensor, settings: FilterSettings
) -> FilterStatistics:
    """The statistics of :func:`run_filter` alone."""
    return run_filter(x, use, k, settings)[0]


def apply_filter(
    x: torch.Tensor, stats: FilterStatistics, settings: FilterSettings
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replay the filter's steps on band-major pixels ``x`` (G, b, N) of the groups of ``stats``.

    Returns float32 tensors (G, N): enhancement (ppm·m), sensitivity (the albedo factor R:
    the response to a unit enhancement relative to the group mean, 1 = average) and
    uncertainty (ppm·m, one standard deviation of the final step's filter noise). Pixels with
    non-finite values, or of a group without statistics, are NaN. For the pixels of the first
    pass, the answers are those of :func:`run_filter`.
    """
    band_major, finite = _finite_pixels(x)
    r = _albedo(band_major, stats.mean[0], settings.albedo)
    alpha: torch.Tensor | None = None
    for j in range(stats.mean.shape[0]):
        alpha = _step(band_major, r, alpha, stats.mean[j], stats.cit[j], stats.norm[j], settings)
    assert alpha is not None
    return _answers(band_major, finite, r, alpha, stats, settings)


def _answers(
    band_major: torch.Tensor,
    finite: torch.Tensor,
    r: torch.Tensor,
    alpha: torch.Tensor,
    stats: FilterStatistics,
    settings: FilterSettings,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Enhancement, sensitivity and uncertainty (ppm·m, float32), NaN where there is none."""
    sensitivity = r if settings.albedo else _albedo(band_major, stats.mean[0], True)
    scale = r if settings.albedo else torch.ones_like(r)
    sigma = SCALE * stats.noise[-1].to(r.dtype).unsqueeze(-1) / scale
    good = finite & stats.ok[:, None]
    nan = torch.tensor(float("nan"), dtype=r.dtype, device=r.device)
    return tuple(  # type: ignore[return-value]
        torch.where(good, o, nan).to(torch.float32) for o in (alpha * SCALE, sensitivity, sigma)
    )
