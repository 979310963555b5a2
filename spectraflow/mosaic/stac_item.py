"""The pure parts of map products: layer plans, block windows and statistics, the STAC item.

Nothing here reads or writes files. :func:`plan_layers` checks the layers a product is made of
and plans each variable's file (class map or continuous values, nodata, units, classes);
:func:`block_windows` cuts the grid into the windows that are read at once; :class:`BlockStats`
accumulates band statistics block by block; :func:`build_item` builds the :class:`pystac.Item`.

The item carries the ``proj`` (grid), ``raster`` (per-asset band: data type, nodata, unit,
resolution, statistics), ``classification`` (class maps) and ``processing`` (software, lineage,
level) extensions, one ``derived_from`` link per source item, and asset hrefs relative to the
item file. Hrefs lose their query string, fragment and login before they go in, so signed URLs
and credentials never reach an item.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from spectraflow.errors import ProductError

if TYPE_CHECKING:
    from spectraflow.mosaic.product import SourceRef

__all__ = [
    "BLOCK",
    "COG_MEDIA_TYPE",
    "PROCESSING_SCHEMA",
    "ZARR_MEDIA_TYPE",
    "AssetSpec",
    "BandStats",
    "BlockStats",
    "GridSpec",
    "LayerSpec",
    "MapClass",
    "block_windows",
    "build_item",
    "clean_href",
    "footprint",
    "plan_layers",
]

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
ZARR_MEDIA_TYPE = "application/vnd+zarr"
PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
BLOCK = 512
"""COG tile edge (pixels)."""
_MAX_WINDOW = 4096  # largest block window read at once (per variable)
_RESERVED_KEYS = frozenset({"data", "quicklook", "zarr", "categories"})
_NAME_FIX = "use letters, digits, '.', '_' and '-' only, not starting with a dot"
_EDGE_POINTS = 8  # points per grid edge: curved edges in lon/lat stay inside the bbox
_CLASS_NAME = re.compile(r"[^0-9A-Za-z_-]+")  # classification v2: names match ^[0-9A-Za-z-_]+$


class MapClass(NamedTuple):
    """One class of a class map: pixel value, name, and display colour ``"#rrggbb"``."""

    value: int
    name: str
    color: str


@dataclass(frozen=True)
class BandStats:
    """Statistics of one band over its valid pixels (``None`` when there are none)."""

    minimum: float | None
    maximum: float | None
    mean: float | None
    stddev: float | None
    valid_percent: float
    counts: Mapping[int, int] = field(default_factory=dict)  # class maps: pixels per value


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


@dataclass(frozen=True)
class LayerSpec:
    """How one variable of the layers is written: file, asset key, kind, nodata, units, classes."""

    var: str
    key: str  # STAC asset key
    filename: str
    kind: Literal["class", "continuous"]
    nodata: float
    units: str | None
    description: str
    classes: tuple[MapClass, ...]

    @property
    def dtype(self) -> str:
        """The file's data type: ``"uint8"`` for class maps, ``"float32"`` otherwise."""
        return "uint8" if self.kind == "class" else "float32"


@dataclass(frozen=True)
class GridSpec:
    """The layers' grid: CRS, north-up transform of the pixel corners, ``(height, width)``."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]


class BlockStats:
    """Running statistics of the valid pixels of a band, from its blocks."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pixels = self.valid = 0
        self.mean = self.m2 = 0.0  # running mean and sum of squared deviations (Chan et al.)
        self.low, self.high = math.inf, -math.inf
        self.counts = np.zeros(256, dtype=np.int64)

    def update(self, block: np.ndarray) -> None:
        """Add one block (uint8 classes with 0 = no data, or floats with NaN = no data)."""
        self.pixels += block.size
        if self.kind == "class":
            self.counts += np.bincount(block.ravel(), minlength=256)
            return
        values = block[np.isfinite(block)].astype(np.float64)
        if values.size:
            count, mean = values.size, float(values.mean())
            m2 = float(np.square(values - mean).sum())
            total = self.valid + count
            delta = mean - self.mean
            self.mean += delta * count / total
            self.m2 += m2 + delta * delta * self.valid * count / total
            self.valid = total
            self.low, self.high = min(self.low, values.min()), max(self.high, values.max())

    def result(self) -> BandStats:
        """The statistics of all blocks added so far."""
        if self.kind == "class":
            present = np.flatnonzero(self.counts[1:]) + 1
            valid = int(self.counts[1:].sum())
            counts = {int(v): int(self.counts[v]) for v in present}
            low = float(present[0]) if valid else None
            high = float(present[-1]) if valid else None
            return BandStats(low, high, None, None, self._percent(valid), counts)
        if not self.valid:
            return BandStats(None, None, None, None, 0.0)
        stddev = math.sqrt(self.m2 / self.valid)
        percent = self._percent(self.valid)
        return BandStats(float(self.low), float(self.high), self.mean, stddev, percent)

    def _percent(self, valid: int) -> float:
        return round(100.0 * valid / self.pixels, 4) if self.pixels else 0.0


# --- planning ---------------------------------------------------------------------------------


def plan_layers(layers: xr.Dataset, name: str) -> tuple[GridSpec, list[LayerSpec]]:
    """Check ``layers`` and ``name`` and plan each variable's file.

    Raises
    ------
    ProductError
        No data variables, a bad name, dims other than ``(y, x)``, no CRS, a transform that is
        not north-up, or a dtype that is neither a class map nor continuous values.
    """
    if not isinstance(layers, xr.Dataset):
        what = f"layers must be an xarray Dataset, not {type(layers).__name__}"
        raise ProductError(what, where="layers", fix="pass an xr.Dataset of map layers")
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or len(name) > 200
        or any(not (c.isascii() and (c.isalnum() or c in "._-")) for c in name)
    ):
        raise ProductError(f"invalid product name {name!r}", where="name", fix=_NAME_FIX)
    if not layers.data_vars:
        fix = "pass a Dataset whose first data variable is the main layer"
        raise ProductError("layers hold no data variables", where="layers", fix=fix)
    for var, array in layers.data_vars.items():
        if array.dims != ("y", "x"):
            raise ProductError(
                f"variable has dims {array.dims}, expected ('y', 'x')",
                where=f"layers[{var!r}]",
                fix="give every layer the dims (y, x) of one grid (transpose or select others)",
            )
    grid = _grid(layers)
    plan = [_layer(str(var), layers[var], name, main=i == 0) for i, var in enumerate(layers)]
    return grid, plan


def _grid(layers: xr.Dataset) -> GridSpec:
    crs = layers.rio.crs
    if crs is None:
        fix = "set it with layers.rio.write_crs(...) (rioxarray)"
        raise ProductError("layers have no CRS", where="layers", fix=fix)
    try:
        transform = layers.rio.transform()
    except Exception as error:  # rioxarray raises several kinds for unusable coordinates
        what = f"layers have no usable affine transform: {error}"
        fix = "give them x/y coordinates or layers.rio.write_transform(...)"
        raise ProductError(what, where="layers", fix=fix) from error
    shape = (int(layers.sizes["y"]), int(layers.sizes["x"]))
    if shape[0] == 0 or shape[1] == 0:
        raise ProductError("layers are empty", where="layers", fix="pass at least one pixel")
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        raise ProductError(
            f"grid is not north-up (transform {tuple(transform)[:6]})",
            where="layers",
            fix="reproject the layers onto a north-up grid (no rotation, y decreasing)",
        )
    return GridSpec(CRS.from_user_input(crs), transform, shape)


def _layer(var: str, array: xr.DataArray, name: str, *, main: bool) -> LayerSpec:
    where = f"layers[{var!r}]"
    attrs = array.attrs
    key = "data" if main else (f"layer-{var}" if var in _RESERVED_KEYS else var)
    filename = f"{name}.tif" if main else f"{name}_{var}.tif"
    if any(c in var for c in "/\\\0") or var.startswith("."):
        raise ProductError(f"variable name {var!r} cannot name a file", where=where, fix=_NAME_FIX)
    kind = array.dtype.kind
    if "flag_values" in attrs and kind in "ui":
        classes = _classes(attrs, where)
        labels = ", ".join(f"{c.value}={c.name}" for c in classes)
        return LayerSpec(var, key, filename, "class", 0, None, f"{var}: {labels}", classes)
    if kind == "f" and "flag_values" not in attrs:
        units = attrs.get("units")
        description = str(attrs.get("long_name") or var)
        return LayerSpec(
            var, key, filename, "continuous", math.nan, units and str(units), description, ()
        )
    raise ProductError(
        f"variable has dtype {array.dtype}, which is neither a class map nor continuous values",
        where=where,
        fix="give class maps (integers) attrs flag_values/flag_meanings/flag_colors, "
        "or cast continuous values to float32",
    )


def _classes(attrs: Mapping[str, Any], where: str) -> tuple[MapClass, ...]:
    try:
        values = [int(v) for v in np.atleast_1d(attrs["flag_values"])]
    except (TypeError, ValueError) as error:
        what = f"flag_values {attrs['flag_values']!r} are not integers"
        fix = "give the class values as a list of integers"
        raise ProductError(what, where=f"{where}.attrs['flag_values']", fix=fix) from error
    meanings = str(attrs.get("flag_meanings") or "").split()
    colours = [str(c) for c in np.atleast_1d(attrs.get("flag_colors", []))]
    if not values or any(not 0 < v < 256 for v in values) or len(set(values)) != len(values):
        raise ProductError(
            f"class values {values} must be distinct and within 1..255 (0 = no data)",
            where=f"{where}.attrs['flag_values']",
            fix="renumber the classes 1..255",
        )
    if meanings and len(meanings) != len(values):
        raise ProductError(
            f"{len(meanings)} flag_meanings for {len(values)} flag_values",
            where=f"{where}.attrs['flag_meanings']",
            fix="give one space-separated name per class value",
        )
    if colours and (len(colours) != len(values) or any(not _is_hex_colour(c) for c in colours)):
        raise ProductError(
            f"flag_colors must be one '#rrggbb' per class value, got {colours}",
            where=f"{where}.attrs['flag_colors']",
            fix="give one '#rrggbb' colour per class value, or none for a default palette",
        )
    names = meanings or [f"class_{v}" for v in values]
    colours = colours or [_default_colour(i) for i in range(len(values))]
    return tuple(MapClass(v, n, c.lower()) for v, n, c in zip(values, names, colours, strict=True))


def _is_hex_colour(text: str) -> bool:
    return (
        len(text) == 7 and text[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in text[1:])
    )


def _default_colour(index: int) -> str:
    # Tableau 10, repeated: distinct colours for class maps that bring none.
    palette = (
        "#4e79a7",
        "#f28e2b",
        "#e15759",
        "#76b7b2",
        "#59a14f",
        "#edc948",
        "#b07aa1",
        "#ff9da7",
        "#9c755f",
        "#bab0ac",
    )
    return palette[index % len(palette)]


def block_windows(
    shape: tuple[int, int], chunks: tuple[tuple[int, ...], ...] | None
) -> list[Window]:
    """Block windows covering ``shape``: the dask chunks when they are whole COG tiles."""
    edges = [_edges(size, None if chunks is None else chunks[i]) for i, size in enumerate(shape)]
    return [
        Window(c0, r0, c1 - c0, r1 - r0)
        for r0, r1 in zip(edges[0][:-1], edges[0][1:], strict=True)
        for c0, c1 in zip(edges[1][:-1], edges[1][1:], strict=True)
    ]


def _edges(size: int, chunks: tuple[int, ...] | None) -> list[int]:
    if chunks and all(c % BLOCK == 0 for c in chunks[:-1]) and max(chunks) <= _MAX_WINDOW:
        return [0, *np.cumsum(chunks).tolist()]
    # Otherwise windows of whole tiles near the chunk size: compressed tiles are written once.
    typical = max(chunks) if chunks else 4 * BLOCK
    step = min(_MAX_WINDOW, max(BLOCK, round(typical / BLOCK) * BLOCK))
    return [*range(0, size, step), size]


# --- the STAC item -----------------------------------------------------------------------------


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
