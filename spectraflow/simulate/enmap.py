"""Simulated DLR EnMAP L2A surface-reflectance products (collection ``ENMAP_HSI_L2A``).

A product is the folder DLR's STAC catalog serves: ``<name>-SPECTRAL_IMAGE_COG.TIF`` (224 bands,
int16, reflectance = DN × gain + offset, nodata -32768, band-interleaved), ``<name>-METADATA.XML``
(root ``level_X``), the quality layers ``QL_PIXELMASK`` and ``QL_QUALITY_*``, the RGBA quicklooks
``QL_VNIR``/``QL_SWIR`` and a JPEG thumbnail. Everything sits on the 30 m UTM grid of the region
(corners at odd multiples of 15 m); the valid area is the orthorectified tile, a rectangle
rotated with the descending ground track. Types, nodata values, band counts, compression and
interleaving follow the real patch in ``shared/real-data/enmap-l2a-hyspecnet-patch``; the XML and
the STAC item are built by :mod:`spectraflow.simulate.enmap_meta`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from affine import Affine
from PIL import Image
from pyproj import Transformer
from rasterio.enums import ColorInterp
from shapely.geometry import Polygon, box
from shapely.geometry.polygon import orient

from spectraflow.errors import SimulationError
from spectraflow.sensors.bands import BandTable
from spectraflow.sensors.enmap import GAIN, N_BANDS, NODATA, OFFSET, PIXEL_M, enmap_band_table
from spectraflow.simulate.enmap_meta import (
    COLLECTION,
    DEFECTS_SWIR,
    DEFECTS_VNIR,
    acquisition,
    band_statistics,
    item_assets,
    metadata_xml,
    product_name,
    proj_fields,
    raster_band,
    stac_item,
    vnir_mask,
)
from spectraflow.simulate.geometry import north_up_grid
from spectraflow.simulate.rasters import write_cog, write_truth
from spectraflow.simulate.render import NOISE, render
from spectraflow.simulate.scene import SceneSpec, SimulatedScene, solar_position
from spectraflow.simulate.world import CLASS_INDEX, Region

SWATH_M = 30_000.0
# Below full size the swath is scaled with the raster so that it still covers ~75 % of it.
SWATH_FILL = 0.87
GROUND_SPEED_M_S = 6900.0
_QUICKLOOK_NM = {"vnir": (640.0, 550.0, 460.0), "swir": (2200.0, 1650.0, 1050.0)}
_QUICKLOOK_MAX = {"vnir": 0.25, "swir": 0.5}
_QL_FILES = {
    "quality_classes": ("QL_QUALITY_CLASSES", "LZW"),
    "quality_cloud": ("QL_QUALITY_CLOUD", "LZW"),
    "quality_cloud_shadow": ("QL_QUALITY_CLOUDSHADOW", "LZW"),
    "quality_haze": ("QL_QUALITY_HAZE", "LZW"),
    "quality_cirrus": ("QL_QUALITY_CIRRUS", "LZW"),
    "quality_snow": ("QL_QUALITY_SNOW", "LZW"),
    "quality_testflags": ("QL_QUALITY_TESTFLAGS", "DEFLATE"),
}
_CLASSES_NODATA = 3  # QL_QUALITY_CLASSES: 1 land, 2 water, 3 background
_BLOCK_PIXELS = 40_000


@dataclass(frozen=True)
class Swath:
    """The orthorectified tile: a rectangle centred on the region, rotated by the heading.

    ``u`` runs across track (east-ish), ``v`` along track (north-ish), metres from the centre.
    """

    heading_deg: float
    width_m: float
    length_m: float

    @classmethod
    def for_grid(cls, rows: int, cols: int, res: float, heading_deg: float) -> Swath:
        """Full-size tiles are 30 km square; smaller rasters get a proportionally smaller one."""
        return cls(
            heading_deg,
            min(SWATH_M, SWATH_FILL * cols * res),
            min(SWATH_M, SWATH_FILL * rows * res),
        )

    def uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Across- and along-track coordinates of points (metres from the region centre)."""
        t = np.deg2rad(self.heading_deg)
        return x * np.cos(t) - y * np.sin(t), x * np.sin(t) + y * np.cos(t)

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask of points inside the tile."""
        u, v = self.uv(x, y)
        return (np.abs(u) <= self.width_m / 2) & (np.abs(v) <= self.length_m / 2)

    def corners(self) -> dict[str, tuple[float, float]]:
        """Tile corners (x, y) in the ring order of DLR's bounding polygon, then the centre."""
        t = np.deg2rad(self.heading_deg)
        c, a = (np.cos(t), -np.sin(t)), (np.sin(t), np.cos(t))
        hw, hl = self.width_m / 2, self.length_m / 2
        signs = {
            "upper_left": (-1, 1),
            "lower_left": (-1, -1),
            "lower_right": (1, -1),
            "upper_right": (1, 1),
        }
        out = {
            name: (float(su * hw * c[0] + sv * hl * a[0]), float(su * hw * c[1] + sv * hl * a[1]))
            for name, (su, sv) in signs.items()
        }
        out["center"] = (0.0, 0.0)
        return out


def defective_detectors(bands: BandTable) -> list[tuple[int, float]]:
    """``(band index, across-track position in 0-1)`` of dead detector elements.

    An instrument property, so the same for every scene. Each one is a line along track in
    one band; bands either side are good, so DLR-like spectral interpolation can fill it.
    """
    rng = np.random.default_rng(20220401)
    good = bands.good_mask
    fillable = good & np.roll(good, 1) & np.roll(good, -1)
    fillable[[0, -1]] = False
    vnir = vnir_mask(bands)
    out: list[tuple[int, float]] = []
    for pool, n in ((fillable & vnir, DEFECTS_VNIR), (fillable & ~vnir, DEFECTS_SWIR)):
        for b in rng.choice(np.flatnonzero(pool), n, replace=False):
            out.append((int(b), float(rng.uniform(0.02, 0.98))))
    return sorted(out)


def _defect_line(swath: Swath, u: np.ndarray, position: float, res: float) -> np.ndarray:
    """Pixels crossed by one dead detector element (about one pixel per row)."""
    return np.abs(u - (position - 0.5) * swath.width_m) < 0.6 * res


@dataclass
class _Layers:
    """Rasters of one product, filled block by block (bands first)."""

    spectral: np.ndarray  # (224, H, W) int16
    classes: np.ndarray  # (H, W) uint8 QL_QUALITY_CLASSES
    cloud: np.ndarray
    shadow: np.ndarray
    haze: np.ndarray
    vnir: np.ndarray  # (4, H, W) uint8 RGBA
    swir: np.ndarray
    truth_classes: np.ndarray
    truth_ch4: np.ndarray
    truth_cloud: np.ndarray
    inside: np.ndarray  # (H, W) bool


def _render_layers(
    spec: SceneSpec, bands: BandTable, swath: Swath, xs: np.ndarray, ys: np.ndarray
) -> _Layers:
    rows, cols = spec.shape
    flags = np.zeros((3, rows, cols), np.uint8)
    layers = _Layers(
        spectral=np.full((N_BANDS, rows, cols), NODATA, np.int16),
        classes=np.full((rows, cols), _CLASSES_NODATA, np.uint8),
        cloud=flags[0],
        shadow=flags[1],
        haze=flags[2],
        vnir=np.zeros((4, rows, cols), np.uint8),
        swir=np.zeros((4, rows, cols), np.uint8),
        truth_classes=np.zeros((rows, cols), np.uint8),
        truth_ch4=np.full((rows, cols), np.nan, np.float32),
        truth_cloud=np.full((rows, cols), 255, np.uint8),
        inside=np.zeros((rows, cols), bool),
    )
    good = bands.good_mask
    defects = defective_detectors(bands)
    ql_bands = {
        k: [int(np.argmin(np.abs(bands.wavelengths - nm))) for nm in v]
        for k, v in _QUICKLOOK_NM.items()
    }
    cond = spec.conditions
    water = CLASS_INDEX["water"]
    supersample = 2 if spec.size == "full" else 3
    for i, rs in spec.row_blocks(rows, max(1, _BLOCK_PIXELS // cols)):
        y = ys[rs]
        r = render(
            spec.world,
            cond,
            bands,
            xs,
            y,
            col_step=(PIXEL_M, 0.0),
            row_step=(0.0, -PIXEL_M),
            supersample=supersample,
            noise=NOISE["enmap"],
            rng=spec.block_rng(i),
        )
        inside = swath.inside(xs, y)
        u, _ = swath.uv(xs, y)
        refl = r.reflectance
        for b, position in defects:
            # DLR replaces dead detector pixels by interpolation across the spectrum.
            hit = inside & np.broadcast_to(_defect_line(swath, u, position, PIXEL_M), inside.shape)
            refl[hit, b] = 0.5 * (refl[hit, b - 1] + refl[hit, b + 1])
        dn = np.clip(np.rint(refl / GAIN - OFFSET / GAIN), NODATA + 1, 32767).astype(np.int16)
        dn[:, :, ~good] = NODATA
        dn[~inside] = NODATA
        layers.spectral[:, rs] = dn.transpose(2, 0, 1)
        layers.inside[rs] = inside

        is_water = r.fractions[water] >= 0.5
        layers.classes[rs] = np.where(inside, np.where(is_water, 2, 1), _CLASSES_NODATA)
        layers.cloud[rs] = inside & r.cloud
        layers.shadow[rs] = inside & r.cloud_shadow
        # Haze: thin cloud at the edges of thick cloud (cloud fraction above 0, below 1/2).
        field = cond.cloud_field().sample(xs, y)
        layers.haze[rs] = inside & ~r.cloud & (field > cond.cloud_threshold - 0.02)
        for key, target in (("vnir", layers.vnir), ("swir", layers.swir)):
            scaled = refl[:, :, ql_bands[key]] / _QUICKLOOK_MAX[key] * 255.0
            rgb = np.clip(np.rint(scaled), 0, 255).astype(np.uint8).transpose(2, 0, 1)
            target[:3, rs] = np.where(inside, rgb, 0)
            target[3, rs] = np.where(inside, 255, 0)
        layers.truth_classes[rs] = np.where(inside, r.classes, 0)
        layers.truth_ch4[rs] = np.where(inside, r.ch4_ppm_m, np.nan)
        truth_cloud = np.where(r.cloud, 1, np.where(r.cloud_shadow, 2, 0))
        layers.truth_cloud[rs] = np.where(inside, truth_cloud, 255)
    return layers


def _pixelmask(
    bands: BandTable, swath: Swath, xs: np.ndarray, ys: np.ndarray, inside: np.ndarray
) -> np.ndarray:
    """QL_PIXELMASK: 1 where a dead detector element was interpolated, per band."""
    mask = np.zeros((N_BANDS, *inside.shape), np.uint8)
    u, _ = swath.uv(xs, ys)
    for b, position in defective_detectors(bands):
        mask[b] = inside & _defect_line(swath, u, position, PIXEL_M)
    return mask


def scene_id(when: datetime, region: Region, seed: int) -> str:
    """DLR product name: ``ENMAP01-____L2A-DT<datatake>_<start>Z_<tile>_V010402_<processed>Z``."""
    return product_name(when, region, seed)


def footprint(
    swath: Swath, centre: tuple[float, float], transform: Affine, shape: tuple[int, int]
) -> list[tuple[float, float]]:
    """Outline (UTM) of the valid area: the tile clipped to the raster.

    Counter-clockwise from its northernmost corner, like DLR's item geometry.
    """
    e0, n0 = centre
    corners = [(e0 + x, n0 + y) for k, (x, y) in swath.corners().items() if k != "center"]
    rows, cols = shape
    x0, y1 = transform.c, transform.f
    raster = box(x0, y1 + rows * transform.e, x0 + cols * transform.a, y1)
    clipped = orient(Polygon(corners).intersection(raster), sign=1.0)
    ring = [(float(x), float(y)) for x, y in clipped.exterior.coords[:-1]]
    start = max(range(len(ring)), key=lambda i: (round(ring[i][1], 6), -ring[i][0]))
    return ring[start:] + ring[:start]


def write(spec: SceneSpec, scene_id: str) -> SimulatedScene:
    """Render and write one EnMAP L2A product, its STAC item and the ground truth."""
    acq = acquisition(spec.datetime, spec.region, spec.seed)
    expected = product_name(spec.datetime, spec.region, spec.seed)
    if scene_id != expected:
        raise SimulationError(
            f"scene id {scene_id!r} does not match the acquisition",
            where="enmap.write",
            fix=f"use scene_id(...) = {expected!r}",
        )
    bands = enmap_band_table()
    rows, cols = spec.shape
    epsg = spec.region.utm_epsg
    transform, xs, ys = north_up_grid(spec.world, rows, cols, PIXEL_M, phase=15.0)
    swath = Swath.for_grid(rows, cols, PIXEL_M, acq.heading_deg)
    layers = _render_layers(spec, bands, swath, xs, ys)
    inside = layers.inside
    valid_pct = 100.0 * float(inside.mean())

    suffixes = {
        "image": "SPECTRAL_IMAGE_COG.TIF",
        "metadata": "METADATA.XML",
        "pixelmask": "QL_PIXELMASK_COG.TIF",
        **{key: f"{name}_COG.TIF" for key, (name, _) in _QL_FILES.items()},
        "vnir": "QL_VNIR_COG.TIF",
        "swir": "QL_SWIR_COG.TIF",
        "thumbnail": "QL_VNIR_COG_thumbnail.jpg",
    }
    names = {key: f"{scene_id}-{suffix}" for key, suffix in suffixes.items()}
    stage, final = spec.stage_dir, spec.final_dir

    write_cog(
        stage / names["image"],
        layers.spectral,
        nodata=NODATA,
        interleave="band",
        crs=epsg,
        transform=transform,
    )
    stats = band_statistics(layers.spectral)
    layers.spectral = np.empty((0, 0, 0), np.int16)  # free ~0.7 GB before the other layers
    pixelmask = _pixelmask(bands, swath, xs, ys, inside)
    write_cog(
        stage / names["pixelmask"], pixelmask, interleave="band", crs=epsg, transform=transform
    )
    del pixelmask

    raster_bands: dict[str, list[dict[str, Any]]] = {}
    ql = {
        "quality_classes": layers.classes,
        "quality_cloud": layers.cloud,
        "quality_cloud_shadow": layers.shadow,
        "quality_haze": layers.haze,
        "quality_cirrus": np.zeros_like(layers.cloud),
        "quality_snow": np.zeros_like(layers.cloud),
        "quality_testflags": np.zeros_like(layers.cloud),
    }
    for key, data in ql.items():
        nodata = _CLASSES_NODATA if key == "quality_classes" else None
        write_cog(
            stage / names[key],
            data[None],
            nodata=nodata,
            compress=_QL_FILES[key][1],
            crs=epsg,
            transform=transform,
        )
        if nodata is None:
            # DLR reports 1 pixel's worth of valid_percent for layers without nodata.
            raster_bands[key] = [raster_band(data.ravel(), 100.0 / data.size)]
        else:
            raster_bands[key] = [raster_band(data[data != nodata], valid_pct, nodata)]
    rgba = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    for key in ("vnir", "swir"):
        data = getattr(layers, key)
        write_cog(
            stage / names[key],
            data,
            interleave="band",
            colorinterp=rgba,
            crs=epsg,
            transform=transform,
        )
        raster_bands[key] = [raster_band(band[inside], valid_pct) for band in data[:3]]
        raster_bands[key].append(raster_band(data[3].ravel(), 100.0))
    step = max(1, math.ceil(max(rows, cols) / 512))
    thumb = np.ascontiguousarray(layers.vnir[:3, ::step, ::step].transpose(1, 2, 0))
    Image.fromarray(thumb).save(stage / names["thumbnail"], format="JPEG", quality=90)

    truth = write_truth(
        stage,
        final,
        classes=layers.truth_classes,
        ch4_ppm_m=layers.truth_ch4,
        cloud=layers.truth_cloud,
        crs=epsg,
        transform=transform,
    )

    # Geometry: tile corners for METADATA.XML, the valid outline for the item.
    e0, n0 = spec.world.centre_utm
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    corners = {k: to_ll.transform(e0 + x, n0 + y) for k, (x, y) in swath.corners().items()}
    sun = {}
    for frame, (lon, lat) in corners.items():
        zenith, azimuth = solar_position(lon, lat, acq.start)
        sun[frame] = (90.0 - zenith, azimuth)
    sun["center"] = (90.0 - spec.conditions.sun_zenith_deg, spec.conditions.sun_azimuth_deg)
    stop = acq.start + timedelta(seconds=swath.length_m / GROUND_SPEED_M_S)
    xml = metadata_xml(
        scene_id,
        acq,
        bands,
        stats,
        shape=(rows, cols),
        epsg=epsg,
        corners_lonlat=corners,
        sun=sun,
        stop=stop,
        files=[n for k, n in names.items() if k != "thumbnail"],
    )
    (stage / names["metadata"]).write_bytes(xml)

    outline = footprint(swath, (e0, n0), transform, (rows, cols))
    lon, lat = to_ll.transform([p[0] for p in outline], [p[1] for p in outline])
    n_valid = max(int(inside.sum()), 1)
    cover = {
        "cloud": 100.0 * int(layers.cloud.sum()) / n_valid,
        "shadow": 100.0 * int(layers.shadow.sum()) / n_valid,
        "haze": 100.0 * int(layers.haze.sum()) / n_valid,
        "water": 100.0 * int((layers.classes == 2).sum()) / n_valid,
    }
    hrefs = {key: str(final / name) for key, name in names.items()}
    assets = item_assets(hrefs, proj_fields(epsg, transform, rows, cols), raster_bands, bands)
    item = stac_item(
        scene_id,
        spec,
        acq,
        stop=stop,
        geometry=list(zip(lon, lat, strict=True)),
        cover=cover,
        assets=assets,
    )
    (stage / f"{scene_id}.json").write_text(json.dumps(item, indent=2, sort_keys=False))
    return SimulatedScene(
        sensor="enmap",
        provider=spec.provider,
        collection=COLLECTION,
        id=scene_id,
        datetime=spec.datetime,
        directory=final,
        item_path=final / f"{scene_id}.json",
        files={
            key: final / names[key]
            for key in ("image", "metadata", "pixelmask", *_QL_FILES, "vnir", "swir")
        },
        truth=truth,
    )
