"""Reference CH4 matched filters for the matched-filter benchmark: mag1c 1.2.0 and fastmag1c 0.1.0.

Both run on EMIT reflectance in sensor geometry, one detector column at a time (mag1c's default
``--group 1``), with mag1c's command-line defaults: bands kept by mag1c's own bad-band rule and
the 2122–2488 nm window, 30 iterations, albedo correction on, sparsity on, covariance update
scaling 1, no diagonal loading (alpha 0), non-negative output in ppm·m. Both share the same band
selection, pixel validity and template (mag1c's), so their maps are comparable pixel by pixel.

- **Bands**: ``mag1c.get_mask_bad_bands`` (400–2485 nm minus 1350–1420 and 1800–1945 nm) within
  the window, minus bands flagged bad in the product (no pixel above EMIT's -0.1 bad-band value),
  which would make every column's covariance singular.
- **Pixels**: a pixel is invalid when any kept band is non-finite or -9999; mag1c's ``main``
  drops such lines from the column before filtering (its ``get_censor_mask``), which is what
  :func:`run_mag1c` does. Columns with no more valid pixels than bands have a singular covariance
  and come back NaN, as fastmag1c leaves them.

mag1c 1.2.0 calls ``torch.cholesky`` (deprecated, slated for removal); :func:`run_mag1c` swaps it
for a ``torch.linalg.cholesky`` wrapper only while the filter runs. Neither function changes
torch's thread count.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

NODATA = -9999.0
"""Fill value of EMIT products (and mag1c's and fastmag1c's no-data value)."""

BAD_BAND = -0.1
"""Value EMIT L2A reflectance holds in bands flagged bad (outside ``good_wavelengths``)."""

WINDOW_NM = (2122.0, 2488.0)
"""mag1c's default ``--use-wavelength-range``."""


def _mag1c_module() -> Any:
    # mag1c's module annotates with ``np.core.memmap``, which warns under numpy 2.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mag1c import mag1c

    return mag1c


def mag1c_template(wavelengths_nm: np.ndarray, fwhm_nm: np.ndarray) -> np.ndarray:
    """mag1c's CH4 unit absorption template at the given bands.

    Parameters
    ----------
    wavelengths_nm, fwhm_nm
        Band centres and full widths at half maximum (nm), shape ``(bands,)``.

    Returns
    -------
    numpy.ndarray
        ``(bands,)`` float64: d ln(radiance) / d(ppm·m) × 1e5 from mag1c's MODTRAN table,
        convolved with Gaussian band responses (``generate_template_from_bands``, column 1).
    """
    target = _mag1c_module().generate_template_from_bands(
        np.asarray(wavelengths_nm, dtype=np.float64), np.asarray(fwhm_nm, dtype=np.float64)
    )
    return np.asarray(target[:, 1], dtype=np.float64)


def _cholesky_compat(
    a: torch.Tensor, upper: bool = False, *, out: torch.Tensor | None = None
) -> torch.Tensor:
    factor = torch.linalg.cholesky(a)
    if upper:
        factor = factor.mH
    if out is not None:
        out.copy_(factor)
        return out
    return factor


@contextmanager
def _torch_cholesky_alias() -> Iterator[None]:
    # Only for the reference run: mag1c's acrwl1mf calls the legacy torch.cholesky.
    had = hasattr(torch, "cholesky")
    original = getattr(torch, "cholesky", None)
    torch.cholesky = _cholesky_compat  # type: ignore[assignment]
    try:
        yield
    finally:
        if had:
            torch.cholesky = original  # type: ignore[assignment]
        else:
            delattr(torch, "cholesky")


def _prepare(
    x: np.ndarray,
    wavelengths_nm: np.ndarray,
    fwhm_nm: np.ndarray,
    window_nm: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kept bands' data ``(lines, samples, kept)``, pixel validity and template (kept bands)."""
    if x.ndim != 3:
        raise ValueError(f"x must be (lines, samples, bands), got shape {x.shape}")
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    fwhm = np.asarray(fwhm_nm, dtype=np.float64)
    if wl.shape != (x.shape[2],) or fwhm.shape != wl.shape:
        raise ValueError(
            f"wavelengths {wl.shape} and fwhm {fwhm.shape} must both be ({x.shape[2]},)"
        )
    keep = _mag1c_module().get_mask_bad_bands(wl) & (wl >= window_nm[0]) & (wl <= window_nm[1])
    data = x[..., keep]
    finite = np.isfinite(data)
    # A band is flagged bad in the product when no pixel holds a usable value in it.
    usable = ((data > BAD_BAND) & finite).any(axis=(0, 1))
    keep[np.flatnonzero(keep)[~usable]] = False
    data = data[..., usable]
    if data.shape[2] == 0:
        raise ValueError(f"no usable band in {window_nm} nm")
    valid = (finite[..., usable] & (data != NODATA)).all(axis=2)
    # Each band's template depends only on its own centre and width: convolve the kept ones.
    template = mag1c_template(wl[keep], fwhm[keep])
    return data, valid, template


def _column_batches(valid: np.ndarray, nbands: int, batch: int) -> Iterator[tuple[int, np.ndarray]]:
    """Columns grouped by valid-pixel count (one acrwl1mf call needs equal counts), batched."""
    groups: dict[int, list[int]] = defaultdict(list)
    for col, count in enumerate(valid.sum(axis=0).tolist()):
        if count > nbands:
            groups[count].append(col)
    for count, cols in sorted(groups.items()):
        for start in range(0, len(cols), batch):
            yield count, np.asarray(cols[start : start + batch])


def run_mag1c(
    x: np.ndarray,
    wavelengths_nm: np.ndarray,
    fwhm_nm: np.ndarray,
    *,
    iterations: int = 30,
    albedo: bool = True,
    window_nm: tuple[float, float] = WINDOW_NM,
    batch_columns: int = 64,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """CH4 enhancement by mag1c's ``acrwl1mf``, one detector column at a time.

    Parameters
    ----------
    x
        EMIT reflectance ``(lines, samples, bands)`` in sensor geometry.
    wavelengths_nm, fwhm_nm
        Band centres and widths (nm), ``(bands,)``.
    iterations
        Reweighted-L1 iterations (mag1c ``--iter``).
    albedo
        Apply the per-pixel albedo correction (mag1c without ``--noalbedo``).
    window_nm
        Wavelength range used by the filter (mag1c ``--use-wavelength-range``).
    batch_columns
        Columns per ``acrwl1mf`` call; only columns with the same number of valid pixels share a
        call, so each column's statistics are its own, as with mag1c's ``--group 1 --batch 1``.
    dtype, device
        Compute precision (mag1c: float64 unless ``--single``) and device.

    Returns
    -------
    numpy.ndarray
        ``(lines, samples)`` float32 ppm·m, NaN where the pixel or its column is invalid.
    """
    m = _mag1c_module()
    data, valid, template = _prepare(x, wavelengths_nm, fwhm_nm, window_nm)
    lines, samples, nbands = data.shape
    spec = torch.as_tensor(template, dtype=dtype, device=device)
    out = np.full((samples, lines), np.nan, dtype=np.float32)
    columns = np.ascontiguousarray(data.transpose(1, 0, 2))  # (samples, lines, bands)
    valid_t = valid.T
    with _torch_cholesky_alias():
        for count, cols in _column_batches(valid, nbands, batch_columns):
            rows = valid_t[cols]  # (B, lines); every row has ``count`` True values
            batch = torch.as_tensor(columns[cols][rows].reshape(len(cols), count, nbands))
            batch = batch.to(device=device, dtype=dtype)
            # A 1-D all-true mask is the only form acrwl1mf indexes correctly for a batch > 1.
            keep_all = torch.ones(count, dtype=torch.bool, device=device)
            mf, _ = m.acrwl1mf(
                batch, spec, iterations, not albedo, False, False, 1.0, 0.0, keep_all
            )
            block = out[cols]
            block[rows] = mf[..., 0].reshape(-1).cpu().numpy()
            out[cols] = block
    return np.ascontiguousarray(out.T)


def run_fastmag1c(
    x: np.ndarray,
    wavelengths_nm: np.ndarray,
    fwhm_nm: np.ndarray,
    *,
    iterations: int = 30,
    albedo: bool = True,
    window_nm: tuple[float, float] = WINDOW_NM,
    batch_columns: int = 64,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """CH4 enhancement by ``fastmag1c.retrieve`` (rank-2 covariance update), same settings.

    Parameters and return value as :func:`run_mag1c`. fastmag1c's own template is downloaded at
    run time, so mag1c's template is passed instead; ``alpha=0`` matches mag1c's default (the
    fastmag1c default is 1e-4). fastmag1c always applies the albedo correction.

    Raises
    ------
    ValueError
        If ``albedo`` is False: fastmag1c has no switch for it.
    """
    if not albedo:
        raise ValueError("fastmag1c always applies the albedo correction; use albedo=True")
    import fastmag1c

    data, valid, template = _prepare(x, wavelengths_nm, fwhm_nm, window_nm)
    # fastmag1c masks pixels with -9999 in any band out of its column statistics.
    rad = np.where(valid[..., None], data, np.float32(NODATA)).astype(np.float32, copy=False)
    retrieve: Callable[..., np.ndarray] = fastmag1c.retrieve
    mf = retrieve(
        rad,
        template=template,
        method="fastmag1c",
        device=device,
        dtype=dtype,
        batch_size=batch_columns,
        num_iter=iterations,
        alpha=0.0,
        gamma=1.0,
    )
    out = np.asarray(mf, dtype=np.float32)
    out[(mf == NODATA) | ~valid] = np.nan
    return out
