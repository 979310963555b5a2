"""DLR EnMAP L2A surface reflectance: instrument constants, band table and the product reader.

:func:`open_enmap` turns a :class:`~spectraflow.catalog.Scene` of an L2A product into a lazy
:class:`xarray.Dataset` on the product's 30 m UTM grid (dims ``band``, ``y``, ``x``; ``y``
runs north to south as in the file).

Variables
    ``reflectance`` (float32, band × y × x)
        ``DN × gain + offset`` per band, computed in float32; DN -32768 (nodata) → NaN.
        Gains and offsets, wavelengths and FWHM come from ``METADATA.XML`` when the scene has a
        ``metadata`` asset, else from the scene's band table (the item's ``eo:bands``).
    ``defective`` (uint8, y × x)
        Number of bands ``QL_PIXELMASK`` marks defective at the pixel (0 = none); present when
        the scene has a ``mask`` asset.
    ``quality_classes``, ``quality_cloud``, ``quality_cloud_shadow``, ``quality_haze``,
    ``quality_cirrus``, ``quality_snow``, ``quality_testflags`` (uint8, y × x)
        The ``QL_QUALITY_*`` layers as stored (classes: 1 land, 2 water, 3 background; the
        others 0/1), each present when the scene has the matching ``quality:*`` asset.
    ``valid`` (bool, y × x)
        True where at least one band has data, ``quality_classes`` is not 3 (background) and
        ``quality_cloud`` is 0. A rule whose layer is missing is left out. Computing ``valid``
        reads every band of the window (the "any band has data" part).

Coordinates: ``band`` (band numbers as strings), ``wavelength`` and ``fwhm`` (nm, float64),
``good_band`` (bool), ``x``/``y`` (pixel centres in the CRS, metres) and ``spatial_ref`` with
the CRS and transform (``ds.rio.crs``, ``ds.rio.transform()``).

All-nodata bands (the deep water-vapour bands DLR writes as -32768 everywhere) get
``good_band`` False together with the bands the band table already marks bad. They are found
from a small sample read at open time, never the whole cube: five windows of at most
32 × 32 output pixels (centre and quarter points), read from the coarsest internal overview
when the file has one. A band is all-nodata when none of its sampled pixels has data while
another band does; if no sampled pixel has data at all, no band is flagged (noted in the
attrs). The sample is ~2 MB whatever the scene size. The XML's band statistics are not used:
their values for empty bands are not documented.

Reading is lazy: each dask task reads one window of a file named by its href (local files
through a cached GDAL handle per file, thread and process; remote files opened per window
inside the login's GDAL environment of :mod:`spectraflow.sensors.access`), so the graph
pickles and memory is bounded by the chunk size. Slicing the arrays reads only the windows
asked for (dask fuses the slice into the read).

Bad input raises :class:`~spectraflow.errors.SceneFormatError` naming the file: a missing,
unreadable or truncated file (block offsets beyond the end of a local file are caught at open
time, other read failures when the window is computed), a band count different from the band
table, a raster without CRS, a grid different from the item's ``proj:`` fields, from
METADATA.XML or from the spectral image.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import numpy as np

from spectraflow.errors import ConfigError, SceneFormatError
from spectraflow.sensors.access import is_remote, local_path, open_binary, rasterio_source
from spectraflow.sensors.bands import BandTable

if TYPE_CHECKING:
    import xarray as xr
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.io import DatasetReader

    from spectraflow.catalog.scene import Scene
    from spectraflow.sensors.enmap_metadata import EnmapMetadata

N_BANDS = 224
PIXEL_M = 30.0
GAIN = 1e-4
OFFSET = 0.0
NODATA = -32768
# Bands the L2A processor writes entirely as nodata (deep water-vapour absorption), as in the
# real product: 1290–1510 nm and 1725–1970 nm.
NODATA_NM = ((1290.0, 1510.0), (1725.0, 1970.0))
QUALITY_LAYERS = ("CLASSES", "CLOUD", "CLOUDSHADOW", "HAZE", "CIRRUS", "SNOW", "TESTFLAGS")
CLASSES_BACKGROUND = 3  # QL_QUALITY_CLASSES: 1 land, 2 water, 3 background
# Scene asset role → dataset variable of each QL_QUALITY_* layer.
QUALITY_VARIABLES = {
    "quality:classes": "quality_classes",
    "quality:cloud": "quality_cloud",
    "quality:cloudshadow": "quality_cloud_shadow",
    "quality:haze": "quality_haze",
    "quality:cirrus": "quality_cirrus",
    "quality:snow": "quality_snow",
    "quality:testflags": "quality_testflags",
}
VALID_RULE = (
    "any band has data AND quality_classes != 3 (background) AND quality_cloud == 0; "
    "rules whose layer is missing are left out"
)
_SAMPLE_AT = ((0.5, 0.5), (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75))
_SAMPLE_PX = 32
_MAX_HANDLES = 16


def enmap_band_table() -> BandTable:
    """The 224 EnMAP bands (centres and FWHM of DLR's published band characterisation).

    Wavelengths ascend with the VNIR and SWIR channels interleaved around 900–1000 nm.
    """
    text = resources.files("spectraflow.sensors").joinpath("data/enmap_bands.csv").read_text()
    rows = np.array([line.split(",") for line in text.strip().splitlines()[1:]], dtype=float)
    wl, fwhm = rows[:, 1], rows[:, 2]
    good = np.ones(len(wl), dtype=bool)
    for lo, hi in NODATA_NM:
        good &= ~((wl >= lo) & (wl <= hi))
    return BandTable.from_arrays(
        wl,
        fwhm,
        name=[str(int(n)) for n in rows[:, 0]],
        scale=GAIN,
        offset=OFFSET,
        good=good,
    )


def open_enmap(scene: Scene, *, chunks: int = 256) -> xr.Dataset:
    """Open an EnMAP L2A product lazily (see the module docstring for the variables and rules).

    Parameters
    ----------
    scene
        An EnMAP scene; its ``data`` asset is the SPECTRAL_IMAGE, ``metadata`` the
        METADATA.XML (optional), ``mask`` the QL_PIXELMASK and ``quality:*`` the QL_QUALITY_*
        layers (optional). Local paths, ``file://`` or remote hrefs.
    chunks
        Spatial chunk size in pixels; reflectance chunks hold all bands × ``chunks`` × ``chunks``.

    Returns
    -------
    xarray.Dataset
        Dask-backed variables, coordinates and attrs ``sensor``, ``scene_id``, ``source``
        (role → href), ``band_table`` (where the bands came from), ``nodata_bands``,
        ``valid_rule`` and ``notes``.

    Raises
    ------
    SceneFormatError
        Missing or bad files, band count or grid mismatch, unknown CRS (the message names the
        file).
    ConfigError
        When ``chunks`` is not a positive integer.
    """
    import dask.array as da
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    if scene.sensor != "enmap":
        raise SceneFormatError(
            f"open_enmap got a {scene.sensor} scene",
            where=f"scene {scene.id}",
            fix="use the reader of the scene's sensor",
        )
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ConfigError(
            f"chunks must be a positive number of pixels, got {chunks!r}",
            where="open_enmap(chunks=...)",
            fix="pass e.g. chunks=256",
        )
    image_href = scene.href("data")
    notes: list[str] = []
    if "metadata" in scene.assets:
        from spectraflow.sensors.enmap_metadata import parse_metadata

        meta_href = scene.assets["metadata"]
        with open_binary(meta_href) as f:
            meta = parse_metadata(f.read(), where=meta_href)
        bands, band_source = meta.bands, "METADATA.XML"
    else:
        meta, bands, band_source = None, scene.bands, "item eo:bands"
        notes.append("no METADATA.XML: gains, offsets and wavelengths from the item's eo:bands")

    with _opened(image_href) as ds:
        image = _facts(ds, image_href)
        sample = _sample(ds)
    _check_image(image, bands, band_source, scene, meta)
    empty = nodata_bands(sample, image.nodata)
    if empty is None:
        empty = np.zeros(image.count, dtype=bool)
        notes.append("all-nodata detection skipped: no sampled pixel has data")
    # Keep the catalog's bad bands (by wavelength) when its table describes the same bands.
    table_good = scene.bands.good_mask if len(scene.bands) == len(bands) else bands.good_mask
    good = table_good & ~empty

    rows, cols = image.height, image.width
    reflectance = _lazy(
        da,
        _WindowReader(
            href=image_href,
            signature=image.signature,
            shape=(len(bands), rows, cols),
            dtype=np.dtype(np.float32),
            mode="reflectance",
            gain=np.asarray(bands.scale, dtype=np.float32),
            offset=np.asarray(bands.offset, dtype=np.float32),
            nodata=image.nodata,
        ),
        (len(bands), chunks, chunks),
    )
    data_vars: dict[str, Any] = {
        "reflectance": (
            ("band", "y", "x"),
            reflectance,
            {"long_name": "surface reflectance", "units": "1"},
        )
    }
    source = {"data": image_href}
    if meta is not None:
        source["metadata"] = scene.assets["metadata"]

    layers: dict[str, Any] = {}
    for role, name in (("mask", "defective"), *QUALITY_VARIABLES.items()):
        if role not in scene.assets:
            notes.append(f"no {role} asset: {name} left out")
            continue
        href = scene.assets[role]
        with _opened(href) as lds:
            facts = _facts(lds, href)
        expected_count = len(bands) if role == "mask" else 1
        _check_layer(facts, image, expected_count)
        layers[name] = _lazy(
            da,
            _WindowReader(
                href=href,
                signature=facts.signature,
                shape=(rows, cols),
                dtype=np.dtype(np.uint8),
                mode="count" if role == "mask" else "band",
            ),
            (chunks, chunks),
        )
        source[role] = href
        attrs = (
            {"long_name": "number of defective bands (QL_PIXELMASK)", "units": "1"}
            if role == "mask"
            else {"long_name": f"QL_QUALITY_{role.split(':')[1].upper()}"}
        )
        data_vars[name] = (("y", "x"), layers[name], attrs)

    valid = da.isfinite(reflectance).any(axis=0)
    if "quality_classes" in layers:
        valid &= layers["quality_classes"] != CLASSES_BACKGROUND
    if "quality_cloud" in layers:
        valid &= layers["quality_cloud"] == 0
    data_vars["valid"] = (("y", "x"), valid, {"long_name": "usable pixel", "rule": VALID_RULE})

    t = image.transform
    coords = {
        "band": ("band", np.asarray(bands.name, dtype=str)),
        "wavelength": ("band", bands.wavelengths, {"units": "nm"}),
        "fwhm": ("band", bands.fwhms, {"units": "nm"}),
        "good_band": ("band", good),
        "y": ("y", t.f + t.e * (np.arange(rows) + 0.5), {"units": "m"}),
        "x": ("x", t.c + t.a * (np.arange(cols) + 0.5), {"units": "m"}),
    }
    out = xr.Dataset(
        data_vars,
        coords=coords,
        attrs={
            "sensor": "enmap",
            "scene_id": scene.id,
            "source": source,
            "band_table": band_source,
            "nodata_bands": [n for n, e in zip(bands.name, empty, strict=True) if e],
            "dn_nodata": image.nodata if image.nodata is not None else NODATA,
            "valid_rule": VALID_RULE,
            "notes": notes,
        },
    )
    return out.rio.write_crs(image.crs).rio.write_transform(image.transform)


def nodata_bands(sample: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Bands whose sampled pixels are all nodata while another band has data there.

    Parameters
    ----------
    sample
        DNs of a spatial sample, shape ``(bands, pixels)``.
    nodata
        The nodata DN, or None when the file declares none (then no band is flagged).

    Returns
    -------
    numpy.ndarray or None
        Boolean per band (True = no data in the sample), or None when no sampled pixel has
        data in any band, so that the sample says nothing.
    """
    if nodata is None:
        return np.zeros(sample.shape[0], dtype=bool)
    has = sample != nodata
    if not has.any():
        return None
    return ~has.any(axis=1)


@dataclass(frozen=True)
class _Facts:
    """What open time learns about one raster file."""

    href: str
    count: int
    height: int
    width: int
    crs: CRS | None
    transform: Affine
    nodata: float | None
    signature: tuple[int, int] | None


def _facts(ds: DatasetReader, href: str) -> _Facts:
    _check_complete(ds, href)
    return _Facts(
        href=href,
        count=ds.count,
        height=ds.height,
        width=ds.width,
        crs=ds.crs,
        transform=ds.transform,
        nodata=ds.nodata,
        signature=_signature(href),
    )


def _check_image(
    image: _Facts,
    bands: BandTable,
    band_source: str,
    scene: Scene,
    meta: EnmapMetadata | None,
) -> None:
    """Band count, CRS and grid of the spectral image against the band table, item and XML."""
    name = _file_name(image.href)
    if image.count != len(bands):
        raise SceneFormatError(
            f"{name} has {image.count} bands but the band table ({band_source}) has {len(bands)}",
            where=image.href,
            fix="check that the image and its METADATA.XML/item belong to the same product",
        )
    if image.crs is None:
        raise SceneFormatError(
            f"{name} has no CRS",
            where=image.href,
            fix="use the product as DLR delivers it (GeoTIFF with its UTM CRS)",
        )
    t = image.transform
    if t.b != 0.0 or t.d != 0.0:
        raise SceneFormatError(
            f"{name} has a rotated grid ({tuple(t)[:6]}); only north-up grids are supported",
            where=image.href,
            fix="use the orthorectified L2A product",
        )
    # The raster is the truth; the item's proj: fields must agree with it.
    problems = []
    if scene.crs is not None and not _same_crs(image.crs, scene.crs):
        problems.append(f"is in {image.crs.to_string()} but the item says {scene.crs}")
    if scene.transform is not None and not np.allclose(tuple(t)[:6], scene.transform, atol=1e-6):
        problems.append(f"has transform {tuple(t)[:6]} but the item says {scene.transform}")
    if scene.shape is not None and tuple(scene.shape) != (image.height, image.width):
        problems.append(
            f"has {image.height} × {image.width} pixels but the item says "
            f"{scene.shape[0]} × {scene.shape[1]}"
        )
    if meta is not None:
        declared = (meta.channels, meta.rows, meta.columns)
        actual = (image.count, image.height, image.width)
        for what, want, got in zip(("bands", "rows", "columns"), declared, actual, strict=True):
            if want is not None and want != got:
                problems.append(f"has {got} {what} but METADATA.XML says {want}")
    if problems:
        raise SceneFormatError(
            f"{name} " + "; ".join(problems),
            where=image.href,
            fix="check that the item, METADATA.XML and the image belong to the same product",
        )


def _check_layer(layer: _Facts, image: _Facts, count: int) -> None:
    """A quality layer must have ``count`` bands on the spectral image's grid."""
    same_grid = (
        (layer.height, layer.width) == (image.height, image.width)
        and layer.crs == image.crs
        and np.allclose(tuple(layer.transform)[:6], tuple(image.transform)[:6], atol=1e-6)
    )
    if layer.count != count or not same_grid:
        raise SceneFormatError(
            f"{_file_name(layer.href)} has {layer.count} band(s) of {layer.height} × "
            f"{layer.width} pixels in {layer.crs}, expected {count} on the grid of "
            f"{_file_name(image.href)}",
            where=layer.href,
            fix="check that the layer belongs to the same product",
        )


def _same_crs(crs: CRS, user: str) -> bool:
    from rasterio.crs import CRS as RioCRS
    from rasterio.errors import CRSError

    try:
        return bool(crs == RioCRS.from_user_input(user))
    except CRSError:
        return False


def _sample(ds: DatasetReader) -> np.ndarray:
    """DNs of five small windows, ``(bands, pixels)``, from the coarsest overview if any."""
    from rasterio.windows import Window

    factor = max(ds.overviews(1) or [1])
    size_y, size_x = min(ds.height, _SAMPLE_PX * factor), min(ds.width, _SAMPLE_PX * factor)
    out_shape = (ds.count, math.ceil(size_y / factor), math.ceil(size_x / factor))
    parts = []
    for fy, fx in _SAMPLE_AT:
        row = min(max(int(fy * ds.height) - size_y // 2, 0), ds.height - size_y)
        col = min(max(int(fx * ds.width) - size_x // 2, 0), ds.width - size_x)
        window = Window(col, row, size_x, size_y)
        parts.append(ds.read(window=window, out_shape=out_shape).reshape(ds.count, -1))
    return np.concatenate(parts, axis=1)


def _check_complete(ds: DatasetReader, href: str) -> None:
    """Refuse a local GeoTIFF whose blocks end beyond the end of the file (truncated)."""
    if is_remote(href) or ds.driver != "GTiff":
        return
    size = local_path(href).stat().st_size
    for bidx in range(1, ds.count + 1):
        block_h, block_w = ds.block_shapes[bidx - 1]
        for i in range(math.ceil(ds.height / block_h)):
            for j in range(math.ceil(ds.width / block_w)):
                offset = ds.get_tag_item(f"BLOCK_OFFSET_{j}_{i}", "TIFF", bidx=bidx)
                length = ds.get_tag_item(f"BLOCK_SIZE_{j}_{i}", "TIFF", bidx=bidx)
                if offset and length and int(offset) + int(length) > size:
                    raise SceneFormatError(
                        f"{_file_name(href)} is truncated: band {bidx} block ({i}, {j}) ends at "
                        f"byte {int(offset) + int(length)} but the file has {size} bytes",
                        where=href,
                        fix="download the file again",
                    )


def _lazy(da: Any, reader: _WindowReader, chunks: tuple[int, ...]) -> Any:
    """Dask array over ``reader``; slicing it reads only the windows asked for."""
    from dask.base import tokenize

    token = tokenize(
        reader.href, reader.signature, reader.mode, reader.shape, reader.gain, reader.offset
    )
    return da.from_array(
        reader,
        chunks=chunks,
        name=f"enmap-{reader.mode}-{token}",
        lock=False,
        meta=np.empty((0,) * len(reader.shape), dtype=reader.dtype),
    )


@dataclass(frozen=True, eq=False)
class _WindowReader:
    """Array-like that reads windows of one file on demand (picklable: it holds the href).

    ``mode``: ``"reflectance"`` decodes bands of the spectral image to float32 reflectance,
    ``"count"`` counts non-zero bands per pixel (QL_PIXELMASK), ``"band"`` returns band 1.
    """

    href: str
    signature: tuple[int, int] | None
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    mode: Literal["reflectance", "count", "band"]
    gain: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    offset: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    nodata: float | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        from rasterio.errors import RasterioError
        from rasterio.windows import Window

        spans, picks = _spans(key, self.shape)
        if any(stop <= start for start, stop in spans):
            out = np.empty(tuple(max(stop - start, 0) for start, stop in spans), self.dtype)
        else:
            (r0, r1), (c0, c1) = spans[-2], spans[-1]
            window = Window(c0, r0, c1 - c0, r1 - r0)
            if is_remote(self.href):
                # Remote reads run inside the login's GDAL environment: open per window.
                with _opened(self.href) as ds:
                    out = self._read(ds, spans, window)
            else:
                try:
                    out = self._read(_handle(self.href), spans, window)
                except RasterioError as exc:
                    raise _unreadable(self.href, exc) from None
        return _take(out, picks)

    def _read(self, ds: DatasetReader, spans: list[tuple[int, int]], window: Any) -> np.ndarray:
        if self.mode == "reflectance":
            b0, b1 = spans[0]
            dn = ds.read(list(range(b0 + 1, b1 + 1)), window=window)
            return _decode(dn, self.gain[b0:b1], self.offset[b0:b1], self.nodata)
        if self.mode == "count":
            counts = np.count_nonzero(ds.read(window=window), axis=0)
            return np.minimum(counts, 255).astype(np.uint8)
        return ds.read(1, window=window).astype(self.dtype, copy=False)


def _spans(key: Any, shape: tuple[int, ...]) -> tuple[list[tuple[int, int]], list[Any]]:
    """Turn an index into the ``(start, stop)`` span to read per axis and what to take from it.

    Dask passes slices (fused with the caller's own slicing, so a small selection reads a small
    window) and, for fancy indexing, integer or boolean arrays.
    """
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    spans: list[tuple[int, int]] = []
    picks: list[Any] = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step == 1:
                spans.append((start, max(stop, start)))
                picks.append(slice(None))
                continue
            k = np.arange(start, stop, step)
        index = np.asarray(k)
        index = np.flatnonzero(index) if index.dtype == bool else index.astype(np.int64)
        index = np.where(index < 0, index + n, index)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise IndexError(f"index {k} out of range for an axis of size {n}")
        lo, hi = (int(index.min()), int(index.max()) + 1) if index.size else (0, 0)
        spans.append((lo, hi))
        picks.append(index - lo)  # 0-d for an integer index: np.take drops the axis
    return spans, picks


def _take(out: np.ndarray, picks: list[Any]) -> np.ndarray:
    for axis in reversed(range(len(picks))):
        if not isinstance(picks[axis], slice):
            out = np.take(out, picks[axis], axis=axis)
    return out


def _decode(
    dn: np.ndarray, gain: np.ndarray, offset: np.ndarray, nodata: float | None
) -> np.ndarray:
    out = dn.astype(np.float32)
    out *= gain[:, None, None]
    out += offset[:, None, None]
    if nodata is not None:
        out[dn == nodata] = np.nan
    return out


# One GDAL handle per (process, thread, local file): GDAL handles must not be shared by threads.
_LOCAL = threading.local()


def _handle(href: str) -> DatasetReader:
    """A cached handle on a local file, reopened when the file changed since."""
    import rasterio

    cache: OrderedDict[tuple[int, str, tuple[int, int] | None], DatasetReader] | None
    cache = getattr(_LOCAL, "handles", None)
    if cache is None:
        cache = _LOCAL.handles = OrderedDict()
    key = (os.getpid(), href, _signature(href))
    ds = cache.get(key)
    if ds is not None and not ds.closed:
        cache.move_to_end(key)
        return ds
    for old in [k for k in cache if k[:2] == key[:2]]:
        cache.pop(old).close()
    ds = cache[key] = rasterio.open(local_path(href))
    while len(cache) > _MAX_HANDLES:
        # Handles inherited through fork belong to the parent: drop them, do not close them.
        pid = next(iter(cache))[0]
        evicted = cache.popitem(last=False)[1]
        if pid == key[0]:
            evicted.close()
    return ds


@contextmanager
def _opened(href: str) -> Iterator[DatasetReader]:
    """The one place EnMAP rasters are opened; :mod:`spectraflow.sensors.access` routes hrefs.

    Any GDAL failure inside the block becomes a SceneFormatError naming the file.
    """
    import rasterio
    from rasterio.errors import RasterioError

    if not is_remote(href) and not local_path(href).is_file():
        raise SceneFormatError(
            f"{_file_name(href)} does not exist",
            where=href,
            fix="download the whole product, or fix the asset href",
        )
    try:
        with rasterio_source(href) as source, rasterio.open(source) as ds:
            yield ds
    except RasterioError as exc:
        raise _unreadable(href, exc) from None


def _signature(href: str) -> tuple[int, int] | None:
    if is_remote(href):
        return None
    try:
        st = local_path(href).stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _file_name(href: str) -> str:
    return Path(urlsplit(href).path).name or href


def _unreadable(href: str, exc: BaseException) -> SceneFormatError:
    return SceneFormatError(
        f"cannot read {_file_name(href)}: the file is corrupt or truncated ({exc})",
        where=href,
        fix="download the file again",
    )
