"""``scene_from_item``: turn one STAC item of any supported provider into a :class:`Scene`.

The rules key on the item's content (collection, platform, file names, properties), never on
the URL it came from, so a copy of a provider's item in a self-hosted catalog normalises the same.

Provider quirks handled here:

- CMR-STAC (EMIT): asset keys are made from URLs and change; assets are picked by file name.
- DLR (EnMAP): numbers arrive as strings; ``eo:bands`` are in nm with per-band gain/offset.
- Earth Search (Sentinel-2): ``sentinel-2-l2a`` advertises offset -0.1 even where the DNs were
  already shifted; ``earthsearch:boa_offset_applied`` decides. Collection 1 items are right.
- Planetary Computer (Sentinel-2): no ``raster:bands``; the processing-baseline rule applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pystac
from pystac.utils import str_to_datetime
from shapely.geometry import shape

from spectraflow.catalog.providers import provider_for_href
from spectraflow.catalog.scene import Scene, Sensor
from spectraflow.catalog.signing import unsigned
from spectraflow.errors import SceneFormatError
from spectraflow.sensors import emit, enmap, sentinel2
from spectraflow.sensors.bands import BandTable

__all__ = ["scene_from_item", "sensor_of_item"]

_ENMAP_SUFFIXES = {
    "SPECTRAL_IMAGE": "data",
    "QL_PIXELMASK": "mask",
    "METADATA": "metadata",
    "QL_VNIR": "thumbnail",
    **{f"QL_QUALITY_{layer}": f"quality:{layer.lower()}" for layer in enmap.QUALITY_LAYERS},
}
_EMIT_PREFIXES = {
    "EMIT_L2A_RFLUNCERT_": "uncertainty",
    "EMIT_L2A_RFL_": "data",
    "EMIT_L2A_MASK_": "mask",
}
_S2_EXTRA_KEYS = {
    "mask": ("scl", "SCL"),
    "metadata": ("granule_metadata", "granule-metadata"),
    "thumbnail": ("thumbnail", "rendered_preview", "preview"),
}
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})\.?(\d{2})")


def _number(value: Any, *, item_id: str, key: str) -> float | None:
    """A number that providers may send as a string (DLR) or leave out."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SceneFormatError(
            f"property {key} is not a number: {value!r}",
            where=f"item {item_id}",
            fix="correct the item in the catalog, or report it to the provider",
        ) from None


def _file_name(href: str) -> str:
    return PurePosixPath(urlsplit(href).path).name


def sensor_of_item(item: Mapping[str, Any]) -> Sensor:
    """Which sensor an item belongs to, from its collection, platform or file names."""
    props = item.get("properties", {})
    collection = str(item.get("collection") or "").upper()
    platform = str(props.get("platform") or "").lower()
    constellation = str(props.get("constellation") or "").lower().replace(" ", "-")
    names = [_file_name(a.get("href", "")) for a in item.get("assets", {}).values()]
    if collection.startswith("EMITL2ARFL") or any(n.startswith("EMIT_L2A_RFL_") for n in names):
        return "emit"
    if collection.startswith("ENMAP_HSI_L2A") or platform == "enmap":
        return "enmap"
    if platform.startswith("sentinel-2") or constellation == "sentinel-2":
        return "sentinel2"
    raise SceneFormatError(
        f"item is not an EMIT L2A RFL, EnMAP L2A or Sentinel-2 L2A item "
        f"(collection {item.get('collection')!r}, platform {props.get('platform')!r})",
        where=f"item {item.get('id')}",
        fix="search the collections listed for each sensor in spectraflow's providers",
    )


def _missing_data(item_id: str, what: str) -> SceneFormatError:
    return SceneFormatError(
        f"item has no {what} asset",
        where=f"item {item_id}",
        fix="the catalog entry is incomplete: skip this scene or ask the provider to fix it",
    )


Normalised = tuple[dict[str, str], BandTable, Mapping[str, Any]]
"""Assets by role, band table, and the asset whose ``proj:`` fields describe the grid."""


def _emit(item: Mapping[str, Any]) -> Normalised:
    assets: dict[str, str] = {}
    for key, asset in item.get("assets", {}).items():
        href = asset.get("href", "")
        name = _file_name(href)
        roles = asset.get("roles") or []
        role = next(
            (r for p, r in _EMIT_PREFIXES.items() if name.startswith(p) and name.endswith(".nc")),
            None,
        )
        if role is None and (
            name.endswith(".cmr.json") or "metadata" in roles or key == "metadata"
        ):
            role = "metadata"
        elif role is None and name.endswith(".png"):
            role = "thumbnail"
        # CMR lists each file twice: HTTPS (works anywhere with a login) before s3:// (us-west-2).
        if role and (role not in assets or assets[role].startswith("s3://")):
            assets[role] = href
    if "data" not in assets:
        raise _missing_data(str(item.get("id")), "EMIT_L2A_RFL_*.nc reflectance")
    # CMR-STAC items carry no band metadata: the nominal table stands in until the reader
    # takes the file's own wavelengths. EMIT comes in sensor geometry: no grid.
    return assets, emit.emit_band_table(), {}


def _enmap_bands(image: Mapping[str, Any], item_id: str) -> BandTable:
    bands = image.get("eo:bands") or image.get("bands")
    if not bands:
        return enmap.enmap_band_table()

    def value(band: Mapping[str, Any], key: str, default: float | None = None) -> float:
        number = _number(band.get(key, default), item_id=item_id, key=f"eo:bands {key}")
        if number is None:
            raise SceneFormatError(
                f"a band of the image asset lacks {key}",
                where=f"item {item_id}",
                fix="correct the item's eo:bands",
            )
        return number

    wl = [value(b, "center_wavelength") for b in bands]
    fwhm = [value(b, "full_width_half_max") for b in bands]
    # DLR gives nm; other catalogs follow the STAC convention of µm.
    factor = 1000.0 if max(wl) < 10.0 else 1.0
    wl = [w * factor for w in wl]
    nominal = enmap.enmap_band_table()
    good = [not any(lo <= w <= hi for lo, hi in enmap.NODATA_NM) for w in wl]
    return BandTable.from_arrays(
        wl,
        [f * factor for f in fwhm],
        name=[str(b.get("name", i + 1)) for i, b in enumerate(bands)],
        scale=[value(b, "enmap:gain_of_band", nominal.scale[0]) for b in bands],
        offset=[value(b, "enmap:offset_of_band", nominal.offset[0]) for b in bands],
        good=good,
    )


def _enmap(item: Mapping[str, Any]) -> Normalised:
    assets: dict[str, str] = {}
    image: Mapping[str, Any] | None = None
    for asset in item.get("assets", {}).values():
        href = asset.get("href", "")
        stem = _file_name(href).upper().removesuffix(".TIF").removesuffix(".XML")
        stem = stem.removesuffix("_COG")
        for suffix, role in _ENMAP_SUFFIXES.items():
            if stem.endswith("-" + suffix):
                assets.setdefault(role, href)
                if role == "data":
                    image = asset
    if image is None:
        raise _missing_data(str(item.get("id")), "SPECTRAL_IMAGE")
    return assets, _enmap_bands(image, str(item.get("id"))), image


def _s2_baseline(props: Mapping[str, Any]) -> str | None:
    baseline = props.get("s2:processing_baseline")
    if baseline:
        return str(baseline)
    for key in ("s2:product_uri", "s2:datatake_id", "s2:granule_id"):
        match = _BASELINE_IN_NAME.search(str(props.get(key) or ""))
        if match:
            return f"{match[1]}.{match[2]}"
    return None


def _s2_offset(item: Mapping[str, Any], raster_offset: float | None) -> float:
    """Reflectance offset of the DNs: -0.1 for shifted DNs (baseline ≥ 04.00), else 0."""
    props = item.get("properties", {})
    if props.get("earthsearch:boa_offset_applied") is True:
        return 0.0  # the DNs were already shifted back; the advertised -0.1 is wrong
    baseline = _s2_baseline(props)
    if baseline is not None:
        shifted = sentinel2.offset_applies(baseline)
        return sentinel2.BOA_ADD_OFFSET / sentinel2.QUANTIFICATION if shifted else 0.0
    if raster_offset is not None:
        return raster_offset
    raise SceneFormatError(
        "cannot tell the reflectance offset: no s2:processing_baseline, product URI or "
        "raster:bands offset",
        where=f"item {item.get('id')}",
        fix="add s2:processing_baseline to the item (DN offset rule changed at baseline 04.00)",
    )


def _s2(item: Mapping[str, Any]) -> Normalised:
    items = item.get("assets", {})
    assets: dict[str, str] = {}
    reference: Mapping[str, Any] = {}
    raster_offset: float | None = None
    for band in sentinel2.BANDS:
        asset = items.get(band.name) or items.get(band.common_name)
        if asset is None:
            raise _missing_data(str(item.get("id")), f"{band.name} ({band.common_name})")
        assets[f"data:{band.name}"] = asset["href"]
        raster = (asset.get("raster:bands") or [{}])[0]
        if raster.get("offset") is not None:
            raster_offset = float(raster["offset"])
        if band.resolution_m == 10 and not reference:
            reference = asset
    for role, keys in _S2_EXTRA_KEYS.items():
        for key in keys:
            if key in items:
                assets[role] = items[key]["href"]
                break
    table = sentinel2.sentinel2_band_table()
    offset = _s2_offset(item, raster_offset)
    bands = table.model_copy(update={"offset": (offset,) * len(table)})
    return assets, bands, reference


def _s2_tile(props: Mapping[str, Any]) -> str | None:
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"])
    code = str(props.get("grid:code") or "")
    if code.startswith("MGRS-"):
        return code.removeprefix("MGRS-")
    if props.get("mgrs:utm_zone"):
        return f"{int(props['mgrs:utm_zone']):02d}{props.get('mgrs:latitude_band', '')}" + str(
            props.get("mgrs:grid_square", "")
        )
    return None


def _grid(
    item: Mapping[str, Any], asset: Mapping[str, Any]
) -> tuple[str | None, tuple[float, ...] | None, tuple[int, int] | None]:
    """CRS, transform and shape from ``proj:`` fields of the asset, else of the item."""
    props = item.get("properties", {})

    def field(key: str) -> Any:
        value = asset.get(key)
        return value if value is not None else props.get(key)

    epsg, code = field("proj:epsg"), field("proj:code")
    crs = f"EPSG:{int(float(epsg))}" if epsg not in (None, "") else (str(code) if code else None)
    transform = field("proj:transform")
    rows_cols = field("proj:shape")
    return (
        crs,
        tuple(float(v) for v in transform[:6]) if transform else None,
        (int(rows_cols[0]), int(rows_cols[1])) if rows_cols else None,
    )


def _when(item: Mapping[str, Any]) -> datetime:
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise SceneFormatError(
            "item has neither datetime nor start_datetime",
            where=f"item {item.get('id')}",
            fix="correct the item in the catalog",
        )
    return str_to_datetime(str(text))


def _self_href(item: Mapping[str, Any]) -> str | None:
    for link in item.get("links", []):
        if link.get("rel") == "self":
            return str(link.get("href"))
    return None


_RULES: dict[str, Callable[[Mapping[str, Any]], Normalised]] = {
    "emit": _emit,
    "enmap": _enmap,
    "sentinel2": _s2,
}


def scene_from_item(item: pystac.Item | Mapping[str, Any], *, provider: str | None = None) -> Scene:
    """Normalise one STAC item (EMIT, EnMAP or Sentinel-2 L2A, any provider) into a Scene.

    Parameters
    ----------
    item
        A :class:`pystac.Item` or its dict.
    provider
        Name to record in :attr:`Scene.provider`; by default the registered provider whose API
        serves the item's ``self`` link, else ``"local"``.

    Raises
    ------
    SceneFormatError
        When the item is of another sensor, lacks its data asset, or carries unreadable values.
    """
    if isinstance(item, pystac.Item):
        item_href = item.get_self_href()
        item = item.to_dict(include_self_link=False, transform_hrefs=False)
    else:
        item_href = _self_href(item)
    item_id = str(item.get("id"))
    sensor = sensor_of_item(item)
    props = item.get("properties", {})
    assets, bands, reference = _RULES[sensor](item)
    crs, transform, grid_shape = _grid(item, reference) if reference else (None, None, None)
    geometry = item.get("geometry")
    if not geometry:
        raise SceneFormatError(
            "item has no footprint geometry", where=f"item {item_id}", fix="correct the item"
        )
    bbox = item.get("bbox") or shape(geometry).bounds
    if len(bbox) == 6:  # 3-D bbox: drop the heights
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    platform = props.get("platform")
    return Scene(
        id=item_id,
        sensor=sensor,
        provider=provider or provider_for_href(item_href) or "local",
        collection=str(item.get("collection") or ""),
        datetime=_when(item),
        geometry=dict(geometry),
        bbox=tuple(float(v) for v in bbox),
        cloud_cover=_number(props.get("eo:cloud_cover"), item_id=item_id, key="eo:cloud_cover"),
        assets={role: unsigned(href) for role, href in assets.items()},
        bands=bands,
        crs=crs,
        transform=transform,
        shape=grid_shape,
        platform=str(platform).lower() if platform else None,
        tile=_s2_tile(props) if sensor == "sentinel2" else None,
        item_href=unsigned(item_href) if item_href else None,
    )
