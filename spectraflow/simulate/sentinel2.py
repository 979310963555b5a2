"""Simulated Sentinel-2 MSI L2A products, as Earth Search and Planetary Computer serve them.

All 12 L2A bands are rendered on the 10 m grid and area-averaged to 20 m (2 × 2) and 60 m
(6 × 6), so the resolutions agree with each other as the real ones do. Rendering goes in row
blocks of a multiple of 6 rows at 10 m, each written through a scratch GeoTIFF window, so a
full tile (10980² at 10 m) needs memory for one block only. Files are named and laid out like
the provider's: flat ``B02.tif`` … for Earth Search, the SAFE tree
(``…/IMG_DATA/R10m/T13TDE_<datatake>_B02_10m.tif``) for Planetary Computer.

DNs follow each flavour's processing baseline: ``round(reflectance × 10000) + 1000`` from
baseline 04.00 on, without the +1000 for Earth Search's legacy ``sentinel-2-l2a`` COGs, whose
offset was already removed (``earthsearch:boa_offset_applied``); their ``-jp2`` twins keep
ESA's DNs. The scene classification (SCL) follows the ground truth.
"""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.windows import Window

from spectraflow.sensors.sentinel2 import BANDS, QUANTIFICATION, sentinel2_band_table
from spectraflow.simulate.geometry import grid_footprint
from spectraflow.simulate.noise import Fractal
from spectraflow.simulate.rasters import streamed_raster, write_cog, write_truth
from spectraflow.simulate.render import NOISE, Rendered, render
from spectraflow.simulate.scene import SceneSpec, SimulatedScene
from spectraflow.simulate.sentinel2_item import FLAVOURS, AssetFile, build_item
from spectraflow.simulate.sentinel2_meta import (
    Identity,
    SceneStats,
    TileGrid,
    compact,
    datastrip_metadata,
    granule_metadata,
    inspire_metadata,
    product_metadata,
    safe_manifest,
    tile_grid,
    tile_info,
)
from spectraflow.simulate.world import CLASS_INDEX, Region

BOA_OFFSET_DN = 1000
JP2_OPTIONS = {"QUALITY": "100", "REVERSIBLE": "YES", "YCC": "NO"}  # lossless, like ESA's
TCI_SCALE = 255.0 / 0.2  # Sen2Cor's TCI saturates at reflectance 0.2
PIXELS_PER_BLOCK = 1_000_000  # 10 m pixels rendered at a time
# SCL of each land-cover class (CLASSES order): 4 vegetation, 5 not vegetated, 6 water.
_SCL_OF_CLASS = np.array([6, 4, 4, 4, 5, 5, 5, 5, 5], dtype=np.uint8)
_RES = {b.name: b.resolution_m for b in BANDS}
_BAND_INDEX = {b.name: i for i, b in enumerate(BANDS)}


@dataclass(frozen=True)
class Output:
    """One raster file: ``source`` layer at ``res`` metres, written to ``rel`` by ``driver``."""

    key: str  # file key (band name, SCL, AOT, WVP, visual, CLD, SNW; "-jp2" for twins)
    rel: str  # path relative to the scene directory
    source: str  # band name, "SCL", "AOT", "WVP", "visual", "CLD" or "SNW"
    res: int
    dn_offset: int = 0  # added to reflectance DNs
    driver: str = "COG"

    @property
    def count(self) -> int:
        """Bands in the file."""
        return 3 if self.source == "visual" else 1

    @property
    def dtype(self) -> str:
        """Data type of the file."""
        return "uint8" if self.source in ("SCL", "visual", "CLD", "SNW") else "uint16"


def scene_id(when: datetime, region: Region, seed: int) -> str:
    """Directory id of the scene, Earth Search Collection-1 style: ``S2B_T13TDE_<time>_L2A``."""
    return Identity.create(when, region, seed).scene_id()


def safe_paths(ident: Identity, provider: str, baseline: str) -> dict[str, str]:
    """Relative paths in a SAFE product: ``"safe"``, ``"granule"``, ``"stem"``, ``"datastrip"``."""
    safe = ident.product_uri(provider, baseline)
    take = compact(ident.datatake_start)
    generation = compact(ident.generation(provider))
    return {
        "safe": safe,
        "granule": f"{safe}/GRANULE/L2A_T{ident.tile}_A{ident.absolute_orbit:06d}_{take}",
        "stem": f"T{ident.tile}_{take}",
        "datastrip": f"{safe}/DATASTRIP/DS_{ident.centre(provider)}_{generation}"
        f"_S{compact(ident.datastrip_start)}",
    }


def outputs(provider: str, ident: Identity) -> tuple[list[Output], dict[str, str]]:
    """Raster outputs and other files (key → relative path) of ``provider``'s layout."""
    flavour = FLAVOURS[provider]
    offset = 0 if flavour.boa_offset_applied else BOA_OFFSET_DN
    if provider == "planetary-computer":
        p = safe_paths(ident, provider, flavour.baseline)
        img = f"{p['granule']}/IMG_DATA"

        def pc(source: str, res: int, off: int = 0) -> Output:
            name = "TCI" if source == "visual" else source
            rel = f"{img}/R{res}m/{p['stem']}_{name}_{res}m.tif"
            return Output(source, rel, source, res, off)

        rasters = [pc(b.name, b.resolution_m, offset) for b in BANDS]
        rasters += [pc("SCL", 20), pc("AOT", 10), pc("WVP", 10), pc("visual", 10)]
        others = {
            "preview": f"{p['granule']}/QI_DATA/{p['stem']}_PVI.tif",
            "safe-manifest": f"{p['safe']}/manifest.safe",
            "granule-metadata": f"{p['granule']}/MTD_TL.xml",
            "inspire-metadata": f"{p['safe']}/INSPIRE.xml",
            "product-metadata": f"{p['safe']}/MTD_MSIL2A.xml",
            "datastrip-metadata": f"{p['datastrip']}/MTD_DS.xml",
        }
        return rasters, others
    rasters = [Output(b.name, f"{b.name}.tif", b.name, b.resolution_m, offset) for b in BANDS]
    aux = [("SCL", "SCL", 20), ("AOT", "AOT", 20), ("WVP", "WVP", 20), ("visual", "TCI", 10)]
    rasters += [Output(key, f"{name}.tif", key, res) for key, name, res in aux]
    if provider == "earth-search":
        rasters += [
            Output("cloud", "CLD_20m.tif", "CLD", 20),
            Output("snow", "SNW_20m.tif", "SNW", 20),
        ]
        others = {
            "preview": "L2A_PVI.tif",
            "thumbnail": "L2A_PVI.jpg",
            "granule_metadata": "metadata.xml",
            "tileinfo_metadata": "tileInfo.json",
            "product_metadata": "product_metadata.xml",
        }
        return rasters, others
    # Legacy L2A: JPEG 2000 twins carry ESA's DNs, offset included.
    twins = [
        Output(
            f"{b.name}-jp2", f"{b.name}.jp2", b.name, b.resolution_m, BOA_OFFSET_DN, "JP2OpenJPEG"
        )
        for b in BANDS
    ]
    twins += [Output(f"{k}-jp2", f"{n}.jp2", k, r, 0, "JP2OpenJPEG") for k, n, r in aux]
    others = {
        "thumbnail": "thumbnail.jpg",
        "granule_metadata": "granule_metadata.xml",
        "tileinfo_metadata": "tileinfo_metadata.json",
    }
    return rasters + twins, others


def _pool(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f × f`` pixel squares of the last two axes."""
    if f == 1:
        return a
    *lead, h, w = a.shape
    return a.reshape(*lead, h // f, f, w // f, f).mean(axis=(-3, -1))


def _dn(reflectance: np.ndarray, offset: int) -> np.ndarray:
    """L2A DNs: quantified reflectance plus the baseline's offset, 0 kept for no data."""
    return np.clip(np.round(reflectance * QUANTIFICATION) + offset, 1, 65535).astype(np.uint16)


def scene_classification(
    classes: np.ndarray,
    dominant: np.ndarray,
    cloud: np.ndarray,
    shadow: np.ndarray,
    cloud_fraction: np.ndarray,
) -> np.ndarray:
    """SCL (uint8) from the truth at 20 m, in Sen2Cor's priority order.

    Land cover gives 4 (vegetation), 5 (not vegetated) or 6 (water); well-mixed pixels are
    7 (unclassified) and pure burn scars 2 (dark features); cloud shadow is 3, thin cloud at
    cloud edges 10 (thin cirrus), and clouds 8/9 (medium/high probability) by cover fraction.
    """
    scl = _SCL_OF_CLASS[classes - 1]
    scl = np.where((classes == CLASS_INDEX["burned"] + 1) & (dominant >= 0.95), 2, scl)
    scl = np.where(dominant < 0.4, 7, scl)
    scl = np.where(shadow, 3, scl)
    scl = np.where(~cloud & (cloud_fraction > 0.08), 10, scl)
    scl = np.where(cloud, np.where(cloud_fraction >= 0.8, 9, 8), scl)
    return scl.astype(np.uint8)


@dataclass
class _Truth:
    classes: np.ndarray
    ch4: np.ndarray
    cloud: np.ndarray
    scl_counts: np.ndarray
    aot_sum: float = 0.0
    wvp_sum: float = 0.0


def _layers(
    spec: SceneSpec, r: Rendered, xs: np.ndarray, ys: np.ndarray, truth: _Truth, rows20: slice
) -> dict[tuple[str, int], np.ndarray]:
    """Every layer of one block at the resolutions the products use, keyed (source, res)."""
    refl = np.moveaxis(r.reflectance, -1, 0).astype(np.float64)  # (bands, h, W)
    out: dict[tuple[str, int], np.ndarray] = {}
    for name, i in _BAND_INDEX.items():
        out[(name, _RES[name])] = _pool(refl[i], _RES[name] // 10)
    out[("visual", 10)] = np.clip(
        np.round(refl[[_BAND_INDEX[n] for n in ("B04", "B03", "B02")]] * TCI_SCALE), 1, 255
    ).astype(np.uint8)

    fractions = _pool(r.fractions.astype(np.float64), 2)
    classes = (np.argmax(fractions, axis=0) + 1).astype(np.uint8)
    cloud = _pool(r.cloud.astype(np.float64), 2) >= 0.5
    shadow = (_pool(r.cloud_shadow.astype(np.float64), 2) >= 0.5) & ~cloud
    cover = _pool(np.broadcast_to(spec.conditions.cloud_fraction(xs, ys), r.cloud.shape), 2)
    scl = scene_classification(classes, fractions.max(axis=0), cloud, shadow, cover)
    truth.classes[rows20] = classes
    truth.ch4[rows20] = _pool(r.ch4_ppm_m.astype(np.float64), 2)
    truth.cloud[rows20] = np.where(cloud, 1, np.where(shadow, 2, 0))
    truth.scl_counts += np.bincount(scl.ravel(), minlength=12)[:12]
    out[("SCL", 20)] = scl
    out[("CLD", 20)] = np.clip(np.round(cover * 100.0), 0, 100).astype(np.uint8)
    out[("SNW", 20)] = np.zeros_like(scl)

    # Aerosol optical thickness at 550 nm and water vapour (cm): smooth fields, less vapour
    # over higher ground.
    seed = spec.conditions.seed
    aot = 0.11 + 0.04 * Fractal(seed * 13 + 1, (30000.0, 8000.0), (1.0, 0.5)).sample(xs, ys)
    wvp = 1.6 + 0.5 * Fractal(seed * 13 + 2, (40000.0, 10000.0), (1.0, 0.5)).sample(xs, ys)
    wvp = wvp - 0.0005 * (spec.world.elevation(xs, ys) - 900.0)
    for name, field, scale in (("AOT", aot, 1000.0), ("WVP", wvp, 1000.0)):
        dn = np.clip(np.round(np.broadcast_to(field, r.cloud.shape) * scale), 1, 65535)
        out[(name, 10)] = dn.astype(np.uint16)
        out[(name, 20)] = np.round(_pool(dn, 2)).astype(np.uint16)
    truth.aot_sum += float(out[("AOT", 20)].sum()) / 1000.0
    truth.wvp_sum += float(out[("WVP", 20)].sum()) / 1000.0
    return out


def _render_rasters(
    spec: SceneSpec, grid: TileGrid, rasters: list[Output], baseline: str
) -> tuple[_Truth, SceneStats]:
    rows10, cols10 = grid.shape(10)
    e0, n0 = spec.world.centre_utm
    xs = (grid.west + (np.arange(cols10) + 0.5) * 10.0 - e0)[None, :]
    ys = (grid.north - (np.arange(rows10) + 0.5) * 10.0 - n0)[:, None]
    block = max(6, min(rows10, PIXELS_PER_BLOCK // cols10 // 6 * 6))
    bands = sentinel2_band_table(baseline)
    truth = _Truth(
        classes=np.zeros((grid.rows, grid.cols), np.uint8),
        ch4=np.zeros((grid.rows, grid.cols), np.float32),
        cloud=np.zeros((grid.rows, grid.cols), np.uint8),
        scl_counts=np.zeros(12, np.int64),
    )
    with ExitStack() as stack:
        writers = {}
        for o in rasters:
            path = spec.stage_dir / o.rel
            path.parent.mkdir(parents=True, exist_ok=True)
            writers[o.key] = stack.enter_context(
                streamed_raster(
                    path,
                    shape=grid.shape(o.res),
                    count=o.count,
                    dtype=o.dtype,
                    crs=grid.epsg,
                    transform=grid.transform(o.res),
                    nodata=0,
                    driver=o.driver,
                    options=JP2_OPTIONS if o.driver == "JP2OpenJPEG" else None,
                )
            )
        for i, rows in spec.row_blocks(rows10, block):
            r = render(
                spec.world,
                spec.conditions,
                bands,
                xs,
                ys[rows],
                col_step=(10.0, 0.0),
                row_step=(0.0, -10.0),
                supersample=2 if spec.size == "full" else 3,
                noise=NOISE["sentinel2"],
                rng=spec.block_rng(i),
            )
            layers = _layers(spec, r, xs, ys[rows], truth, slice(rows.start // 2, rows.stop // 2))
            for o in rasters:
                data = layers[(o.source, o.res)]
                if o.source in _BAND_INDEX:
                    data = _dn(data, o.dn_offset)
                data = data if data.ndim == 3 else data[None]
                f = o.res // 10
                window = Window(0, rows.start // f, data.shape[2], data.shape[1])
                writers[o.key].write(data, window=window)
    n = grid.rows * grid.cols
    stats = SceneStats(
        tuple(int(c) for c in truth.scl_counts), truth.aot_sum / n, truth.wvp_sum / n
    )
    return truth, stats


def _hashes(path: Path) -> tuple[int, str, str]:
    """Size, sha2-256 multihash and SHA3-256 of a file, read in chunks."""
    sha2, sha3 = hashlib.sha256(), hashlib.sha3_256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            sha2.update(chunk)
            sha3.update(chunk)
    return path.stat().st_size, "1220" + sha2.hexdigest(), sha3.hexdigest()


def _write_preview(tci: Path, path: Path, grid: TileGrid) -> np.ndarray:
    """ESA's 320 m true-colour preview (``PVI``), averaged from the TCI; returns its pixels."""
    rows, cols = grid.shape(320)
    with rasterio.open(tci) as src:
        pvi = src.read(
            window=Window(0, 0, cols * 32, rows * 32),
            out_shape=(3, rows, cols),
            resampling=Resampling.average,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_cog(path, pvi, crs=grid.epsg, transform=grid.transform(320), overviews=False)
    return pvi


def _jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.moveaxis(pixels, 0, -1)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _footprint(grid: TileGrid) -> tuple[dict[str, Any], list[float], tuple[float, float]]:
    """Counter-clockwise lon/lat outline, bbox and centroid (lon, lat) of the grid."""
    crs = CRS.from_epsg(grid.epsg)
    geometry, bbox = grid_footprint(crs, grid.transform(20), grid.rows, grid.cols, densify=1)
    geometry["coordinates"] = [geometry["coordinates"][0][::-1]]  # RFC 7946 winding
    to_ll = Transformer.from_crs(crs, 4326, always_xy=True)
    lon, lat = to_ll.transform(grid.west + grid.cols * 10.0, grid.north - grid.rows * 10.0)
    return geometry, bbox, (float(lon), float(lat))


def _documents(
    spec: SceneSpec,
    ident: Identity,
    grid: TileGrid,
    stats: SceneStats,
    rasters: list[Output],
    others: dict[str, str],
    geometry: dict[str, Any],
    bbox: list[float],
) -> dict[str, bytes]:
    """The metadata documents among ``others`` (all but the SAFE manifest), by key."""
    provider = spec.provider
    baseline = FLAVOURS[provider].baseline
    safe = safe_paths(ident, provider, baseline)
    # MTD_MSIL2A lists the SAFE's image files (without extension) whoever serves them.
    images = [
        f"{safe['granule']}/IMG_DATA/R{o.res}m/{safe['stem']}_"
        f"{'TCI' if o.source == 'visual' else o.source}_{o.res}m"
        for o in rasters
        if o.driver == "COG" and o.source not in ("CLD", "SNW")
    ]
    angles = (spec.conditions.sun_zenith_deg, spec.conditions.sun_azimuth_deg)
    build = {
        "granule": lambda: granule_metadata(ident, provider, baseline, grid, stats, *angles),
        "product": lambda: product_metadata(
            ident, provider, baseline, grid, stats, geometry["coordinates"][0], images
        ),
        "tileinfo": lambda: tile_info(ident, provider, baseline, grid, stats),
        "inspire": lambda: inspire_metadata(ident, provider, baseline, bbox),
        "datastrip": lambda: datastrip_metadata(ident, provider, baseline),
    }
    kinds = {key: key.replace("-", "_").split("_")[0] for key in others}
    return {key: build[kind]() for key, kind in kinds.items() if kind in build}


def write(spec: SceneSpec, scene_id: str) -> SimulatedScene:
    """Write the scene in ``spec.provider``'s flavour; see the module docstring."""
    provider = spec.provider
    flavour = FLAVOURS[provider]
    baseline = flavour.baseline
    ident = Identity.create(spec.datetime, spec.region, spec.seed)
    grid = tile_grid(spec.world, spec.shape)
    rasters, others = outputs(provider, ident)
    truth, stats = _render_rasters(spec, grid, rasters, baseline)
    truth_paths = write_truth(
        spec.stage_dir,
        spec.final_dir,
        classes=truth.classes,
        ch4_ppm_m=truth.ch4,
        cloud=truth.cloud,
        crs=grid.epsg,
        transform=grid.transform(20),
    )
    rel = {o.key: o.rel for o in rasters} | others
    stage = {key: spec.stage_dir / path for key, path in rel.items()}
    geometry, bbox, centroid = _footprint(grid)
    zenith, azimuth = spec.conditions.sun_zenith_deg, spec.conditions.sun_azimuth_deg

    if "preview" in others or "thumbnail" in others:
        pvi_path = stage.get("preview", spec.stage_dir / ".pvi.tif")
        pvi = _write_preview(stage["visual"], pvi_path, grid)
        if "thumbnail" in others:
            stage["thumbnail"].write_bytes(_jpeg(pvi))
        if "preview" not in others:
            pvi_path.unlink()
    documents = _documents(spec, ident, grid, stats, rasters, others, geometry, bbox)
    for key, data in documents.items():
        stage[key].parent.mkdir(parents=True, exist_ok=True)
        stage[key].write_bytes(data)
    digests = {key: _hashes(stage[key]) for key in rel if key != "safe-manifest"}
    if "safe-manifest" in others:
        safe_dir = spec.stage_dir / safe_paths(ident, provider, baseline)["safe"]
        listed = [
            (str(stage[key].relative_to(safe_dir)), digests[key][0], digests[key][2])
            for key in sorted(digests, key=lambda k: rel[k])
            if stage[key].is_relative_to(safe_dir)
        ]
        stage["safe-manifest"].write_bytes(safe_manifest(ident, provider, baseline, listed))
        digests["safe-manifest"] = _hashes(stage["safe-manifest"])
    files = {
        key: AssetFile(str(spec.final_dir / path), digests[key][0], digests[key][1])
        for key, path in rel.items()
    }
    item = build_item(
        provider,
        ident=ident,
        grid=grid,
        stats=stats,
        files=files,
        geometry=geometry,
        bbox=bbox,
        centroid=centroid,
        sun_zenith_deg=zenith,
        sun_azimuth_deg=azimuth,
    )
    (spec.stage_dir / f"{scene_id}.json").write_text(json.dumps(item, indent=2, sort_keys=False))
    band_keys = [b.name for b in BANDS] + ["SCL", "AOT", "WVP", "visual"]
    return SimulatedScene(
        sensor="sentinel2",
        provider=provider,
        collection=flavour.collection,
        id=item["id"],
        datetime=spec.datetime,
        directory=spec.final_dir,
        item_path=spec.final_dir / f"{scene_id}.json",
        files={key: spec.final_dir / rel[key] for key in band_keys},
        truth=truth_paths,
    )
