"""NASA EMIT L2A reflectance: instrument constants, band table and the granule reader.

:func:`open_emit` opens a granule (RFL, MASK and optional RFLUNCERT netCDF4 files) lazily with
dask, in raw sensor geometry: ``reflectance`` (band, line, sample), float32, fill -9999 → NaN.
The RFL variable is stored contiguous and uncompressed with bands fastest (BIP), so a spatial
chunk is a set of byte ranges, and that is what is read: positioned reads for local files (no
HDF5 call, so threads read in parallel), range requests through
:func:`spectraflow.sensors.access.open_binary` for HTTP(S) hrefs. Compressed variables (GLT,
MASK) go through h5py's hyperslab selection. Nothing but metadata is read when the granule is
opened, and each dask task opens the files it needs by href in its own process (one cached
handle per file and process), so the graph pickles to distributed workers.

Rules:

- ``good_band`` is ``good_wavelengths == 1``; 0 (the water-vapour windows 1325–1435 and
  1770–1962 nm, whose values are -0.1 and are kept) and the fill value 241 are bad bands.
- ``valid`` = reflectance present (some good band is not fill) **and not** (cloud **or**
  cirrus **or** spacecraft) in the MASK file. ``water``, ``dilated_cloud`` and ``aggregate``
  (which includes water and the cloud buffer) are exposed but not applied.
- MASK flags are uint8 0/1 with 255 where the MASK file holds fill; ``aod550`` and ``h2o``
  (g cm⁻²) are float32 with NaN.
- ``glt_x``/``glt_y`` are read with decoding off, so they stay int32 even where older files
  declare ``_FillValue`` -9999: 1-based raw sample/line indices, 0 = no data (negative values,
  if any, become 0). The ortho grid is EPSG:4326 with the file's ``geotransform`` (GDAL order,
  upper-left corner); map data onto it with :func:`spectraflow.sensors.glt.orthorectify`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import threading
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import dask.array as da
import h5py
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from spectraflow.errors import ConfigError, SceneFormatError
from spectraflow.sensors.access import is_remote, local_path, open_binary
from spectraflow.sensors.bands import BandTable
from spectraflow.sensors.glt import ortho_coords

if TYPE_CHECKING:
    from spectraflow.catalog.scene import Scene

N_BANDS = 285
CROSSTRACK = 1242
DOWNTRACK = 1280
FIRST_NM = 381.00558
LAST_NM = 2492.9934
PIXEL_M = 60.0
ORTHO_PIXEL_DEG = 0.00054223252025636698
FILL = -9999.0
BAD_BAND_VALUE = -0.1
# Water-vapour windows where the L2A product flags bands bad (good_wavelengths = 0).
WATER_VAPOUR_NM = ((1325.0, 1435.0), (1770.0, 1962.0))
MASK_BANDS = (
    "Cloud flag",
    "Cirrus flag",
    "Water flag",
    "Spacecraft Flag",
    "Dilated Cloud Flag",
    "AOD550",
    "H2O (g cm-2)",
    "Aggregate Flag",
)


def emit_band_table() -> BandTable:
    """The 285 EMIT bands: centres 381–2493 nm, FWHM 8.4–8.8 nm, water-vapour windows bad."""
    wl = np.linspace(FIRST_NM, LAST_NM, N_BANDS)
    # FWHM varies smoothly across the focal plane (8.4–8.8 nm in the real product).
    fwhm = 8.6 + 0.2 * np.cos(np.linspace(0.0, 2.0 * np.pi, N_BANDS))
    good = np.ones(N_BANDS, dtype=bool)
    for lo, hi in WATER_VAPOUR_NM:
        good &= ~((wl >= lo) & (wl <= hi))
    return BandTable.from_arrays(wl, fwhm, good=good)


# --- reader ------------------------------------------------------------------------------------

RAW_DIMS = ("line", "sample")
ORTHO_CRS = "EPSG:4326"
FLAG_NODATA = 255
# MASK layers in MASK_BANDS order → (variable, is a 0/1 flag).
_MASK_VARIABLES = (
    ("cloud", True),
    ("cirrus", True),
    ("water", True),
    ("spacecraft", True),
    ("dilated_cloud", True),
    ("aod550", False),
    ("h2o", False),
    ("aggregate", True),
)
_INVALID_FLAGS = ("cloud", "cirrus", "spacecraft")
_H5_CACHE_BYTES = 32 * 1024 * 1024  # holds a whole ~4 MiB netCDF chunk of the GLT or MASK
_FIX_CORRUPT = "download the granule again; the file is truncated, corrupt or not EMIT L2A"
NOTES = (
    "EMIT L2A in raw sensor geometry (band, line, sample); reflectance fill -9999 -> NaN. "
    "good_band = good_wavelengths == 1 (water-vapour bands stay -0.1 and are flagged bad). "
    "valid = reflectance present (some good band not fill) and not (cloud or cirrus or "
    "spacecraft) in the MASK file; water, dilated_cloud and aggregate are not applied. "
    "Flags uint8 0/1, 255 = no data; aod550, h2o float32, NaN = no data. glt_x/glt_y: 1-based "
    "raw sample/line, 0 = no data; ortho grid EPSG:4326, geotransform = upper-left corner; "
    "orthorectify with spectraflow.sensors.glt.orthorectify."
)
_Variables = dict[str, tuple[tuple[str, ...], Any, dict[str, Any]]]


def open_emit(scene: Scene, *, chunks: int = 256) -> xr.Dataset:
    """Open an EMIT L2A granule lazily (dask) in raw sensor geometry.

    Parameters
    ----------
    scene
        An EMIT scene with assets ``"data"`` (RFL file) and ``"mask"`` (MASK file), and
        optionally ``"uncertainty"`` (RFLUNCERT file).
    chunks
        Spatial chunk size in lines and samples (all bands in one chunk); the GLT is chunked
        the same way on the ortho grid.

    Returns
    -------
    xr.Dataset
        ``reflectance`` float32 (band, line, sample); ``valid`` bool (line, sample); MASK
        layers ``cloud``, ``cirrus``, ``water``, ``spacecraft``, ``dilated_cloud``,
        ``aggregate`` (uint8) and ``aod550``, ``h2o`` (float32); ``reflectance_uncertainty``
        when the scene has that asset; ``glt_x``, ``glt_y`` int32 (ortho_y, ortho_x).
        Coordinates ``band``, ``wavelength`` and ``fwhm`` (nm, float64), ``good_band``, and
        ``ortho_x``/``ortho_y`` (pixel-centre longitude/latitude); CRS EPSG:4326 and the ortho
        grid's transform written with rioxarray. Attributes ``sensor``, ``scene_id``,
        ``source`` (role → href), ``geotransform``, ``ortho_crs``, ``notes`` and the product's
        ``time_coverage_start``/``end`` and ``product_version``. See the module docstring for
        the rules.

    Raises
    ------
    SceneFormatError
        A missing asset or file, a truncated or corrupt file, a missing variable, a band count
        that differs from the wavelengths or from the scene's band table, or shapes that
        disagree between the files. The message names the file.
    """
    if scene.sensor != "emit":
        raise SceneFormatError(
            f"open_emit reads EMIT scenes, got a {scene.sensor} scene",
            where=f"scene {scene.id}",
            fix="use the reader of the scene's sensor",
        )
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ConfigError(
            f"chunks must be a positive integer, got {chunks!r}",
            where="chunks",
            fix="pass a spatial chunk size such as 256",
        )
    hrefs = {"data": scene.href("data"), "mask": scene.href("mask")}
    if "uncertainty" in scene.assets:
        hrefs["uncertainty"] = scene.assets["uncertainty"]
    rfl = _read_rfl(hrefs["data"])
    lines, samples, n_bands = rfl.reflectance.shape
    if len(scene.bands) != n_bands:
        raise SceneFormatError(
            f"reflectance has {n_bands} bands but the scene's band table has {len(scene.bands)}",
            where=_where(hrefs["data"]),
            fix="check that the item and the file belong to the same EMIT product",
        )

    raw = _lazy(rfl.reflectance, (chunks, chunks, n_bands))
    # valid shares the reflectance reads when both are computed together (one graph).
    good_idx = np.flatnonzero(rfl.good) if rfl.good.any() else np.arange(n_bands)
    present = ((raw != rfl.reflectance.fill) & ~da.isnan(raw))[..., good_idx].any(axis=-1)
    variables: _Variables = {
        "reflectance": (
            ("band", *RAW_DIMS),
            _decode(raw, rfl.reflectance.fill).transpose(2, 0, 1),
            {"long_name": "Surface Reflectance", "units": "1"},
        )
    }
    flags = _read_mask(hrefs["mask"], (lines, samples), chunks, variables)
    flagged = da.zeros((lines, samples), dtype=bool, chunks=chunks)
    for name in _INVALID_FLAGS:
        flagged = flagged | (flags[name] == 1)
    variables["valid"] = (
        RAW_DIMS,
        present & ~flagged,
        {"long_name": "pixel has reflectance and no cloud, cirrus or spacecraft flag"},
    )
    if "uncertainty" in hrefs:
        unc = _read_uncertainty(hrefs["uncertainty"], rfl.reflectance.shape)
        variables["reflectance_uncertainty"] = (
            ("band", *RAW_DIMS),
            _decode(_lazy(unc, (chunks, chunks, n_bands)), unc.fill).transpose(2, 0, 1),
            {"long_name": "Surface Reflectance Uncertainty", "units": "1"},
        )
    for name, label in (("glt_x", "GLT Sample Lookup"), ("glt_y", "GLT Line Lookup")):
        glt = da.maximum(_lazy(rfl.glt[name], (chunks, chunks)), 0).astype(np.int32)
        variables[name] = (
            ("ortho_y", "ortho_x"),
            glt,
            {"long_name": label, "description": "1-based raw index, 0 = no data"},
        )

    ortho_shape = rfl.glt["glt_x"].shape
    lonlat = ortho_coords(rfl.geotransform, (ortho_shape[0], ortho_shape[1]))
    ds = xr.Dataset(
        {k: xr.Variable(dims, data, attrs) for k, (dims, data, attrs) in variables.items()},
        coords={
            "band": ("band", np.asarray(scene.bands.name, dtype=str)),
            "wavelength": ("band", rfl.wavelength, {"units": "nm"}),
            "fwhm": ("band", rfl.fwhm, {"units": "nm"}),
            "good_band": ("band", rfl.good),
            "ortho_x": ("ortho_x", lonlat.lon, {"units": "degrees_east"}),
            "ortho_y": ("ortho_y", lonlat.lat, {"units": "degrees_north"}),
        },
        attrs={
            "sensor": "emit",
            "scene_id": scene.id,
            "source": dict(hrefs),
            "geotransform": list(rfl.geotransform),
            "ortho_crs": ORTHO_CRS,
            **rfl.attrs,
            "notes": NOTES,
        },
    )
    ds = ds.rio.write_crs(ORTHO_CRS)
    return ds.rio.write_transform(Affine.from_gdal(*rfl.geotransform))


def _decode(raw: da.Array, fill: float | None) -> da.Array:
    """Float32 values with the fill value as NaN."""
    if fill is None:
        return raw.astype(np.float32)
    return da.where(raw == fill, np.float32(np.nan), raw).astype(np.float32)


def _lazy(var: _LazyVariable, chunks: tuple[int, ...]) -> da.Array:
    meta = np.empty((0,) * var.ndim, dtype=var.dtype)
    return da.from_array(var, chunks=chunks, meta=meta, inline_array=False)


# --- file contents (metadata only at open time) ------------------------------------------------


class _Rfl(NamedTuple):
    reflectance: _LazyVariable
    wavelength: np.ndarray
    fwhm: np.ndarray
    good: np.ndarray
    glt: dict[str, _LazyVariable]
    geotransform: tuple[float, ...]  # GDAL order, upper-left corner
    attrs: dict[str, str]


def _read_rfl(href: str) -> _Rfl:
    with _errors(href):
        f = _h5file(href)
        refl = _variable(f, href, "reflectance", ndim=3)
        n = refl.shape[2]
        wl = _vector(f, href, "sensor_band_parameters/wavelengths", n)
        fwhm = _vector(f, href, "sensor_band_parameters/fwhm", n)
        good = np.ones(n, dtype=bool)
        if "sensor_band_parameters/good_wavelengths" in f:
            good = _vector(f, href, "sensor_band_parameters/good_wavelengths", n) == 1
        glt = {name: _variable(f, href, f"location/{name}", ndim=2) for name in ("glt_x", "glt_y")}
        kinds = {v.dtype.kind for v in glt.values()}
        if glt["glt_x"].shape != glt["glt_y"].shape or not kinds <= {"i", "u"}:
            raise SceneFormatError(
                "location/glt_x and location/glt_y are not integer rasters of one shape",
                where=_where(href),
                fix=_FIX_CORRUPT,
            )
        gt = np.asarray(f.attrs.get("geotransform", ()), dtype=np.float64).ravel()
        if gt.size != 6 or not np.all(np.isfinite(gt)) or gt[1] == 0 or gt[5] == 0:
            raise SceneFormatError(
                "global attribute geotransform is missing or not 6 valid numbers",
                where=_where(href),
                fix=_FIX_CORRUPT,
            )
        attrs = {
            key: _text(f.attrs[key])
            for key in ("time_coverage_start", "time_coverage_end", "product_version")
            if key in f.attrs
        }
    return _Rfl(
        reflectance=refl,
        wavelength=wl.astype(np.float64),
        fwhm=fwhm.astype(np.float64),
        good=good,
        glt=glt,
        geotransform=tuple(float(v) for v in gt),
        attrs=attrs,
    )


def _read_mask(
    href: str, shape: tuple[int, int], chunks: int, variables: _Variables
) -> dict[str, da.Array]:
    """Add the 8 MASK layers to ``variables``; return the flag layers by name."""
    with _errors(href):
        f = _h5file(href)
        mask = _variable(f, href, "mask", ndim=3)
        names: list[str] = []
        if "sensor_band_parameters/mask_bands" in f:
            names = [_text(v).strip().lower() for v in f["sensor_band_parameters/mask_bands"][()]]
    if mask.shape[:2] != shape or mask.shape[2] < len(_MASK_VARIABLES):
        raise SceneFormatError(
            f"mask has shape {mask.shape}, expected {shape} with {len(_MASK_VARIABLES)} layers",
            where=_where(href),
            fix="check that the MASK file belongs to the same granule as the RFL file",
        )
    raw = _lazy(mask, (chunks, chunks, mask.shape[2]))
    missing = da.isnan(raw) if mask.fill is None else (raw == mask.fill) | da.isnan(raw)
    flags: dict[str, da.Array] = {}
    for position, ((name, is_flag), label) in enumerate(
        zip(_MASK_VARIABLES, MASK_BANDS, strict=True)
    ):
        # By name when the file lists its layers, else in the documented order.
        k = names.index(label.lower()) if label.lower() in names else position
        layer, gone = raw[..., k], missing[..., k]
        attrs: dict[str, Any] = {"long_name": label}
        if is_flag:
            flags[name] = da.where(gone, np.uint8(FLAG_NODATA), (layer > 0).astype(np.uint8))
            attrs.update(flag_values=[0, 1], flag_meanings="not_set set", nodata=FLAG_NODATA)
            variables[name] = (RAW_DIMS, flags[name], attrs)
        else:
            if name == "h2o":
                attrs["units"] = "g cm-2"
            data = da.where(gone, np.float32(np.nan), layer).astype(np.float32)
            variables[name] = (RAW_DIMS, data, attrs)
    return flags


def _read_uncertainty(href: str, shape: tuple[int, ...]) -> _LazyVariable:
    with _errors(href):
        unc = _variable(_h5file(href), href, "reflectance_uncertainty", ndim=3)
    if unc.shape != shape:
        raise SceneFormatError(
            f"reflectance_uncertainty has shape {unc.shape}, reflectance has {shape}",
            where=_where(href),
            fix="check that the RFLUNCERT file belongs to the same granule as the RFL file",
        )
    return unc


def _variable(f: h5py.File, href: str, name: str, *, ndim: int) -> _LazyVariable:
    """A lazily read variable; byte-range reads when it is stored contiguous, unfiltered."""
    node = f.get(name)
    if not isinstance(node, h5py.Dataset) or node.ndim != ndim:
        found = "missing" if node is None else f"not a {ndim}-D variable"
        raise SceneFormatError(f"variable {name} is {found}", where=_where(href), fix=_FIX_CORRUPT)
    offset = None
    if node.chunks is None and node.compression is None:
        offset = node.id.get_offset()  # None when no storage was ever written
        path = _local_path(href)
        end = (offset or 0) + node.size * node.dtype.itemsize
        if offset is not None and path is not None and end > os.stat(path).st_size:
            raise SceneFormatError(
                f"variable {name} extends past the end of the file (truncated)",
                where=_where(href),
                fix=_FIX_CORRUPT,
            )
    fill = node.attrs.get("_FillValue")
    return _LazyVariable(
        href,
        name,
        node.shape,
        node.dtype,
        offset=offset,
        fill=None if fill is None else float(np.asarray(fill).ravel()[0]),
    )


def _vector(f: h5py.File, href: str, name: str, n: int) -> np.ndarray:
    node = f.get(name)
    if not isinstance(node, h5py.Dataset) or node.ndim != 1:
        raise SceneFormatError(f"variable {name} is missing", where=_where(href), fix=_FIX_CORRUPT)
    if node.shape[0] != n:
        raise SceneFormatError(
            f"{name} has {node.shape[0]} values but reflectance has {n} bands",
            where=_where(href),
            fix=_FIX_CORRUPT,
        )
    return np.asarray(node[()])


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.ravel()[0]
    return value.decode() if isinstance(value, bytes) else str(value)


# --- lazy reads --------------------------------------------------------------------------------


class _LazyVariable:
    """Picklable array-like over one stored variable, opened by href in the reading process.

    ``offset`` is the byte offset of a contiguous, unfiltered variable: a selection then
    becomes reads of the byte ranges it covers. Otherwise h5py reads the hyperslab. ``calls``
    and ``elements_read`` count this process's reads of this object.
    """

    def __init__(
        self,
        href: str,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        *,
        offset: int | None,
        fill: float | None,
    ) -> None:
        self.href = href
        self.name = name
        self.shape = tuple(int(n) for n in shape)
        self.stored_dtype = np.dtype(dtype)
        self.dtype = self.stored_dtype.newbyteorder("=")
        self.offset = offset
        self.fill = fill
        self._reset()

    def _reset(self) -> None:
        self.calls = 0
        self.elements_read = 0
        self._lock = threading.Lock()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getstate__(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.__dict__.items() if k not in ("_lock", "calls", "elements_read")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __dask_tokenize__(self) -> Hashable:
        # Same file version and variable → same dask keys, so repeated opens share results.
        key = (self.href, self.name, self.shape, str(self.stored_dtype), self.offset)
        return (type(self).__name__, *key, _stamp(self.href))

    def __getitem__(self, key: Any) -> np.ndarray:
        bounds, residual = _bounding(key, self.shape)
        with _errors(self.href):
            if any(stop <= start for start, stop in bounds):
                slab = np.empty([stop - start for start, stop in bounds], dtype=self.dtype)
            elif self.offset is not None:
                bounds, residual = _widen(bounds, residual, self.shape)
                slab = self._read_ranges(bounds)
            else:
                node = _h5file(self.href)[self.name]
                slab = np.asarray(node[tuple(slice(a, b) for a, b in bounds)], dtype=self.dtype)
        with self._lock:
            self.calls += 1
            self.elements_read += slab.size
        return slab[tuple(residual)]

    def _read_ranges(self, bounds: list[tuple[int, int]]) -> np.ndarray:
        """Read a box whose trailing axes are whole: one byte range per run of the box."""
        assert self.offset is not None
        raw = _rawfile(self.href)
        shape = [stop - start for start, stop in bounds]
        out = np.empty(shape, dtype=self.stored_dtype)
        buf = out.reshape(-1).view(np.uint8).data
        # Axis j is the last partial axis; the box's runs are contiguous along j and after it.
        j = max((a for a, (s, e) in enumerate(bounds) if (s, e) != (0, self.shape[a])), default=0)
        run = int(np.prod(shape[j:])) * self.stored_dtype.itemsize
        strides = np.cumprod((1, *self.shape[:0:-1]))[::-1] * self.stored_dtype.itemsize
        outer = [range(s, e) for s, e in bounds[:j]]
        for n, index in enumerate(np.ndindex(*[len(r) for r in outer]) if outer else [()]):
            at = sum((outer[a][i] * int(strides[a]) for a, i in enumerate(index)), 0)
            at += bounds[j][0] * int(strides[j])
            got = _read_into(raw, buf[n * run : (n + 1) * run], self.offset + at)
            if got < run:
                raise SceneFormatError(
                    f"variable {self.name} ends early: the file is truncated",
                    where=_where(self.href),
                    fix=_FIX_CORRUPT,
                )
        return out if self.stored_dtype == self.dtype else out.astype(self.dtype)


def _bounding(key: Any, shape: tuple[int, ...]) -> tuple[list[tuple[int, int]], list[Any]]:
    """Bounding box ``[(start, stop), ...]`` of a selection and the index selecting it there.

    Supports what dask and users pass: integers, slices (any step), ``...`` and integer or
    boolean arrays.
    """
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    if len(key) != len(shape):
        raise IndexError(f"too many indices for an array of shape {shape}")
    bounds: list[tuple[int, int]] = []
    residual: list[Any] = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            r = range(*k.indices(n))
            if not r:
                bounds.append((0, 0))
                residual.append(slice(0, 0))
                continue
            lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
            bounds.append((lo, hi))
            residual.append(slice(0, hi - lo, r.step) if r.step > 0 else np.asarray(r) - lo)
            continue
        idx = np.asarray(k)
        if idx.dtype.kind == "b":
            (idx,) = np.nonzero(idx)
        if idx.dtype.kind not in "iu":
            raise IndexError(f"unsupported index {k!r}")
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"index {k!r} out of range for axis of length {n}")
        lo = int(idx.min()) if idx.size else 0
        bounds.append((lo, int(idx.max()) + 1 if idx.size else 0))
        residual.append(idx - lo)
    return bounds, residual


def _widen(
    bounds: list[tuple[int, int]], residual: list[Any], shape: tuple[int, ...]
) -> tuple[list[tuple[int, int]], list[Any]]:
    """Whole last axis (a pixel's spectrum is one run), the selection shifted to match."""
    start = bounds[-1][0]
    last = residual[-1]
    if isinstance(last, slice):
        stop = None if last.stop is None else last.stop + start
        last = slice(last.start + start, stop, last.step)
    else:
        last = last + start
    return [*bounds[:-1], (0, shape[-1])], [*residual[:-1], last]


def _read_into(raw: _RawFile, buf: memoryview, offset: int) -> int:
    """Fill ``buf`` from ``offset``; returns the bytes read (fewer only at end of file)."""
    done = 0
    while done < len(buf):
        if raw.positioned:
            got = os.preadv(raw.file.fileno(), [buf[done:]], offset + done)
        else:
            with raw.lock:  # seek + read must not interleave between threads
                raw.file.seek(offset + done)
                got = raw.file.readinto(buf[done:]) or 0
        if got == 0:
            break
        done += got
    return done


# --- opening files (every open goes through _open_once) ----------------------------------------


class _RawFile(NamedTuple):
    file: Any  # a local FileIO, or spectraflow.sensors.access.open_binary's file object
    lock: threading.Lock
    positioned: bool  # os.preadv: threads read in parallel, no lock


def _h5file(href: str) -> h5py.File:
    """The granule file ``href`` opened with h5py, once per process."""
    return _open_once("h5", href, _stamp(href), os.getpid())


def _rawfile(href: str) -> _RawFile:
    """The file ``href`` opened for byte-range reads, once per process."""
    return _open_once("raw", href, _stamp(href), os.getpid())


@functools.lru_cache(maxsize=32)
def _open_once(kind: str, href: str, stamp: tuple[int, int, int] | None, pid: int) -> Any:
    """A file handle, opened once per key; remote hrefs go through the access layer.

    ``stamp`` (inode, size, mtime) reopens a rewritten local file, ``pid`` makes a forked child
    open its own; evicted handles close when no read still uses them.
    """
    path = _local_path(href)
    if kind == "raw":
        if path is None:
            return _RawFile(open_binary(href), threading.Lock(), False)
        return _RawFile(io.FileIO(path, "r"), threading.Lock(), hasattr(os, "preadv"))
    return h5py.File(path or open_binary(href), "r", rdcc_nbytes=_H5_CACHE_BYTES)


def _local_path(href: str) -> str | None:
    return None if is_remote(href) else str(local_path(href))


def _stamp(href: str) -> tuple[int, int, int] | None:
    path = _local_path(href)
    if path is None:
        return None
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _where(href: str) -> str:
    return href.split("?", 1)[0]  # never a signature in a message


@contextlib.contextmanager
def _errors(href: str) -> Iterator[None]:
    """Turn I/O failures on ``href`` into :class:`SceneFormatError` naming the file."""
    try:
        yield
    except SceneFormatError:
        raise
    except FileNotFoundError:
        raise SceneFormatError(
            "file not found", where=_where(href), fix="check the scene's asset hrefs"
        ) from None
    except (OSError, KeyError, ValueError) as exc:
        raise SceneFormatError(
            f"cannot read the file: {exc}", where=_where(href), fix=_FIX_CORRUPT
        ) from exc
