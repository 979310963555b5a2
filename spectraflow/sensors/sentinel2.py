"""Copernicus Sentinel-2 MSI L2A: band definitions, the processing-baseline offset rule, the reader.

:func:`open_sentinel2` reads the 12 per-band COGs of one L2A scene (10, 20 and 60 m) onto one
grid of the caller's choice, 10 m or 20 m, as a lazy :class:`xarray.Dataset`.

Grid
    Taken from the band files themselves: the first band file whose pixel size is the chosen
    resolution gives the CRS, the transform and the shape. Every other file must share its CRS and
    upper-left corner, have square north-up pixels whose size is an integer multiple or fraction
    of the grid's, and cover exactly the same extent; the scene's CRS must be the files' CRS.
    Anything else is a :class:`~spectraflow.errors.SceneFormatError` naming the file.

Resampling (integer factors only, as the 10/20/60 m grids of a tile are nested)
    - finer onto coarser (10 m bands onto the 20 m grid): the mean of the valid pixels of each
      2 × 2 block, NaN where none is valid. The area average keeps each pixel the mean
      reflectance of the ground it covers, the way the coarser bands were measured.
    - coarser onto finer (20/60 m bands onto the 10 m grid, 60 m bands onto the 20 m grid):
      nearest neighbour, i.e. pixel replication. No value is invented and edges stay where the
      sensor saw them; a 60 m pixel becomes 3 × 3 (20 m) or 6 × 6 (10 m) equal pixels.
    - the scene classification (SCL, 20 m) is categorical: nearest neighbour always
      (replication onto 10 m).

Reflectance
    ``DN × scale + offset`` with each band's scale and offset from ``scene.bands``: the catalog's
    normaliser has already applied the processing-baseline rule (offset -0.1 from baseline 04.00)
    and Earth Search's ``earthsearch:boa_offset_applied``; it is not redone here. DN 0 (no data)
    becomes NaN.

``valid``
    True where the SCL class is 2 (dark area), 4 (vegetation), 5 (not vegetated), 6 (water),
    7 (unclassified) or 11 (snow) *and* every band has a reflectance. Excluded: 0 no data,
    1 saturated or defective, 3 cloud shadow, 8 and 9 cloud, 10 thin cirrus.

Checks at open time (a few small reads, whatever the scene size)
    Every file's header and its last block are read, so a truncated or corrupt file fails at
    open rather than halfway through an ingest. The ``earthsearch:boa_offset_applied`` flag is
    known to be wrong for some Earth Search items: when B02's offset is -0.1 but more than 1 % of
    a sample of its valid DNs lie below 1000 (negative reflectance, rare in real blue-band data
    once the offset is right), a warning naming the item is logged and recorded in the
    ``offset_check`` attribute. The data are not changed.

Reading
    Dask chunks hold all bands × ``chunks`` × ``chunks`` grid pixels; each task opens the files
    by href and reads only the windows it needs (the graph holds hrefs, never open files, so it
    pickles to distributed workers). Remote hrefs go through :mod:`spectraflow.sensors.access`
    (login, Planetary Computer signing right before the read).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.windows import Window

from spectraflow.errors import ConfigError, SceneFormatError
from spectraflow.sensors.access import is_remote, rasterio_source
from spectraflow.sensors.bands import BandTable

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

    from spectraflow.catalog.scene import Scene

__all__ = [
    "BANDS",
    "BOA_ADD_OFFSET",
    "GRID_RESOLUTIONS",
    "NODATA",
    "QUANTIFICATION",
    "SCL_CLASSES",
    "VALID_SCL",
    "S2Band",
    "offset_applies",
    "open_sentinel2",
    "sentinel2_band_table",
]

log = logging.getLogger(__name__)


class S2Band(NamedTuple):
    """One MSI band as the L2A product ships it."""

    name: str
    common_name: str
    wavelength_nm: float
    fwhm_nm: float
    resolution_m: int


# L2A reflectance bands (B10 cirrus is not in L2A), centres and widths as Earth Search lists them.
BANDS: tuple[S2Band, ...] = (
    S2Band("B01", "coastal", 443.0, 27.0, 60),
    S2Band("B02", "blue", 490.0, 98.0, 10),
    S2Band("B03", "green", 560.0, 45.0, 10),
    S2Band("B04", "red", 665.0, 38.0, 10),
    S2Band("B05", "rededge1", 704.0, 19.0, 20),
    S2Band("B06", "rededge2", 740.0, 18.0, 20),
    S2Band("B07", "rededge3", 783.0, 28.0, 20),
    S2Band("B08", "nir", 842.0, 145.0, 10),
    S2Band("B8A", "nir08", 865.0, 33.0, 20),
    S2Band("B09", "nir09", 945.0, 26.0, 60),
    S2Band("B11", "swir16", 1610.0, 143.0, 20),
    S2Band("B12", "swir22", 2190.0, 242.0, 20),
)
QUANTIFICATION = 10000.0
BOA_ADD_OFFSET = -1000.0
NODATA = 0
SCL_CLASSES = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}
GRID_RESOLUTIONS = (10, 20)
"""Grids (metres) :func:`open_sentinel2` can put a scene on."""
VALID_SCL = frozenset({2, 4, 5, 6, 7, 11})
"""SCL classes whose pixels are usable (see the module docstring)."""

_OFFSET_CHECK_BAND = "B02"  # blue: the darkest band over most ground, so the first to go < 1000
_OFFSET_CHECK_SHARE = 0.01  # share of sampled DNs below the offset that triggers the warning
_SAMPLE_WINDOWS = 4  # per side: 4 × 4 windows of _SAMPLE_SIZE² pixels when no overview exists
_SAMPLE_SIZE = 64
_RESAMPLING = (
    "finer bands onto the grid: mean of the valid pixels of each block (10 m → 20 m: 2 × 2); "
    "coarser bands and SCL: nearest neighbour (pixel replication)"
)
_CORRUPT = "file is truncated or corrupt"
_UNOPENABLE = "cannot open the file (missing, truncated or not a GeoTIFF)"
_ORIGINAL = "use the provider's original file"
_VALID_RULE = "SCL in {2, 4, 5, 6, 7, 11} and every band has a reflectance"


def offset_applies(processing_baseline: str) -> bool:
    """Whether DNs carry the +1000 offset (processing baseline 04.00 and later)."""
    major, _, minor = processing_baseline.partition(".")
    return (int(major), int(minor or 0)) >= (4, 0)


def sentinel2_band_table(processing_baseline: str = "05.10") -> BandTable:
    """The 12 L2A reflectance bands with the DN scaling of ``processing_baseline``."""
    offset = BOA_ADD_OFFSET / QUANTIFICATION if offset_applies(processing_baseline) else 0.0
    return BandTable.from_arrays(
        [b.wavelength_nm for b in BANDS],
        [b.fwhm_nm for b in BANDS],
        name=[b.name for b in BANDS],
        scale=1.0 / QUANTIFICATION,
        offset=offset,
    )


# --- file access --------------------------------------------------------------------------------


def _failure(problem: str, href: str, exc: BaseException) -> SceneFormatError:
    """``problem`` in ``href``, with GDAL's root cause (secrets masked for remote files).

    Raise it outside the ``except`` block: rasterio's chained GDAL errors do not unpickle, and
    dask.distributed then replaces an error whose context holds them by a bare ``Exception``.
    """
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    text = str(exc)
    if is_remote(href):
        # Imported here: the catalog package imports this module.
        from spectraflow.catalog.redaction import redact

        text = redact(text)
    return SceneFormatError(
        f"{problem}: {text}",
        where=href,
        fix="check that the file is the provider's complete GeoTIFF; download it again",
    )


@contextmanager
def _open(href: str) -> Iterator[Any]:
    """The one place files are opened; :mod:`spectraflow.sensors.access` routes remote hrefs.

    A file GDAL cannot open is a :class:`SceneFormatError` naming ``href`` (never a signed URL).
    """
    with rasterio_source(href) as source:
        try:
            src = rasterio.open(source)
        except RasterioError as exc:
            error = _failure(_UNOPENABLE, href, exc)
        else:
            with src:
                yield src
            return
    raise error


# --- planning (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileInfo:
    """A file's header, as read at open time; the reference file's is the grid."""

    href: str
    count: int
    shape: tuple[int, int]
    transform: Affine
    crs: CRS | None
    nodata: float | None


@dataclass(frozen=True)
class _Layer:
    """One single-band file on the grid.

    ``down`` file pixels per grid pixel side (finer file) or ``up`` grid pixels per file pixel
    side (coarser file); the other is 1.
    """

    href: str
    down: int = 1
    up: int = 1
    nodata: float | None = None


def _plan_layer(info: _FileInfo, grid: _FileInfo, resolution: int, what: str) -> _Layer:
    """How ``info``'s file maps onto ``grid``, or a SceneFormatError naming the file."""

    def bad(problem: str, fix: str = _ORIGINAL) -> SceneFormatError:
        return SceneFormatError(f"{what} {problem}", where=info.href, fix=fix)

    if info.count != 1:
        raise bad(f"has {info.count} bands, a Sentinel-2 band file has 1")
    if info.crs is None:
        raise bad("has no CRS")
    if info.crs != grid.crs:
        raise bad(f"is in {info.crs}, the {resolution} m band files in {grid.crs}")
    t, g = info.transform, grid.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or not math.isclose(t.e, -t.a, rel_tol=1e-9):
        raise bad(f"does not have square north-up pixels (transform {tuple(t)[:6]})")
    if max(abs(t.c - g.c), abs(t.f - g.f)) > 1e-3 * resolution:
        raise bad(f"starts at ({t.c}, {t.f}), the {resolution} m grid at ({g.c}, {g.f})")
    ratio = t.a / resolution if t.a >= resolution else resolution / t.a
    k = round(ratio)
    if abs(ratio - k) > 1e-6:
        raise bad(f"has {t.a:g} m pixels, not a multiple or fraction of {resolution} m")
    up, down = (k, 1) if t.a >= resolution else (1, k)
    (h, w), (rows, cols) = info.shape, grid.shape
    if h * up != rows * down or w * up != cols * down:
        raise bad(
            f"has {h} × {w} pixels of {t.a:g} m ({h * t.a:g} × {w * t.a:g} m) but the grid has "
            f"{rows} × {cols} pixels of {resolution} m ({rows * resolution} × "
            f"{cols * resolution} m)",
            "the file is damaged or belongs to another product: download it again",
        )
    return _Layer(info.href, down=down, up=up, nodata=info.nodata)


def _check_scene_crs(scene: Scene, grid: _FileInfo) -> None:
    """The scene's CRS (from its item) must be the band files'."""
    if scene.crs is None:
        return
    try:
        crs = CRS.from_user_input(scene.crs)
    except CRSError:
        raise SceneFormatError(
            f"unknown CRS {scene.crs!r}",
            where=f"{scene.provider} item {scene.id}",
            fix="correct the item's proj:epsg / proj:code",
        ) from None
    if crs != grid.crs:
        raise SceneFormatError(
            f"band file is in {grid.crs} but the item says {scene.crs}",
            where=f"{grid.href} (item {scene.id})",
            fix="correct the item's proj:epsg / proj:code, or use the item's own files",
        )


# --- reading (I/O inside dask tasks) ------------------------------------------------------------


def _read_window(layer: _Layer, rows: range, cols: range) -> tuple[np.ndarray, int, int]:
    """Raw DNs of the file pixels under grid rows/cols, and the offset of the grid window in it."""
    if layer.down > 1:
        k = layer.down
        window = Window(cols.start * k, rows.start * k, len(cols) * k, len(rows) * k)
        skip = (0, 0)
    else:
        k = layer.up
        r0, c0 = rows.start // k, cols.start // k
        r1, c1 = -(-rows.stop // k), -(-cols.stop // k)
        window = Window(c0, r0, c1 - c0, r1 - r0)
        skip = (rows.start - r0 * k, cols.start - c0 * k)
    with _open(layer.href) as src:
        try:
            return src.read(1, window=window), *skip
        except RasterioError as exc:
            error = _failure(_CORRUPT, layer.href, exc)
    raise error


def _replicate(data: np.ndarray, k: int, skip_r: int, skip_c: int, h: int, w: int) -> np.ndarray:
    if k > 1:
        data = np.repeat(np.repeat(data, k, axis=0), k, axis=1)
    return data[skip_r : skip_r + h, skip_c : skip_c + w]


def _reflectance(layer: _Layer, scale: float, offset: float, rows: range, cols: range) -> Any:
    dn, skip_r, skip_c = _read_window(layer, rows, cols)
    missing = dn == NODATA
    if layer.nodata is not None and layer.nodata != NODATA:
        missing |= dn == layer.nodata
    refl = np.where(missing, np.nan, dn.astype(np.float64) * scale + offset)
    if layer.down > 1:
        k = layer.down
        blocks = refl.reshape(len(rows), k, len(cols), k)
        count = np.sum(~np.isnan(blocks), axis=(1, 3))
        total = np.nansum(blocks, axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)
    return _replicate(refl, layer.up, skip_r, skip_c, len(rows), len(cols))


def _categorical(layer: _Layer, rows: range, cols: range) -> np.ndarray:
    data, skip_r, skip_c = _read_window(layer, rows, cols)
    if layer.down > 1:  # nearest: the pixel GDAL's nearest would pick, k // 2 into each block
        k = layer.down
        return data[k // 2 :: k, k // 2 :: k]
    return _replicate(data, layer.up, skip_r, skip_c, len(rows), len(cols))


def _basic_index(key: Any, shape: tuple[int, ...]) -> tuple[list[range], tuple[int, ...]]:
    """Ranges selected by a tuple of ints and slices (what dask passes), and the axes ints drop."""
    key = (key if isinstance(key, tuple) else (key,)) + (slice(None),) * len(shape)
    ranges: list[range] = []
    dropped: list[int] = []
    for axis, n in enumerate(shape):
        selected = range(n)[key[axis]]  # range does the bounds, negatives and steps
        if isinstance(selected, int):
            selected = range(selected, selected + 1)
            dropped.append(axis)
        ranges.append(selected)
    return ranges, tuple(dropped)


def _span(r: range) -> tuple[range, slice | np.ndarray]:
    """The contiguous range covering ``r`` and ``r``'s positions within it."""
    if r.step == 1:
        return r, slice(None)
    lo, hi = min(r), max(r) + 1
    return range(lo, hi), np.asarray(r) - lo


@dataclass(frozen=True)
class _OnGrid:
    """Array-like (layer, y, x) on the grid, read window by window.

    Reflectance (float32) when ``scale`` and ``offset`` are given, else categorical values
    (uint8, nearest neighbour). Holds hrefs only, so it pickles.
    """

    layers: tuple[_Layer, ...]
    shape: tuple[int, int, int]
    scale: tuple[float, ...] = ()
    offset: tuple[float, ...] = ()

    ndim = 3

    @property
    def dtype(self) -> np.dtype[Any]:
        """float32 reflectance or uint8 classes."""
        return np.dtype(np.float32 if self.scale else np.uint8)

    def __getitem__(self, key: Any) -> np.ndarray:
        (index, rows, cols), dropped = _basic_index(key, self.shape)
        out = np.zeros((len(index), len(rows), len(cols)), dtype=self.dtype)
        if out.size:
            span_r, pick_r = _span(rows)
            span_c, pick_c = _span(cols)
            for j, i in enumerate(index):
                layer = self.layers[i]
                if self.scale:
                    data = _reflectance(layer, self.scale[i], self.offset[i], span_r, span_c)
                else:
                    data = _categorical(layer, span_r, span_c)
                out[j] = data[pick_r][:, pick_c]
        return out.squeeze(axis=dropped) if dropped else out

    def lazy(self, chunks: int, name: str) -> da.Array:
        """Dask array of all layers × ``chunks`` × ``chunks`` blocks."""
        import dask.array as da

        return da.from_array(
            self,
            chunks=(self.shape[0], chunks, chunks),
            name=name,
            lock=False,
            fancy=False,
            meta=np.empty((0, 0, 0), dtype=self.dtype),
        )


# --- open-time inspection -----------------------------------------------------------------------


def _inspect(href: str, *, sample: bool = False) -> tuple[_FileInfo, np.ndarray | None]:
    """Header of ``href``, its last block read as an integrity check, and optionally a sample."""
    with _open(href) as src:
        info = _FileInfo(
            href=href,
            count=src.count,
            shape=(src.height, src.width),
            transform=src.transform,
            crs=src.crs,
            nodata=src.nodata,
        )
        try:
            # COGs store the full-resolution blocks last: a truncated file loses this one.
            bh, bw = src.block_shapes[0]
            src.read(
                1, window=src.block_window(1, (info.shape[0] - 1) // bh, (info.shape[1] - 1) // bw)
            )
            return info, _sample(src) if sample else None
        except RasterioError as exc:
            error = _failure(_CORRUPT, href, exc)
    raise error


def _sample(src: Any) -> np.ndarray:
    """A few thousand DNs spread over the file: its coarsest overview, else 4 × 4 windows."""
    factors = src.overviews(1)
    if factors:
        f = max(factors)
        shape = (max(1, -(-src.height // f)), max(1, -(-src.width // f)))
        return np.asarray(src.read(1, out_shape=shape)).ravel()
    h, w = min(_SAMPLE_SIZE, src.height), min(_SAMPLE_SIZE, src.width)
    parts = [
        src.read(1, window=Window(int(c), int(r), w, h)).ravel()
        for r in np.linspace(0, src.height - h, _SAMPLE_WINDOWS).round()
        for c in np.linspace(0, src.width - w, _SAMPLE_WINDOWS).round()
    ]
    return np.concatenate(parts)


def _offset_check(scene: Scene, band: int, values: np.ndarray | None) -> str | None:
    """A warning when DNs look already shifted although the offset says they are not."""
    scale, offset = scene.bands.scale[band], scene.bands.offset[band]
    expected = BOA_ADD_OFFSET / QUANTIFICATION
    if values is None or scale <= 0 or not math.isclose(offset, expected, abs_tol=1e-9):
        return None
    valid = values[values != NODATA]
    threshold = -offset / scale  # DN of reflectance 0
    share = float(np.mean(valid < threshold)) if valid.size else 0.0
    if share <= _OFFSET_CHECK_SHARE:
        return None
    message = (
        f"{share:.1%} of {valid.size} sampled {scene.bands.name[band]} DNs are below "
        f"{threshold:.0f} although the offset is {offset:g}: the DNs may already be shifted "
        f"(earthsearch:boa_offset_applied wrong?); reflectance may be 0.1 too low"
    )
    log.warning("Sentinel-2 item %s (%s): %s", scene.id, scene.provider, message)
    return message


# --- the reader ---------------------------------------------------------------------------------


def _check_options(chunks: int, resolution: int) -> None:
    if isinstance(resolution, bool) or resolution not in GRID_RESOLUTIONS:
        raise ConfigError(
            f"Sentinel-2 grid resolution must be 10 or 20 m, not {resolution!r}",
            where="resolution",
            fix="pass resolution=10 or resolution=20",
        )
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ConfigError(
            f"chunk size must be a positive integer, not {chunks!r}",
            where="chunks",
            fix="pass e.g. chunks=256",
        )


def _centres(start: float, step: float, n: int) -> np.ndarray:
    return start + (np.arange(n, dtype=np.float64) + 0.5) * step


def open_sentinel2(scene: Scene, *, chunks: int = 256, resolution: int = 20) -> xr.Dataset:
    """Open a Sentinel-2 L2A scene lazily, every band on one 10 m or 20 m grid.

    Parameters
    ----------
    scene
        A ``sentinel2`` :class:`~spectraflow.catalog.Scene`: one ``data:<band>`` asset per
        band of ``scene.bands`` and the SCL as its ``mask`` asset.
    chunks
        Dask chunk side in grid pixels; each chunk holds all bands.
    resolution
        Grid pixel size in metres, 10 or 20. See the module docstring for the resampling.

    Returns
    -------
    xarray.Dataset
        ``reflectance`` float32 (band, y, x), NaN for no data; ``valid`` bool (y, x); ``scl``
        uint8 (y, x); coordinates ``band``, ``wavelength`` and ``fwhm`` (nm), ``good_band``,
        ``x``/``y`` pixel centres in the files' CRS (UTM, metres), written with rioxarray.
        Attributes ``sensor``, ``scene_id``, ``source`` (role → unsigned href), ``provider``,
        ``resolution_m``, ``resampling``, ``valid_rule``, ``offset_check`` (a warning, or "").

    Raises
    ------
    SceneFormatError
        A missing asset, a file that is unreadable, truncated, multi-band, without CRS or not on
        the scene's grid (the file is named), or a scene CRS that disagrees with the files.
    ConfigError
        ``resolution`` not 10 or 20, or ``chunks`` not a positive integer.
    """
    import dask.array as da
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr
    from dask.base import tokenize

    _check_options(chunks, resolution)
    resolution = int(resolution)
    if scene.sensor != "sentinel2":
        raise SceneFormatError(
            f"scene is a {scene.sensor} scene, not Sentinel-2",
            where=f"{scene.provider} item {scene.id}",
            fix="open it with its own sensor's reader",
        )
    hrefs = scene.band_hrefs()
    names = list(scene.bands.name)
    scl_href = scene.href("mask")

    check_band = names.index(_OFFSET_CHECK_BAND) if _OFFSET_CHECK_BAND in names else 0
    infos: list[_FileInfo] = []
    sample: np.ndarray | None = None
    for i, name in enumerate(names):
        info, values = _inspect(hrefs[name], sample=i == check_band)
        infos.append(info)
        sample = values if values is not None else sample
    scl_info, _ = _inspect(scl_href)

    reference = next(
        (f for f in infos if f.count == 1 and math.isclose(f.transform.a, resolution)), None
    )
    if reference is None:
        raise SceneFormatError(
            f"no band file has {resolution} m pixels",
            where=f"{scene.provider} item {scene.id}",
            fix="check the item's band assets; Sentinel-2 L2A has 10 m and 20 m bands",
        )
    grid = reference
    _plan_layer(grid, grid, resolution, "band file")  # its own CRS first, before comparing
    layers = tuple(
        _plan_layer(f, grid, resolution, f"band file of {n}")
        for f, n in zip(infos, names, strict=True)
    )
    scl_layer = _plan_layer(scl_info, grid, resolution, "SCL file")
    _check_scene_crs(scene, grid)
    warning = _offset_check(scene, check_band, sample)

    rows, cols = grid.shape
    stack = _OnGrid(
        layers, (len(names), rows, cols), tuple(scene.bands.scale), tuple(scene.bands.offset)
    )
    token = tokenize(scene.id, stack, scl_layer, chunks)
    reflectance = stack.lazy(chunks, f"sentinel2-reflectance-{token}")
    scl = _OnGrid((scl_layer,), (1, rows, cols)).lazy(chunks, f"sentinel2-scl-{token}")[0]
    valid = da.isin(scl, sorted(VALID_SCL)) & ~da.isnan(reflectance).any(axis=0)

    t = grid.transform
    source = {f"data:{n}": hrefs[n] for n in names} | {"mask": scl_href}
    ds = xr.Dataset(
        {
            "reflectance": (
                ("band", "y", "x"),
                reflectance,
                {"long_name": "surface reflectance", "units": "1"},
            ),
            "valid": (("y", "x"), valid, {"long_name": "usable pixel", "rule": _VALID_RULE}),
            "scl": (
                ("y", "x"),
                scl,
                {
                    "long_name": "Sen2Cor scene classification",
                    "flag_values": np.asarray(sorted(SCL_CLASSES), dtype=np.uint8),
                    "flag_meanings": " ".join(SCL_CLASSES[k] for k in sorted(SCL_CLASSES)),
                },
            ),
        },
        coords={
            "band": ("band", np.asarray(names, dtype=str)),
            "wavelength": ("band", scene.bands.wavelengths, {"units": "nm"}),
            "fwhm": ("band", scene.bands.fwhms, {"units": "nm"}),
            "good_band": ("band", scene.bands.good_mask),
            "y": ("y", _centres(t.f, t.e, rows), {"units": "m"}),
            "x": ("x", _centres(t.c, t.a, cols), {"units": "m"}),
        },
        attrs={
            "sensor": "sentinel2",
            "scene_id": scene.id,
            "provider": scene.provider,
            "collection": scene.collection,
            "source": source,
            "resolution_m": resolution,
            "resampling": _RESAMPLING,
            "valid_rule": _VALID_RULE,
            "reflectance": "DN × scale + offset per band (from the scene's band table); DN 0 → NaN",
            "offset_check": warning or "",
        },
    )
    return ds.rio.write_crs(grid.crs).rio.write_transform(t)
