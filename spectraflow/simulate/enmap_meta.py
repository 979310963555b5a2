"""Names, acquisition facts, METADATA.XML and STAC item of simulated EnMAP L2A products.

Pure code (no I/O): :mod:`spectraflow.simulate.enmap` renders the rasters and writes what these
functions build. The XML follows the paths DLR's readers use (root ``level_X``); the item follows
the real DLR item in ``shared/real-data/dlr-geoservice``: the same extensions, property keys and
JSON types (many numbers as strings), 13 assets with per-asset ``proj:*``, ``eo:bands`` in nm.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
from affine import Affine

from spectraflow.sensors.bands import BandTable
from spectraflow.sensors.enmap import NODATA, PIXEL_M
from spectraflow.simulate.scene import SceneSpec
from spectraflow.simulate.world import Region

COLLECTION = "ENMAP_HSI_L2A"
STAC_ROOT = "https://geoservice.dlr.de/eoc/ogc/stac/v1"
PROCESSOR = "01.04.02"
N_VNIR = 91  # VNIR channels; the other 133 are SWIR, interleaved with them at 900-1000 nm
_LAUNCH = datetime(2022, 4, 1, 10, 0, tzinfo=UTC)
_ORBITS_PER_DAY = 14.72
_DATATAKES_PER_DAY = 98
# DLR's instrument report of the real item: defective detector elements per spectrometer.
DEFECTS_VNIR, DEFECTS_SWIR = 2, 13


class Acquisition(NamedTuple):
    """Everything about one datatake tile that is drawn at random, reproducibly."""

    datatake: int
    tile: int
    n_tiles: int
    start: datetime
    processed: datetime
    l0_created: datetime
    heading_deg: float
    across_off_nadir: float
    along_off_nadir: float
    image_id: int
    aot: int
    water_vapour: int


def acquisition(when: datetime, region: Region, seed: int) -> Acquisition:
    """Datatake number, tile, processing time and viewing geometry of a scene."""
    rng = np.random.default_rng([region.seed, seed, 1, int(when.timestamp())])
    days = max((when - _LAUNCH).total_seconds() / 86400.0, 0.0)
    datatake = 1 + int(days * _DATATAKES_PER_DAY) + int(rng.integers(0, _DATATAKES_PER_DAY))
    n_tiles = int(rng.integers(1, 6))
    tile = int(rng.integers(1, n_tiles + 1))
    l0_delay = timedelta(seconds=int(rng.integers(6 * 3600, 16 * 3600)))
    processed = when + l0_delay + timedelta(seconds=int(rng.integers(6 * 3600, 20 * 3600)))
    return Acquisition(
        datatake=datatake,
        tile=tile,
        n_tiles=n_tiles,
        start=when + timedelta(microseconds=int(rng.integers(0, 1_000_000))),
        processed=processed + timedelta(microseconds=int(rng.integers(0, 1000)) * 500),
        l0_created=when + l0_delay,
        heading_deg=float(rng.uniform(10.5, 12.5)),  # full-size tiles stay inside the raster
        across_off_nadir=float(rng.uniform(-29.0, 29.0)),
        along_off_nadir=float(rng.uniform(-3.0, 3.0)),
        image_id=int(datatake / 6.5) + tile,
        aot=int(rng.integers(60, 260)),
        water_vapour=int(rng.integers(400, 3200)),
    )


def product_name(when: datetime, region: Region, seed: int) -> str:
    """DLR product name: ``ENMAP01-____L2A-DT<datatake>_<start>Z_<tile>_V010402_<processed>Z``."""
    acq = acquisition(when, region, seed)
    version = "V" + PROCESSOR.replace(".", "")
    return (
        f"ENMAP01-____L2A-DT{acq.datatake:010d}_{when:%Y%m%dT%H%M%S}Z_{acq.tile:03d}"
        f"_{version}_{acq.processed:%Y%m%dT%H%M%S}Z"
    )


def vnir_mask(bands: BandTable) -> np.ndarray:
    """True for VNIR channels: below 900 nm, then the ~8 nm chain that continues them."""
    wl = bands.wavelengths
    vnir = wl < 900.0
    last = int(np.flatnonzero(vnir)[-1])
    step = wl[last] - wl[last - 1]
    while vnir.sum() < N_VNIR:
        candidates = np.flatnonzero(~vnir & (wl > wl[last]))
        nxt = int(candidates[np.argmin(np.abs(wl[candidates] - (wl[last] + step)))])
        step, last = wl[nxt] - wl[last], nxt
        vnir[nxt] = True
    return vnir


def band_statistics(spectral: np.ndarray) -> list[tuple[float, float]]:
    """Mean and standard deviation of each band's valid DNs (0, 0 for an all-nodata band)."""
    out = []
    for band in spectral:
        v = band[band != NODATA].astype(np.float64)
        out.append((float(v.mean()), float(v.std())) if v.size else (0.0, 0.0))
    return out


def raster_band(
    values: np.ndarray, valid_percent: float, nodata: float | None = None
) -> dict[str, Any]:
    """One ``raster:bands`` entry as DLR writes them: GDAL statistics and a 10-bucket histogram."""
    lo, hi = int(values.min()), int(values.max())
    edges = (lo - 0.5, hi + 0.5) if lo == hi else (float(lo), float(hi))
    buckets = np.histogram(values, bins=10, range=edges)[0]
    entry: dict[str, Any] = {"data_type": "uint8", "scale": 1.0, "offset": 0.0, "sampling": "area"}
    if nodata is not None:
        entry["nodata"] = float(nodata)
    entry["statistics"] = {
        "mean": float(values.mean()),
        "minimum": lo,
        "maximum": hi,
        "stddev": float(values.std()),
        "valid_percent": valid_percent,
    }
    entry["histogram"] = {
        "count": 11,
        "min": edges[0],
        "max": edges[1],
        "buckets": [int(n) for n in buckets],
    }
    return entry


def _angle(v: float) -> str:
    return f"{v:.12g}"


def _sun(v: float) -> str:
    return str(round(v, 6))


def metadata_xml(
    name: str,
    acq: Acquisition,
    bands: BandTable,
    stats: list[tuple[float, float]],
    *,
    shape: tuple[int, int],
    epsg: int,
    corners_lonlat: dict[str, tuple[float, float]],
    sun: dict[str, tuple[float, float]],
    stop: datetime,
    files: list[str],
) -> bytes:
    """The product's METADATA.XML (root ``level_X``), laid out as DLR's readers expect it."""
    root = ET.Element("level_X")

    def sub(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
        el = ET.SubElement(parent, tag, attrib)
        if text is not None:
            el.text = str(text)
        return el

    meta = sub(root, "metadata")
    sub(sub(meta, "schema"), "versionSchema", "01.04.00")
    sub(meta, "name", f"{name}-METADATA.XML")
    base = sub(root, "base")
    sub(base, "format", "ENMAP_L2A")
    sub(base, "level", "L2A")
    sub(base, "revision", PROCESSOR)
    sub(base, "archivedVersion", PROCESSOR)
    polygon = sub(sub(base, "spatialCoverage"), "boundingPolygon")
    for frame, (lon, lat) in corners_lonlat.items():
        point = sub(polygon, "point")
        sub(point, "frame", frame)
        sub(point, "latitude", f"{lat:.7f}")
        sub(point, "longitude", f"{lon:.7f}")
    temporal = sub(base, "temporalCoverage")
    sub(temporal, "startTime", f"{acq.start:%Y-%m-%dT%H:%M:%S.%f}Z")
    sub(temporal, "stopTime", f"{stop:%Y-%m-%dT%H:%M:%S.%f}Z")
    sub(sub(root, "processing"), "productFormat", "GeoTIFF+Metadata")

    specific = sub(root, "specific")
    rows, cols = shape
    sub(specific, "widthOfOrthoScene", cols)
    sub(specific, "heightOfOrthoScene", rows)
    sub(specific, "pixelSizeOfOrthoScene", int(PIXEL_M))
    sub(specific, "backgroundValue", NODATA)
    for tag, idx in (("sunElevationAngle", 0), ("sunAzimuthAngle", 1)):
        el = sub(specific, tag)
        for frame in ("upper_left", "upper_right", "lower_left", "lower_right", "center"):
            sub(el, frame, _sun(sun[frame][idx]))
    for tag, value in (
        ("acrossOffNadirAngle", acq.across_off_nadir),
        ("alongOffNadirAngle", acq.along_off_nadir),
        ("sceneAzimuthAngle", acq.heading_deg),
    ):
        el = sub(specific, tag)
        for frame in ("upper_left", "upper_right", "lower_left", "lower_right", "center"):
            sub(el, frame, _angle(value))
    vnir = vnir_mask(bands)
    for tag, sel in (("vnirProductQuality", vnir), ("swirProductQuality", ~vnir)):
        el = sub(specific, tag)
        sub(el, "numChannelsExpected", int(sel.sum()))
        sub(el, "expectedChannelsList", ",".join(str(i + 1) for i in np.flatnonzero(sel)))
    characterisation = sub(specific, "bandCharacterisation")
    for i in range(len(bands)):
        el = sub(characterisation, "bandID", number=str(i + 1))
        sub(el, "wavelengthCenterOfBand", repr(bands.wavelength_nm[i]))
        sub(el, "FWHMOfBand", repr(bands.fwhm_nm[i]))
        sub(el, "GainOfBand", repr(bands.scale[i]))
        sub(el, "OffsetOfBand", f"{bands.offset[i]:g}")

    product = sub(root, "product")
    info = sub(product, "productFileInformation")
    for fname in files:
        sub(sub(info, "file"), "name", fname)
    merge = sub(sub(product, "image"), "merge")
    sub(merge, "channels", len(bands))
    sub(merge, "name", f"{name}-SPECTRAL_IMAGE_COG.TIF")
    dim = sub(merge, "dimension")
    sub(dim, "rows", rows)
    sub(dim, "columns", cols)
    statistics = sub(product, "bandStatistics")
    for i, (mean, std) in enumerate(stats):
        el = sub(statistics, "bandID", number=str(i + 1))
        sub(el, "wavelength", repr(bands.wavelength_nm[i]))
        sub(el, "mean", f"{mean:.4f}")
        sub(el, "stdDeviation", f"{std:.4f}")
    ortho = sub(product, "ortho")
    zone, north = epsg % 100, epsg // 100 == 326
    sub(ortho, "projection", f"UTM_Zone{zone}_{'North' if north else 'South'}")
    sub(ortho, "resolution", int(PIXEL_M))
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def proj_fields(epsg: int, transform: Affine, rows: int, cols: int) -> dict[str, Any]:
    """Per-asset projection fields as DLR writes them (9-number transform, UTM outline)."""
    x0, y1 = transform.c, transform.f
    x1, y0 = x0 + cols * transform.a, y1 + rows * transform.e
    return {
        "proj:epsg": epsg,
        "proj:shape": [rows, cols],
        "proj:transform": [float(v) for v in (*transform[:6], 0.0, 0.0, 1.0)],
        "proj:geometry": {
            "type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
        },
        "proj:bbox": [x0, y0, x1, y1],
    }


def _season(month: int) -> str:
    # DLR's season follows the calendar month whatever the hemisphere.
    return ("winter", "spring", "summer", "autumn")[(month % 12) // 3]


def _biome(lat: float) -> str:
    a = abs(lat)
    if a < 23.5:
        return "Tropical and Subtropical Moist Broadleaf Forests"
    if a < 40.0:
        return "Deserts and Xeric Shrublands"
    return "Temperate Broadleaf and Mixed Forests" if a < 55.0 else "Boreal Forests/Taiga"


def _links(item_id: str) -> list[dict[str, str]]:
    coll = f"{STAC_ROOT}/collections/{COLLECTION}"
    item = f"{coll}/items/{item_id}"
    geo, html = "application%2Fgeo%2Bjson", "text%2Fhtml"
    oseo = "https://geoservice.dlr.de/eoc/oseo"
    spec = [
        ("Root", "root", f"{STAC_ROOT}?f=application/json", "application/json"),
        ("Parent", "parent", f"{STAC_ROOT}?f=application/json", "application/json"),
        ("Self", "self", f"{item}?f={geo}", "application/geo+json"),
        ("Item", "item", f"{item}?f={geo}", "application/geo+json"),
        ("Item as HTML", "alternate", f"{item}?f={html}", "text/html"),
        ("Items", "items", f"{coll}/items?f={geo}", "application/geo+json"),
        ("Items as HTML", "items", f"{coll}/items?f={html}", "text/html"),
        ("Collection", "collection", f"{coll}?f=application%2Fjson", "application/json"),
        ("Collection as HTML", "collection", f"{coll}?f={html}", "text/html"),
        (
            "Collections",
            "collection",
            f"{STAC_ROOT}/collections?f=application%2Fjson",
            "application/json",
        ),
        ("Collections as HTML", "collection", f"{STAC_ROOT}/collections?f={html}", "text/html"),
        (
            "OpenSearch GeoJSON",
            "item",
            f"{oseo}/search?parentIdentifier={COLLECTION}&identifier={item_id}&httpAccept={geo}",
            "application/geo+json",
        ),
        (
            "OpenSearch Atom XML",
            "item",
            f"{oseo}/search?parentIdentifier={COLLECTION}&identifier={item_id}"
            "&httpAccept=application%2Fatom%2Bxml",
            "application/atom+xml",
        ),
        (
            "OpenSearch O&M XML",
            "item",
            f"{oseo}/metadata?parentId={COLLECTION}&uid={item_id}&httpAccept=application%2Fgml%2Bxml",
            "application/gml+xml",
        ),
        (
            "Queryables",
            "http://www.opengis.net/def/rel/ogc/1.0/queryables",
            f"https://geoservice.dlr.de/eoc/ogc/stac/collections/{COLLECTION}/queryables?f=json",
            "application/schema+json",
        ),
    ]
    return [{"title": t, "rel": r, "href": h, "type": ty} for t, r, h, ty in spec]


def item_assets(
    hrefs: dict[str, str],
    proj: dict[str, Any],
    raster_bands: dict[str, list[dict[str, Any]]],
    bands: BandTable,
) -> dict[str, Any]:
    """The 13 assets of DLR's item, in its order, with its titles, descriptions and roles."""
    tif = "image/tiff; application=geotiff; profile=cloud-optimized"

    def raster(key: str, title: str, description: str, roles: list[str]) -> dict[str, Any]:
        asset: dict[str, Any] = {
            "href": hrefs[key],
            "type": tif,
            "title": title,
            "description": description,
        }
        if key in raster_bands:
            asset["raster:bands"] = raster_bands[key]
        return {**asset, **proj, "roles": roles}

    eo_bands = [
        {
            "name": int(name),
            "center_wavelength": wl,
            "full_width_half_max": fwhm,
            "enmap:gain_of_band": gain,
            "enmap:offset_of_band": int(off) if float(off).is_integer() else off,
        }
        for name, wl, fwhm, gain, off in zip(
            bands.name, bands.wavelength_nm, bands.fwhm_nm, bands.scale, bands.offset, strict=True
        )
    ]
    image = raster(
        "image",
        "Spectral Image",
        "Earth image measurement data covering 1 tile (30x30km) in orthorectified geometry",
        ["data"],
    )
    image = {
        **{k: v for k, v in image.items() if k != "roles"},
        "eo:bands": eo_bands,
        "roles": ["data"],
    }
    return {
        "metadata": {
            "href": hrefs["metadata"],
            "type": "application/xml",
            "title": "Metadata",
            "description": "Original XML metadata",
            "roles": ["metadata"],
        },
        "image": image,
        # "Vear" (sic): DLR's own wording.
        "vnir": raster(
            "vnir",
            "Quicklook VNIR",
            "Vear Near Infrared (VNIR) quicklook in orthorectified geometry",
            ["overview", "visual"],
        ),
        "thumbnail": {
            "href": hrefs["thumbnail"],
            "type": "image/jpeg",
            "title": "Thumbnail VNIR",
            "description": "Visible Near Infrared (VNIR) thumbnail in orthorectified geometry",
            "roles": ["thumbnail"],
        },
        "swir": raster(
            "swir",
            "Quicklook SWIR",
            "Short-wave Infrared quicklook in orthorectified geometry",
            ["overview"],
        ),
        "quality_classes": raster(
            "quality_classes", "Quality classes", "Classes quality layer", ["quality"]
        ),
        "quality_cloud": raster(
            "quality_cloud", "Quality cloud", "Cloud quality layer", ["quality", "cloud"]
        ),
        "quality_cloud_shadow": raster(
            "quality_cloud_shadow",
            "Quality cloud shadow",
            "Cloud shadow quality layer",
            ["quality", "cloud-shadow"],
        ),
        "quality_haze": raster(
            "quality_haze", "Quality haze", "Haze quality layer", ["quality", "haze"]
        ),
        "quality_cirrus": raster(
            "quality_cirrus", "Quality cirrus", "Cirrus quality layer", ["quality", "cirrus"]
        ),
        "quality_snow": raster(
            "quality_snow", "Quality snow", "Snow quality layer", ["quality", "snow"]
        ),
        "quality_testflags": raster(
            "quality_testflags", "Quality test flags", "Test flags quality layer", ["quality"]
        ),
        "defective_pixel_mask": raster(
            "pixelmask",
            "Defective pixel mask",
            "Defective pixel mask layer",
            ["quality", "data-mask"],
        ),
    }


def _iso_ms(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}+00:00"


def stac_item(
    item_id: str,
    spec: SceneSpec,
    acq: Acquisition,
    *,
    stop: datetime,
    geometry: list[tuple[float, float]],
    cover: dict[str, float],
    assets: dict[str, Any],
) -> dict[str, Any]:
    """The item as DLR's STAC API serves it: numbers as strings where DLR writes strings."""
    ring = [[round(lon, 6), round(lat, 6)] for lon, lat in geometry]
    ring.append(ring[0])
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    created = _iso_ms(acq.processed + timedelta(hours=4, minutes=48))
    orbit = int((acq.start - _LAUNCH).total_seconds() / 86400.0 * _ORBITS_PER_DAY)
    cond = spec.conditions
    elevation, azimuth = 90.0 - cond.sun_zenith_deg, cond.sun_azimuth_deg
    pct = {k: str(round(v)) for k, v in cover.items()}
    version6 = PROCESSOR.replace(".", "")
    citation = (
        f"DLR ({acq.start.year}): EnMAP L0 Product {acq.datatake:010d}_{acq.tile:02d}_L0_"
        f"{acq.l0_created:%Y%m%dT%H%M%S}_{version6}_{acq.processed:%y%m%d} "
        "doi: 10.15489/rlyibn8gjc58 Processed to level 2A (parameters: U0BLNNTS330G)"
    )
    properties: dict[str, Any] = {
        "version": PROCESSOR,
        "created": created,
        "updated": created,
        "datetime": f"{spec.datetime:%Y-%m-%dT%H:%M:%S}Z",
        "start_datetime": f"{acq.start:%Y-%m-%dT%H:%M:%S.%f}Z",
        "end_datetime": f"{stop:%Y-%m-%dT%H:%M:%S.%f}Z",
        "platform": "enmap",
        "proj:epsg": None,
        "sat:relative_orbit": str(orbit),
        "sat:orbit_state": "DESCENDING",
        "eo:cloud_cover": pct["cloud"],
        "eo:snow_cover": "0",
        # DLR's view:sun_azimuth is its enmap:sunAzimuthAngle turned by 180 degrees.
        "view:sun_azimuth": round((azimuth + 180.0) % 360.0, 6),
        "view:sun_elevation": round(elevation, 6),
        "processing:facility": "NZ",
        "processing:level": "L2A",
        "eop:sensorType": "OPTICAL",
        "card4l:eastern_geometric_accuracy": 2.0,
        "card4l:geometric_accuracy_radial_rmse": 3.0,
        "card4l:northern_geometric_accuracy": 2.0,
        "card4l:specification": "SR",
        "card4l:specification_version": "5.0",
        "enmap:SWIRAorSWIRBSelected": "SWIRA",
        "enmap:acquisitionConfiguration": "earth",
        "enmap:acquisitionType": "EARTH",
        "enmap:acrossOffNadirAngle": _angle(acq.across_off_nadir),
        "enmap:alongOffNadirAngle": _angle(acq.along_off_nadir),
        "enmap:archivedVersion": PROCESSOR,
        "enmap:biomeType": _biome(spec.region.lat),
        "enmap:cirrus_cover": "0",
        "enmap:cloud_shadow": pct["shadow"],
        "enmap:compressionType": "COMPRESSED",
        "enmap:datatakeID": f"{acq.datatake:010d}",
        "enmap:defectivePixelsSWIR": str(DEFECTS_SWIR),
        "enmap:defectivePixelsVNIR": str(DEFECTS_VNIR),
        "enmap:haze_cover": pct["haze"],
        "enmap:imageID": f"{acq.image_id:010d}",
        "enmap:instrumentStatusOK": "true",
        "enmap:missionPhase": "routine",
        "enmap:nodata": str(NODATA),
        "enmap:non_cloud_shadow": "0",
        "enmap:numberOfTiles": f"{acq.n_tiles:02d}",
        "enmap:orbitNo": str(orbit),
        "enmap:overallQuality": "0",
        "enmap:overallQualitySWIR": "0",
        "enmap:overallQualityVNIR": "0",
        "enmap:ozoneValue": "330",
        "enmap:phase": "routine",
        "enmap:processingDate": f"{acq.processed:%Y-%m-%dT%H:%M:%S.%f}Z",
        "enmap:productScreeningFailedGroups": "NONE",
        "enmap:productScreeningResultStatus": "OK",
        "enmap:qualityAtmosphere": "0",
        "enmap:saturationCrosstalkSWIR": "0",
        "enmap:saturationCrosstalkVNIR": "0",
        "enmap:sceneAOT": str(acq.aot),
        "enmap:sceneAtmospericParameters": "3",
        "enmap:sceneAzimuthAngle": _angle(acq.heading_deg),
        "enmap:sceneSunglint": "0",
        "enmap:sceneTerrain": "1",
        "enmap:sceneWV": str(acq.water_vapour),
        "enmap:season": _season(spec.datetime.month),
        "enmap:status": "NOMINAL",
        "enmap:statusSWIR": "on",
        "enmap:statusVNIR": "on",
        "enmap:sunAzimuthAngle": _sun(azimuth),
        "enmap:sunElevationAngle": _sun(elevation),
        "enmap:swirNumberChannelsMissing": "0",
        "enmap:tileID": f"{acq.tile:02d}",
        "enmap:vnirNumberChannelsMissing": "0",
        "enmap:water_cover": pct["water"],
        "eo:instrument": "HSI",
        "sci:citation": citation,
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            f"https://stac-extensions.github.io/{ext}/schema.json"
            for ext in (
                "eo/v1.1.0",
                "view/v1.0.0",
                "projection/v1.0.0",
                "processing/v1.0.0",
                "scientific/v1.0.0",
                "sat/v1.0.0",
            )
        ],
        "id": item_id,
        "collection": COLLECTION,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": properties,
        "assets": assets,
        "links": _links(item_id),
    }
