"""Simulated NASA EMIT L2A reflectance granules (collection ``EMITL2ARFL``, version 001).

A granule is what LP DAAC serves: three netCDF4 files in raw sensor geometry (``RFL``,
``RFLUNCERT``, ``MASK``; ``downtrack × crosstrack`` pixels of 60 m on a swath rotated with the
ISS ground track), a browse PNG, the CMR UMM-G record (``.cmr.json``) and a STAC item shaped like
NASA CMR-STAC's (collection ``EMITL2ARFL_001``). Every file follows the layout of the real
product (see ``shared/real-data/emit``): the DMR++ listing fixes names, types, fill values,
attributes, chunking and compression. The geographic lookup table (GLT) maps an EPSG:4326 grid
whose ``geotransform`` is the upper-left *corner* onto raw pixels (1-based, 0 = no data).

Truth: land cover, CH4 enhancement and cloud, orthorectified through the GLT (COGs, via
:func:`spectraflow.simulate.rasters.write_truth`) and in sensor geometry
(``truth_sensor_geometry.nc``) for models that work on raw EMIT lines.

Geometry lives in :mod:`spectraflow.simulate.emit_geometry`, the UMM-G record and STAC item in
:mod:`spectraflow.simulate.emit_catalog` (both pure); this module renders and writes.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import h5netcdf
import h5py
import numpy as np
from PIL import Image
from scipy import ndimage

from spectraflow.sensors.emit import BAD_BAND_VALUE, FILL, MASK_BANDS, emit_band_table
from spectraflow.simulate.emit_catalog import (
    COLLECTION,
    SOFTWARE_BUILD,
    archive_entry,
    cmr_stac_item,
    granule_files,
    granule_record,
    orbit_segment,
)
from spectraflow.simulate.emit_geometry import (
    Geolocation,
    OrthoGrid,
    Swath,
    counter_clockwise,
    orthorectify,
)
from spectraflow.simulate.noise import Fractal
from spectraflow.simulate.rasters import write_truth
from spectraflow.simulate.render import NOISE, render
from spectraflow.simulate.scene import SceneSpec, SimulatedScene
from spectraflow.simulate.world import CLASS_INDEX, CLASSES, Region

# One real granule, 2023-03-16T04:51:33 UTC, lies on orbit 07503: orbit numbers count ISS
# revolutions (15.5 a day) from there, so simulated ids look like real ones.
_ORBIT_REF = (datetime(2023, 3, 16, 4, 51, 33), 7503)
_ORBIT_PERIOD_S = 86400.0 / 15.5
_LINE_TIME_S = 20.0 / 2176  # a 2176-line scene spans 20 s
_BLOCK_ROWS = 32
_DILATE_PX = 4
# netCDF-C aims for chunks of at most 4 MiB (the real GLT: 849 x 1109 int32).
_CHUNK_BYTES = 4 * 1024 * 1024
_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)
_SUMMARY = (
    "The Earth Surface Mineral Dust Source Investigation (EMIT) is an Earth Ventures-Instrument "
    "(EVI-4) Mission that maps the surface mineralogy of arid dust source regions via imaging "
    "spectroscopy in the visible and short-wave infrared (VSWIR). Installed on the International "
    "Space Station (ISS), the EMIT instrument is a Dyson imaging spectrometer that uses contiguous "
    "spectroscopic measurements from 410 to 2450 nm to resolve absoprtion features of iron oxides, "
    "clays, sulfates, carbonates, and other dust-forming minerals. During its one-year mission, "
    "EMIT will observe the sunlit Earth's dust source regions that occur within +/-52\u00b0 "
    "latitude and produce maps of the source regions that can be used to improve forecasts of the "
    "role of mineral dust in the radiative forcing (warming or cooling) of the atmosphere."
)
# (title, summary tail, PGE script) per file; the real writer appends a literal "\n\n".
_PRODUCTS = {
    "RFL": (
        "EMIT L2A Estimated Surface Reflectance 60 m V001",
        "This file contains L2A estimated surface reflectances and geolocation data. Reflectance "
        "estimates are created using an Optimal Estimation technique - see ATBD for details. "
        "Reflectance values are reported as fractions (relative to 1). Geolocation data (latitude, "
        "longitude, height) and a lookup table to project the data are also included.",
        "spectrum_quality.py",
    ),
    "RFLUNCERT": (
        "EMIT L2A Estimated Surface Reflectance Uncertainty 60 m V001",
        "This file contains L2A estimated surface reflectance uncertainties and geolocation data. "
        "Reflectance uncertainty estimates are created using an Optimal Estimation technique - see "
        "ATBD for details. Reflectance uncertainty values are reported as fractions (relative to "
        "1). Geolocation data (latitude, longitude, height) and a lookup table to project the data "
        "are also included.",
        "apply_oe.py",
    ),
    "MASK": (
        "EMIT L2A Masks 60 m V001",
        "This file contains masks for L2A estimated surface reflectances and geolocation data. "
        "Masks account for clouds, cloud shadows (via buffering), spacecraft interference, and "
        "poor atmospheric conditions. Geolocation data (latitude, longitude, height) and a lookup "
        "table to project the data are also included.",
        "make_emit_masks.py",
    ),
}


# --- identifiers -------------------------------------------------------------------------------


def orbit_number(when: datetime) -> int:
    """ISS orbit counter (5 digits in flight lines) of an acquisition time."""
    ref, ref_orbit = _ORBIT_REF
    elapsed = (when.replace(tzinfo=None) - ref).total_seconds()
    return (ref_orbit + int(np.floor(elapsed / _ORBIT_PERIOD_S + 0.5))) % 100_000


def scene_id(when: datetime, region: Region, seed: int) -> str:
    """Granule UR: ``EMIT_L2A_RFL_001_<YYYYMMDDTHHMMSS>_<YY><orbit 5>_<scene 3>``."""
    scene = 1 + (region.seed * 7919 + seed * 104_729) % 40
    return f"EMIT_L2A_RFL_001_{when:%Y%m%dT%H%M%S}_{when:%y}{orbit_number(when):05d}_{scene:03d}"


# --- netCDF writers ----------------------------------------------------------------------------


def _chunks(shape: tuple[int, ...], itemsize: int, axes: int = 2) -> tuple[int, ...]:
    """Split the first ``axes`` dimensions evenly into the fewest parts under 4 MiB a chunk."""
    k = 1
    while True:
        head = [int(np.ceil(n / k)) for n in shape[:axes]]
        if (
            int(np.prod(head)) * int(np.prod(shape[axes:])) * itemsize <= _CHUNK_BYTES
            or min(head) == 1
        ):
            return (*head, *shape[axes:])
        k += 1


def _duration(lines: int) -> timedelta:
    return timedelta(seconds=round(lines * _LINE_TIME_S))


def _sha512(path: Path) -> str:
    h = hashlib.sha512()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _global_attrs(kind: str, spec: SceneSpec, grid: OrthoGrid, granule: str) -> dict[str, Any]:
    """Global attributes of one file, in the real files' order."""
    title, tail, pge = _PRODUCTS[kind]
    when = spec.datetime.replace(tzinfo=None)
    end = when + _duration(spec.shape[0])
    orbit = granule.split("_")[-2][2:]
    flight_line = f"emit{when:%Y%m%dt%H%M%S}_o{orbit}_s{orbit_segment(granule):03d}"
    base = f"/store/emit/ops/data/acquisitions/{when:%Y%m%d}/emit{when:%Y%m%dt%H%M%S}/l1b"
    history = (
        f"PGE Run Command: {{python spectraflow/simulate/emit.py ({pge}, simulated)}}, "
        f"PGE Input Files: {{radiance_file={base}/{flight_line}_l1b_rdn_b0106_v01.img, "
        f"pixel_locations_file={base}/{flight_line}_l1b_loc_b0106_v01.img, "
        f"observation_parameters_file={base}/{flight_line}_l1b_obs_b0106_v01.img}}"
    )
    created = when + timedelta(hours=29, minutes=37, seconds=35)
    return {
        "ncei_template_version": "NCEI_NetCDF_Swath_Template_v2.0",
        "summary": f"{_SUMMARY}\\n\\n{tail}",
        "keywords": "Imaging Spectroscopy, minerals, EMIT, dust, radiative forcing",
        "Conventions": "CF-1.63",
        "sensor": "EMIT (Earth Surface Mineral Dust Source Investigation)",
        "instrument": "EMIT",
        "platform": "ISS",
        "institution": "NASA Jet Propulsion Laboratory/California Institute of Technology",
        "license": "https://science.nasa.gov/earth-science/earth-science-data/data-information-policy/",
        "naming_authority": "LPDAAC",
        "date_created": f"{created:%Y-%m-%dT%H:%M:%SZ}",
        "keywords_vocabulary": "NASA Global Change Master Directory (GCMD) Science Keywords",
        "stdname_vocabulary": "NetCDF Climate and Forecast (CF) Metadata Convention",
        "creator_name": "Jet Propulsion Laboratory/California Institute of Technology",
        "creator_url": "https://earth.jpl.nasa.gov/emit/",
        "project": "Earth Surface Mineral Dust Source Investigation",
        "project_url": "https://emit.jpl.nasa.gov/",
        "publisher_name": "NASA LPDAAC",
        "publisher_url": "https://lpdaac.usgs.gov",
        "publisher_email": "lpdaac@usgs.gov",
        "identifier_product_doi_authority": "https://doi.org",
        "flight_line": flight_line,
        "time_coverage_start": f"{when:%Y-%m-%dT%H:%M:%S}+0000",
        "time_coverage_end": f"{end:%Y-%m-%dT%H:%M:%S}+0000",
        "software_build_version": SOFTWARE_BUILD,
        "software_delivery_version": SOFTWARE_BUILD,
        "product_version": "V001",
        "history": history,
        "crosstrack_orientation": "as seen on ground",
        "easternmost_longitude": np.float64(grid.east),
        "northernmost_latitude": np.float64(grid.north),
        "westernmost_longitude": np.float64(grid.west),
        "southernmost_latitude": np.float64(grid.south),
        "spatialResolution": np.float64(grid.res),
        "spatial_ref": _WGS84_WKT,
        "geotransform": np.array(grid.geotransform, dtype=np.float64),
        "day_night_flag": "Day",
        "title": title,
    }


def _variable(
    group: h5netcdf.Group,
    name: str,
    dims: tuple[str, ...],
    dtype: Any,
    long_name: str,
    units: str | None,
    *,
    data: np.ndarray | None = None,
    fill: float | None = FILL,
    compress: int | None = None,
    chunks: tuple[int, ...] | None = None,
) -> h5netcdf.Variable:
    """A variable as the real writer makes it.

    ``_FillValue`` is -9999 cast to the type, as netCDF4 does (uint8: 241); then ``long_name``
    and ``units``. Storage is contiguous unless compressed (chunked, shuffle + deflate).
    """
    kwargs: dict[str, Any] = {}
    if compress is not None:
        kwargs = {"compression": "gzip", "compression_opts": compress, "shuffle": True}
    elif data is None:
        kwargs = {"fill_time": "never"}  # block writes cover it all: skip writing fill first
    fillvalue = None
    if fill is not None:
        integer = np.dtype(dtype).kind in "iu"
        fillvalue = np.array(int(fill) if integer else fill).astype(dtype)
    var = group.create_variable(
        name, dims, dtype, data=data, fillvalue=fillvalue, chunks=chunks, **kwargs
    )
    var.attrs["long_name"] = long_name
    if units is not None:
        var.attrs["units"] = units
    return var


def _open_product(
    path: Path, kind: str, spec: SceneSpec, grid: OrthoGrid, granule: str, n_bands: int
) -> h5netcdf.File:
    f = h5netcdf.File(path, "w")
    f.attrs.update(_global_attrs(kind, spec, grid, granule))
    rows, cols = spec.shape
    f.dimensions = {
        "downtrack": rows,
        "crosstrack": cols,
        "bands": n_bands,
        "ortho_y": grid.rows,
        "ortho_x": grid.cols,
    }
    return f


def _write_band_parameters(
    f: h5netcdf.File, wl: np.ndarray, fwhm: np.ndarray, good: np.ndarray
) -> None:
    g = f.create_group("sensor_band_parameters")
    _variable(g, "wavelengths", ("bands",), "f4", "Wavelength Centers", "nm", data=wl)
    _variable(g, "fwhm", ("bands",), "f4", "Full Width at Half Max", "nm", data=fwhm)
    _variable(
        g, "good_wavelengths", ("bands",), "u1",
        "Wavelengths where reflectance is useable: 1 = good data, 0 = bad data", "unitless",
        data=good.astype(np.uint8),
    )  # fmt: skip


def _write_mask_bands(f: h5netcdf.File, n_wavelengths: int) -> None:
    f.dimensions["packed_wavelength_bands"] = -(-n_wavelengths // 8)
    g = f.create_group("sensor_band_parameters")
    names = np.array(MASK_BANDS, dtype=object)
    var = g.create_variable("mask_bands", ("bands",), h5py.string_dtype(), data=names)
    var.attrs["long_name"] = "Mask Band Names"


def _write_location(
    f: h5netcdf.File,
    lon: np.ndarray,
    lat: np.ndarray,
    elev: np.ndarray,
    glt: tuple[np.ndarray, np.ndarray],
) -> None:
    loc = f.create_group("location")
    raw = ("downtrack", "crosstrack")
    _variable(loc, "lon", raw, "f8", "Longitude (WGS-84)", "degrees east", data=lon)
    _variable(loc, "lat", raw, "f8", "Latitude (WGS-84)", "degrees north", data=lat)
    _variable(loc, "elev", raw, "f8", "Surface Elevation", "m", data=elev)
    chunks = _chunks(glt[0].shape, 4)
    for name, data, long_name in (
        ("glt_x", glt[0], "GLT Sample Lookup"),
        ("glt_y", glt[1], "GLT Line Lookup"),
    ):
        _variable(
            loc, name, ("ortho_y", "ortho_x"), "i4", long_name, "pixel location",
            data=data, compress=4, chunks=chunks,
        )  # fmt: skip


def _write_sensor_truth(
    path: Path, classes: np.ndarray, ch4: np.ndarray, cloud: np.ndarray
) -> None:
    """Truth in sensor geometry: the same lines and samples as the L2A files."""
    with h5netcdf.File(path, "w") as f:
        f.dimensions = {"downtrack": classes.shape[0], "crosstrack": classes.shape[1]}
        f.attrs["title"] = "Simulated truth in EMIT sensor geometry"
        dims = ("downtrack", "crosstrack")
        opts: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
        v = f.create_variable("classes", dims, "u1", data=classes, fillvalue=np.uint8(0), **opts)
        v.attrs["flag_values"] = np.array([c.value for c in CLASSES], dtype=np.uint8)
        v.attrs["flag_meanings"] = " ".join(c.name for c in CLASSES)
        v = f.create_variable("ch4_ppm_m", dims, "f4", data=ch4, **opts)
        v.attrs["long_name"] = "CH4 column enhancement (footprint mean)"
        v.attrs["units"] = "ppm m"
        v = f.create_variable("cloud", dims, "u1", data=cloud, fillvalue=np.uint8(255), **opts)
        v.attrs["flag_values"] = np.array([0, 1, 2], dtype=np.uint8)
        v.attrs["flag_meanings"] = "clear cloud cloud_shadow"


# --- masks, browse -----------------------------------------------------------------------------


def _mask_layers(
    spec: SceneSpec, swath: Swath, cloud: np.ndarray, water: np.ndarray, elev: np.ndarray
) -> np.ndarray:
    """The 8 L2A mask bands (lines, samples, 8) float32 in :data:`MASK_BANDS` order."""
    x, y = swath.rows_xy(slice(0, swath.shape[0]))
    seed = spec.conditions.seed
    aod = 0.11 + 0.05 * Fractal(seed * 13 + 1, (20000.0, 6000.0), (1.0, 0.4)).sample(x, y)
    h2o = 1.9 + 0.6 * Fractal(seed * 13 + 2, (25000.0, 8000.0), (1.0, 0.4)).sample(x, y)
    h2o = h2o - 0.0008 * (elev - 900.0)  # less water vapour above higher ground
    disk = (
        np.hypot(*np.mgrid[-_DILATE_PX : _DILATE_PX + 1, -_DILATE_PX : _DILATE_PX + 1])
        <= _DILATE_PX
    )
    dilated = ndimage.binary_dilation(cloud, structure=disk)
    zeros = np.zeros_like(cloud)
    flags = [cloud, zeros, water, zeros, dilated]
    aggregate = np.logical_or.reduce(flags)
    layers = [*flags, np.clip(aod, 0.02, None), np.clip(h2o, 0.2, None), aggregate]
    return np.stack([np.asarray(a, dtype=np.float32) for a in layers], axis=-1)


def _band_mask(rows: int, cols: int, n_bands: int) -> np.ndarray:
    """Per-wavelength interpolation flags, bit-packed (lines, samples, ceil(bands / 8)).

    Interpolated values come from bad detector elements: fixed (sample, band) pairs that repeat
    on every line, the same in every scene.
    """
    rng = np.random.default_rng(285)
    flags = rng.random((cols, n_bands)) < 0.003
    packed = np.packbits(flags, axis=-1)  # big-endian bit order within each byte
    return np.ascontiguousarray(np.broadcast_to(packed, (rows, *packed.shape)))


def _browse(rgb: np.ndarray, glt_x: np.ndarray, glt_y: np.ndarray) -> Image.Image:
    """RGB quicklook of the ortho grid; black where the GLT has no pixel."""
    ortho = orthorectify(rgb, glt_x, glt_y, np.nan)
    valid = (glt_x > 0) & (glt_y > 0)
    out = np.zeros(ortho.shape, dtype=np.uint8)
    if valid.any():
        lo, hi = np.nanpercentile(ortho[valid], [2.0, 98.0], axis=0)
        scaled = np.clip((ortho - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0) ** (1 / 1.4)
        out[valid] = np.rint(scaled[valid] * 255).astype(np.uint8)
    return Image.fromarray(out, mode="RGB")


def _write_records(spec: SceneSpec, granule: str, geo: Geolocation, *, cloud_pct: int) -> None:
    """The UMM-G JSON (sizes and checksums of the files written so far) and the STAC item."""
    stage, names = spec.stage_dir, granule_files(granule)
    rows, cols = spec.shape
    # Corners of the raw image (pixel centres) as CMR stores them: float32, counter-clockwise.
    ci = np.array([0, 0, rows - 1, rows - 1], dtype=float)
    cj = np.array([0, cols - 1, cols - 1, 0], dtype=float)
    clon, clat = geo.lonlat(*geo.swath.xy(ci, cj))
    corners = counter_clockwise(
        [(float(np.float32(a)), float(np.float32(b))) for a, b in zip(clon, clat, strict=True)]
    )
    start = spec.datetime.replace(tzinfo=None)
    ummg = granule_record(
        granule,
        start=start,
        end=start + _duration(rows),
        produced=start + timedelta(hours=36, minutes=38),
        sun_zenith_deg=spec.conditions.sun_zenith_deg,
        sun_azimuth_deg=spec.conditions.sun_azimuth_deg,
        corners=corners,
        cloud_cover_pct=cloud_pct,
        archive=[
            archive_entry(name, (stage / name).stat().st_size, _sha512(stage / name))
            for name in (names[k] for k in ("reflectance", "uncertainty", "mask", "browse"))
        ],
    )
    # LP DAAC writes the record on one line.
    (stage / names["metadata"]).write_text(json.dumps(ummg, separators=(",", ":")))
    item = cmr_stac_item(ummg, spec.final_dir)
    (stage / f"{granule}.json").write_text(json.dumps(item, indent=2, sort_keys=False))


# --- the writer --------------------------------------------------------------------------------


def write(spec: SceneSpec, scene_id: str) -> SimulatedScene:
    """Write one EMIT L2A granule, its catalog records and truth; see the module docstring."""
    bands = emit_band_table()
    good = bands.good_mask
    rows, cols = spec.shape
    swath = Swath.for_scene(spec.shape, spec.region.seed, spec.seed)
    geo = Geolocation(swath, spec.region.utm_epsg, spec.world.centre_utm)
    x, y = swath.rows_xy(slice(0, rows))
    lon, lat = geo.lonlat(x, y)
    elev = np.asarray(spec.world.elevation(x, y), dtype=np.float64)
    grid = geo.ortho_grid()
    glt_x, glt_y = geo.glt(grid)
    names = granule_files(scene_id)
    stage = spec.stage_dir
    supersample = 2 if spec.size == "full" else 3
    rgb_bands = [int(np.argmin(np.abs(bands.wavelengths - w))) for w in (650.0, 560.0, 470.0)]

    classes = np.zeros((rows, cols), dtype=np.uint8)
    ch4 = np.zeros((rows, cols), dtype=np.float32)
    cloud = np.zeros((rows, cols), dtype=np.uint8)
    water = np.zeros((rows, cols), dtype=bool)
    rgb = np.zeros((rows, cols, 3), dtype=np.float32)
    raw3 = ("downtrack", "crosstrack", "bands")

    with ExitStack() as stack:
        files = {
            kind: stack.enter_context(
                _open_product(stage / names[key], kind, spec, grid, scene_id, n)
            )
            for kind, key, n in (
                ("RFL", "reflectance", len(bands)),
                ("RFLUNCERT", "uncertainty", len(bands)),
                ("MASK", "mask", len(MASK_BANDS)),
            )
        }
        for kind in ("RFL", "RFLUNCERT"):
            _write_band_parameters(files[kind], bands.wavelengths, bands.fwhms, good)
        _write_mask_bands(files["MASK"], len(bands))
        for f in files.values():
            _write_location(f, lon, lat, elev, (glt_x, glt_y))
        refl = _variable(files["RFL"], "reflectance", raw3, "f4", "Surface Reflectance", "unitless")
        unc = _variable(
            files["RFLUNCERT"], "reflectance_uncertainty", raw3, "f4",
            "Surface Reflectance Uncertainty", "unitless",
        )  # fmt: skip
        for block, sl in spec.row_blocks(rows, _BLOCK_ROWS):
            out = render(
                spec.world,
                spec.conditions,
                bands,
                x[sl],
                y[sl],
                col_step=swath.col_step,
                row_step=swath.row_step,
                supersample=supersample,
                noise=NOISE["emit"],
                rng=spec.block_rng(block),
            )
            r = out.reflectance
            rgb[sl] = r[..., rgb_bands]
            r[..., ~good] = np.float32(BAD_BAND_VALUE)
            refl[sl] = r
            unc[sl] = out.noise_sigma
            classes[sl] = out.classes
            ch4[sl] = out.ch4_ppm_m
            cloud[sl] = np.where(out.cloud, 1, np.where(out.cloud_shadow, 2, 0))
            water[sl] = out.fractions[CLASS_INDEX["water"]] >= 0.5

        mask = _mask_layers(spec, swath, cloud == 1, water, elev)
        m = files["MASK"]
        _variable(
            m, "mask", ("downtrack", "crosstrack", "bands"), "f4", "Masks", "unitless",
            data=mask, compress=9, chunks=_chunks(mask.shape, 4),
        )  # fmt: skip
        packed = _band_mask(rows, cols, len(bands))
        _variable(
            m, "band_mask", ("downtrack", "crosstrack", "packed_wavelength_bands"), "u1",
            "Per-Wavelength Mask", "unitless",
            data=packed, compress=9, chunks=_chunks(packed.shape, 1),
        )  # fmt: skip

    _browse(rgb, glt_x, glt_y).save(stage / names["browse"], format="PNG", optimize=False)
    truth = write_truth(
        stage,
        spec.final_dir,
        classes=orthorectify(classes, glt_x, glt_y, np.uint8(0)),
        ch4_ppm_m=orthorectify(ch4, glt_x, glt_y, np.float32(np.nan)),
        cloud=orthorectify(cloud, glt_x, glt_y, np.uint8(255)),
        crs=4326,
        transform=grid.transform,
    )
    _write_sensor_truth(stage / "truth_sensor_geometry.nc", classes, ch4, cloud)
    truth["sensor_geometry"] = spec.final_dir / "truth_sensor_geometry.nc"

    _write_records(spec, scene_id, geo, cloud_pct=round(100.0 * float(np.mean(cloud == 1))))
    return SimulatedScene(
        sensor="emit",
        provider=spec.provider,
        collection=COLLECTION,
        id=scene_id,
        datetime=spec.datetime,
        directory=spec.final_dir,
        item_path=spec.final_dir / f"{scene_id}.json",
        files={key: spec.final_dir / name for key, name in names.items()},
        truth=truth,
    )
