"""The STAC item of a map product (pure).

:func:`build_item` builds the :class:`pystac.Item` of a product on one grid from its
:class:`AssetSpec` files and source scenes. The item carries the ``proj`` (grid), ``raster``
(per-asset band: data type, nodata, unit, resolution, statistics), ``classification`` (class
maps) and ``processing`` (software, lineage, level) extensions, one ``derived_from`` link per
source item, and asset hrefs relative to the item file. :func:`clean_href` drops query
strings, fragments and logins from hrefs before they go in, so signed URLs and credentials
never reach an item.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pystac
from affine import Affine
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from spectraflow.mosaic.layers import BandStats, LayerSpec, MapClass

if TYPE_CHECKING:
    from spectraflow.mosaic.product import SourceRef

__all__ = [
    "COG_MEDIA_TYPE",
    "PROCESSING_SCHEMA",
    "ZARR_MEDIA_TYPE",
    "AssetSpec",
    "build_item",
    "clean_href",
    "footprint",
    "lineage",
]

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
ZARR_MEDIA_TYPE = "application/vnd+zarr"
PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
_EDGE_POINTS = 8  # points per grid edge: curved edges in lon/lat stay inside the bbox
_CLASS_NAME = re.compile(r"[^0-9A-Za-z_-]+")  # classification v2: names match ^[0-9A-Za-z-_]+$


@dataclass(frozen=True)
class AssetSpec:
    """One asset of the item; ``href`` relative to the item file.

    Raster assets give ``data_type`` (``"uint8"``, ``"float32"``), ``nodata``, ``unit`` and
    ``stats``; class-map assets also ``classes``.
    """

    key: str
    href: str
    media_type: str
    roles: tuple[str, ...]
    title: str | None = None
    description: str | None = None
    data_type: str | None = None
    nodata: float | None = None
    unit: str | None = None
    stats: BandStats | None = None
    classes: tuple[MapClass, ...] = ()

    @classmethod
    def of_layer(cls, layer: LayerSpec, stats: BandStats) -> AssetSpec:
        """The COG asset of a planned layer (the main layer's key is ``"data"``)."""
        return cls(
            key=layer.key,
            href=f"./{layer.filename}",
            media_type=COG_MEDIA_TYPE,
            roles=("data",) if layer.key == "data" else ("data", "quality"),
            title=f"{'Class map' if layer.kind == 'class' else 'Map'} of {layer.var}",
            description=layer.description,
            data_type=layer.dtype,
            nodata=layer.nodata,
            unit=layer.units,
            stats=stats,
            classes=layer.classes,
        )


def clean_href(href: str) -> str:
    """``href`` without query string, fragment and login (``user:pass@``); paths unchanged."""
    parts = urlsplit(href)
    if len(parts.scheme) <= 1:  # a local path (or a Windows drive letter)
        return href.split("?", 1)[0].split("#", 1)[0]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def footprint(
    crs: CRS, transform: Affine, shape: tuple[int, int]
) -> tuple[dict[str, Any], list[float]]:
    """The grid's outline in lon/lat (EPSG:4326) as a GeoJSON polygon, and its bbox.

    Edges are densified so that the lon/lat polygon follows the projected grid's curved edges.
    Grids across the antimeridian are not split.
    """
    height, width = shape
    steps = [i / _EDGE_POINTS for i in range(_EDGE_POINTS)]
    cols = [s * width for s in steps] + [width] * _EDGE_POINTS
    cols += [width - s * width for s in steps] + [0.0] * _EDGE_POINTS
    rows = [0.0] * _EDGE_POINTS + [s * height for s in steps]
    rows += [height] * _EDGE_POINTS + [height - s * height for s in steps]
    xs = [transform.c + transform.a * c + transform.b * r for c, r in zip(cols, rows, strict=True)]
    ys = [transform.f + transform.d * c + transform.e * r for c, r in zip(cols, rows, strict=True)]
    lons, lats = warp_transform(crs, CRS.from_epsg(4326), xs, ys)
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lons, lats, strict=True)]
    ring.append(ring[0])
    bbox = [min(lons), min(lats), max(lons), max(lats)]
    return {"type": "Polygon", "coordinates": [ring]}, [round(v, 7) for v in bbox]


def build_item(
    *,
    item_id: str,
    crs: CRS,
    transform: Affine,
    shape: tuple[int, int],
    assets: Sequence[AssetSpec],
    sources: Sequence[SourceRef] = (),
    attrs: Mapping[str, Any] | None = None,
    created: datetime | None = None,
    software_version: str = "0.0.0",
) -> pystac.Item:
    """The STAC item of a product on one grid.

    Parameters
    ----------
    item_id
        The item id (the product name).
    crs, transform, shape
        The grid: CRS, north-up affine transform of the pixel corners, ``(height, width)``.
    assets
        The product's files, hrefs relative to the item.
    sources
        The scenes the product was made from: time range, instruments and ``derived_from``
        links (hrefs without query strings).
    attrs
        The layers' attributes; ``model``/``models``, ``model_version``, ``model_sha256``,
        ``policy`` and ``datetime`` describe the lineage and time when present.
    created
        When the product was made (default: now, UTC).
    software_version
        spectraflow's version, for ``processing:software``.
    """
    attrs = attrs or {}
    created = created or datetime.now(UTC)
    geometry, bbox = footprint(crs, transform, shape)
    start, end = _time_range(sources, attrs, created)
    properties: dict[str, Any] = {"created": _rfc3339(created)}
    title = attrs.get("title")
    properties["title"] = str(title) if title else item_id
    item = pystac.Item(
        item_id,
        geometry,
        bbox,
        start if start == end else None,
        properties,
        start_datetime=start if start != end else None,
        end_datetime=end if start != end else None,
    )
    instruments = sorted({s.sensor.lower() for s in sources if s.sensor})
    if instruments:
        item.common_metadata.instruments = instruments

    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = crs.to_epsg()
    if epsg is not None:
        proj.code = f"EPSG:{epsg}"
    else:
        proj.code = None
        proj.wkt2 = crs.to_wkt(version="WKT2_2019")
    proj.shape = [int(shape[0]), int(shape[1])]
    proj.transform = [float(v) for v in tuple(transform)[:6]]
    west, north = transform.c, transform.f
    east, south = west + transform.a * shape[1], north + transform.e * shape[0]
    proj.bbox = [float(west), float(south), float(east), float(north)]

    resolution = float(abs(transform.a))
    for spec in assets:
        _add_asset(item, spec, resolution)

    item.stac_extensions.append(PROCESSING_SCHEMA)
    item.properties["processing:level"] = "L4"
    item.properties["processing:software"] = {"spectraflow": software_version}
    item.properties["processing:lineage"] = lineage(sources, attrs)
    item.properties["processing:datetime"] = _rfc3339(created)

    seen: set[str] = set()
    for source in sources:
        if not source.item_href:
            continue
        href = clean_href(source.item_href)
        if href not in seen:
            seen.add(href)
            item.add_link(
                pystac.Link(
                    "derived_from", href, media_type=pystac.MediaType.GEOJSON, title=source.scene_id
                )
            )
    return item


def lineage(sources: Sequence[SourceRef], attrs: Mapping[str, Any]) -> str:
    """A sentence on how the product was made: model(s), scenes, compositing policy."""
    models = attrs.get("models") or attrs.get("model")
    names = [str(m) for m in models] if isinstance(models, list | tuple) else [str(models or "")]
    names = [n for n in names if n]
    parts = []
    if names:
        text = "predicted by model " + ", ".join(repr(n) for n in names)
        if attrs.get("model_version"):
            text += f" version {attrs['model_version']}"
        if attrs.get("model_sha256"):
            text += f" (weights sha256 {str(attrs['model_sha256'])[:16]}…)"
        parts.append(text)
    if sources:
        sensors = ", ".join(sorted({s.sensor for s in sources if s.sensor}))
        parts.append(f"from {len(sources)} scene(s) ({sensors})")
    if attrs.get("policy"):
        parts.append(f"composited with the {attrs['policy']!r} policy")
    body = " ".join(parts) if parts else "written from layers given directly"
    return f"Map product {body}; written by spectraflow as COG and STAC item."


def _add_asset(item: pystac.Item, spec: AssetSpec, resolution: float) -> None:
    asset = pystac.Asset(
        spec.href,
        title=spec.title,
        description=spec.description,
        media_type=spec.media_type,
        roles=list(spec.roles),
    )
    item.add_asset(spec.key, asset)  # before the extensions: they need the asset's owner
    if spec.data_type is None:
        return
    nodata: float | str | None = spec.nodata
    if isinstance(nodata, float) and math.isnan(nodata):
        nodata = "nan"  # the raster extension's spelling: JSON has no NaN
    stats = spec.stats
    band = RasterBand.create(
        nodata=nodata,  # type: ignore[arg-type]  # NoDataStrings accepts "nan"
        data_type=DataType(spec.data_type),
        spatial_resolution=resolution,
        unit=spec.unit or None,
        statistics=None if stats is None else _statistics(stats, classes=bool(spec.classes)),
    )
    RasterExtension.ext(asset, add_if_missing=True).bands = [band]
    if spec.classes:
        total = sum(stats.counts.values()) if stats is not None else 0
        classes = []
        for cls in spec.classes:
            count = stats.counts.get(cls.value) if stats is not None else None
            classes.append(
                Classification.create(
                    value=cls.value,
                    name=_CLASS_NAME.sub("_", cls.name).strip("_") or f"class_{cls.value}",
                    title=cls.name,
                    color_hint=cls.color.lstrip("#").upper(),
                    count=count if count is not None else None,
                    percentage=round(100.0 * count / total, 4) if count and total else None,
                )
            )
        nodata_class = Classification.create(value=0, name="no_data", nodata=True)
        ClassificationExtension.ext(asset, add_if_missing=True).classes = [nodata_class, *classes]


def _statistics(stats: BandStats, *, classes: bool) -> Statistics:
    if classes:  # a mean of class values means nothing
        return Statistics.create(
            minimum=stats.minimum, maximum=stats.maximum, valid_percent=stats.valid_percent
        )
    return Statistics.create(
        minimum=stats.minimum,
        maximum=stats.maximum,
        mean=stats.mean,
        stddev=stats.stddev,
        valid_percent=stats.valid_percent,
    )


def _time_range(
    sources: Sequence[SourceRef], attrs: Mapping[str, Any], created: datetime
) -> tuple[datetime, datetime]:
    times = [_parse_time(s.datetime) for s in sources if s.datetime]
    if not times and attrs.get("datetime"):
        times = [_parse_time(str(attrs["datetime"]))]
    if not times:
        return created, created
    return min(times), max(times)


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
