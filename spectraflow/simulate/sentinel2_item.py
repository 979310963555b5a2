"""STAC items of simulated Sentinel-2 L2A scenes, one flavour per provider (pure code).

Each flavour mirrors a real item of its provider field by field (../shared/real-data):

- ``earth-search``: Earth Search v1 ``sentinel-2-c1-l2a`` (Collection 1, baseline 05.11): asset keys
  by common name, ``eo:bands`` in µm, ``raster:bands`` scale 0.0001 offset -0.1 (right: DNs
  carry the +1000 offset), ``file:checksum``/``file:size``, per-asset ``proj:*``.
- ``earth-search-l2a``: Earth Search v1 ``sentinel-2-l2a`` (baseline 05.09): the COGs' DNs were
  shifted back (``earthsearch:boa_offset_applied: true``, reflectance = DN / 10000) while
  ``raster:bands`` still says offset -0.1, the quirk readers must handle; ``-jp2`` twins hold
  ESA's original DNs, for which the -0.1 offset is right.
- ``planetary-computer``: ``sentinel-2-l2a`` (baseline 05.10): keys ``B01``…``B12``, ``B8A``,
  ``SCL``, ``AOT``, ``WVP``, ``visual``; no ``raster:bands`` (apply the baseline rule); AOT and
  WVP at 10 m. Its ``datetime`` is the datatake start, as the real items' is.

Hrefs are local paths; links point where the provider's would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from spectraflow.sensors.sentinel2 import BANDS, S2Band
from spectraflow.simulate.sentinel2_meta import (
    Identity,
    SceneStats,
    TileGrid,
    reflectance_conversion_factor,
    stamp,
)

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
JP2 = "image/jp2"
ES_ROOT = "https://earth-search.aws.element84.com/v1"
PC_ROOT = "https://planetarycomputer.microsoft.com/api/stac/v1"
LICENSE = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"


@dataclass(frozen=True)
class Flavour:
    """How one provider serves the product."""

    collection: str
    baseline: str
    boa_offset_applied: bool  # Earth Search shifted the COGs' DNs back to DN / 10000


FLAVOURS: dict[str, Flavour] = {
    "earth-search": Flavour("sentinel-2-c1-l2a", "05.11", False),
    "earth-search-l2a": Flavour("sentinel-2-l2a", "05.09", True),
    "planetary-computer": Flavour("sentinel-2-l2a", "05.10", False),
}
EXTENSIONS: dict[str, list[str]] = {
    "earth-search": [
        f"https://stac-extensions.github.io/{name}/schema.json"
        for name in (
            "eo/v1.1.0", "file/v2.1.0", "grid/v1.1.0", "mgrs/v1.0.0", "processing/v1.1.0",
            "projection/v1.1.0", "raster/v1.1.0", "sentinel-2/v1.0.0", "storage/v1.0.0",
            "view/v1.0.0",
        )
    ],
    "earth-search-l2a": [
        f"https://stac-extensions.github.io/{name}/schema.json"
        for name in (
            "processing/v1.1.0", "grid/v1.0.0", "raster/v1.1.0", "view/v1.0.0",
            "projection/v1.1.0", "mgrs/v1.0.0", "eo/v1.1.0",
        )
    ],
    "planetary-computer": [
        f"https://stac-extensions.github.io/{name}/schema.json"
        for name in ("eo/v1.0.0", "sat/v1.0.0", "projection/v1.1.0")
    ],
}  # fmt: skip

# Band wording of each provider: (Earth Search C1 title, Earth Search L2A description,
# Planetary Computer description).
_WORDS: dict[str, tuple[str, str, str]] = {
    "B01": ("Coastal", "Coastal aerosol (band 1)", "Band 1 - Coastal aerosol"),
    "B02": ("Blue", "Blue (band 2)", "Band 2 - Blue"),
    "B03": ("Green", "Green (band 3)", "Band 3 - Green"),
    "B04": ("Red", "Red (band 4)", "Band 4 - Red"),
    "B05": ("Red Edge 1", "Red edge 1 (band 5)", "Band 5 - Vegetation red edge 1"),
    "B06": ("Red Edge 2", "Red edge 2 (band 6)", "Band 6 - Vegetation red edge 2"),
    "B07": ("Red Edge 3", "Red edge 3 (band 7)", "Band 7 - Vegetation red edge 3"),
    "B08": ("NIR 1", "NIR 1 (band 8)", "Band 8 - NIR"),
    "B8A": ("NIR 2", "NIR 2 (band 8A)", "Band 8A - Vegetation red edge 4"),
    "B09": ("NIR 3", "NIR 3 (band 9)", "Band 9 - Water vapor"),
    "B11": ("SWIR 1.6μm", "SWIR 1 (band 11)", "Band 11 - SWIR (1.6)"),
    "B12": ("SWIR 2.2μm", "SWIR 2 (band 12)", "Band 12 - SWIR (2.2)"),
}
BAND = {b.name: b for b in BANDS}
TCI_BANDS = ("B04", "B03", "B02")


@dataclass(frozen=True)
class AssetFile:
    """A written file as an asset sees it: final absolute path, size and sha2-256 multihash."""

    href: str
    size: int
    checksum: str


def _num(value: float) -> float | int:
    """Integral values as ints, as Earth Search writes transforms and zero percentages."""
    return int(value) if float(value).is_integer() else value


def _eo_band(band: S2Band, provider: str) -> dict[str, Any]:
    _, es_desc, pc_desc = _WORDS[band.name]
    common = "rededge" if band.common_name.startswith("rededge") else band.common_name
    wl = {
        "center_wavelength": round(band.wavelength_nm / 1000.0, 6),
        "full_width_half_max": round(band.fwhm_nm / 1000.0, 6),
    }
    if provider == "earth-search":
        return {"name": band.name, "common_name": common, **wl}
    if provider == "earth-search-l2a":
        return {"name": band.common_name, "common_name": common, "description": es_desc, **wl}
    pc_common = {"B8A": "rededge", "B09": None}.get(band.name, common)
    out: dict[str, Any] = {"name": band.name}
    if pc_common is not None:
        out["common_name"] = pc_common
    return {**out, "description": pc_desc, **wl}


def _raster(dtype: str, res: int, provider: str, **scaling: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"nodata": 0, "data_type": dtype}
    if provider == "earth-search-l2a" and dtype == "uint16":
        out["bits_per_sample"] = 15
    return {**out, "spatial_resolution": res, **scaling}


def _proj(grid: TileGrid, res: int, as_float: bool = False) -> dict[str, Any]:
    rows, cols = grid.shape(res)
    t = grid.proj_transform(res)
    return {
        "proj:shape": [rows, cols],
        "proj:transform": [float(v) for v in t] if as_float else [_num(v) for v in t],
    }


def _es_assets(
    provider: str, grid: TileGrid, files: Mapping[str, AssetFile]
) -> dict[str, dict[str, Any]]:
    c1 = provider == "earth-search"
    reflectance = {"scale": 0.0001, "offset": -0.1}
    assets: dict[str, dict[str, Any]] = {}
    file_of: dict[str, str] = {}

    def add(key: str, fkey: str, body: dict[str, Any], roles: list[str], media: str = COG) -> None:
        f = files[fkey]
        file_of[key] = fkey
        extra = {"file:checksum": f.checksum, "file:size": f.size} if c1 else {}
        assets[key] = {"href": f.href, "type": media, **body, **extra, "roles": roles}

    def band_body(b: S2Band) -> dict[str, Any]:
        es_title, es_desc, _ = _WORDS[b.name]
        title = f"{es_title if c1 else es_desc} - {b.resolution_m}m"
        return {
            "title": title,
            "eo:bands": [_eo_band(b, provider)],
            "gsd": b.resolution_m,
            **_proj(grid, b.resolution_m),
            "raster:bands": [_raster("uint16", b.resolution_m, provider, **reflectance)],
        }

    data_roles = ["data"] if c1 else ["data", "reflectance"]
    aux: dict[str, tuple[str, str, dict[str, Any]]] = {
        "aot": ("AOT", "Aerosol optical thickness (AOT)", {"scale": 0.001, "offset": 0}),
        "wvp": (
            "WVP",
            "Water Vapour (WVP)" if c1 else "Water vapour (WVP)",
            {"unit": "cm", "scale": 0.001, "offset": 0},
        ),
        "scl": ("SCL", "Scene classification map (SCL)", {}),
    }

    def aux_body(key: str) -> dict[str, Any]:
        _, title, scaling = aux[key]
        dtype = "uint8" if key == "scl" else "uint16"
        return {
            "title": title,
            **({"gsd": 20} if c1 else {}),
            **_proj(grid, 20),
            "raster:bands": [_raster(dtype, 20, provider, **scaling)],
        }

    visual_bands = [_eo_band(BAND[n], provider) for n in TCI_BANDS]
    visual: dict[str, Any] = {"title": "True color image", "eo:bands": visual_bands}
    if c1:
        visual["raster:bands"] = [_raster("uint8", 10, provider) for _ in TCI_BANDS]
        visual["gsd"] = 10
    visual.update(_proj(grid, 10))

    if c1:
        order = [
            "B04", "B03", "B02", "visual", "B08", "B12", "B06", "B07", "B05", "B11", "wvp",
            "B8A", "scl", "aot", "B01", "B09", "cloud", "snow", "preview", "granule_metadata",
            "tileinfo_metadata", "product_metadata", "thumbnail",
        ]  # fmt: skip
    else:
        order = sorted(
            [b.name for b in BANDS]
            + ["aot", "wvp", "scl", "visual", "thumbnail", "granule_metadata", "tileinfo_metadata"],
            key=lambda k: BAND[k].common_name if k in BAND else k,
        )
    for key in order:
        if key in BAND:
            add(BAND[key].common_name, key, band_body(BAND[key]), ["data", "reflectance"])
        elif key in aux:
            add(key, aux[key][0], aux_body(key), data_roles)
        elif key == "visual":
            add(key, "visual", visual, ["visual"])
        elif key in ("cloud", "snow"):
            title = "Cloud Probabilities" if key == "cloud" else "Snow Probabilities"
            body = {
                "title": title,
                **({"gsd": 20} if key == "cloud" else {}),
                **_proj(grid, 20),
                "raster:bands": [_raster("uint8", 20, provider)],
            }
            add(key, key, body, ["data", "cloud" if key == "cloud" else "snow-ice"])
        elif key == "preview":
            body = {"title": "True color preview", "gsd": 320, **_proj(grid, 320)}
            add(key, key, {**body, "eo:bands": visual_bands}, ["overview"])
        elif key == "thumbnail":
            title = "Thumbnail of preview image" if c1 else "Thumbnail image"
            add(key, key, {"title": title}, ["thumbnail"], "image/jpeg")
        else:
            media = "application/json" if key == "tileinfo_metadata" else "application/xml"
            add(key, key, {}, ["metadata"], media)
    if not c1:
        # Twins in ESA's JPEG 2000 with the original DNs (requester-pays bucket in reality).
        for key in [k for k in sorted(assets) if k not in ("thumbnail",) and "metadata" not in k]:
            twin = dict(assets[key])
            twin["href"] = files[f"{file_of[key]}-jp2"].href
            twin["type"] = JP2
            assets[f"{key}-jp2"] = twin
    return assets


def _pc_assets(grid: TileGrid, files: Mapping[str, AssetFile]) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}

    def raster_asset(key: str, res: int, title: str, bands: list[dict[str, Any]]) -> None:
        rows, cols = grid.shape(res)
        t = grid.transform(res)
        body: dict[str, Any] = {
            "href": files[key].href,
            "proj:bbox": [t.c, t.f - rows * res, t.c + cols * res, t.f],
            **_proj(grid, res, as_float=True),
            "gsd": float(res),
            "type": COG,
            "roles": ["data"],
            "title": title,
        }
        if bands:
            body["eo:bands"] = bands
        assets[key] = body

    raster_asset("AOT", 10, "Aerosol optical thickness (AOT)", [])
    for band in sorted(BANDS, key=lambda b: b.name.replace("B8A", "B13")):
        title = f"{_WORDS[band.name][2]} - {band.resolution_m}m"
        raster_asset(band.name, band.resolution_m, title, [_eo_band(band, "planetary-computer")])
    raster_asset("SCL", 20, "Scene classfication map (SCL)", [])  # sic, as PC spells it
    raster_asset("WVP", 10, "Water vapour (WVP)", [])
    visual = [_eo_band(BAND[n], "planetary-computer") for n in TCI_BANDS]
    raster_asset("visual", 10, "True color image", visual)
    assets["preview"] = {
        "href": files["preview"].href,
        "type": COG,
        "roles": ["thumbnail"],
        "title": "Thumbnail",
    }
    for key, title in (
        ("safe-manifest", "SAFE manifest"),
        ("granule-metadata", "Granule metadata"),
        ("inspire-metadata", "INSPIRE metadata"),
        ("product-metadata", "Product metadata"),
        ("datastrip-metadata", "Datastrip metadata"),
    ):
        media = "application/xml"
        assets[key] = {
            "href": files[key].href,
            "type": media,
            "roles": ["metadata"],
            "title": title,
        }
    return assets


def _percentages(stats: SceneStats, es: bool, dark: bool) -> dict[str, float | int]:
    fields: list[tuple[str, tuple[int, ...]]] = [
        ("saturated_defective_pixel", (1,)),
        *([("dark_features", (2,))] if dark else []),
        ("cloud_shadow", (3,)),
        ("vegetation", (4,)),
        ("not_vegetated", (5,)),
        ("water", (6,)),
        ("unclassified", (7,)),
        ("medium_proba_clouds", (8,)),
        ("high_proba_clouds", (9,)),
        ("thin_cirrus", (10,)),
        ("snow_ice", (11,)),
    ]
    out: dict[str, float | int] = {
        "s2:degraded_msi_data_percentage": 0 if es else 0.0,
        "s2:nodata_pixel_percentage": _num(stats.nodata_percentage)
        if es
        else stats.nodata_percentage,
    }
    for name, classes in fields:
        value = stats.percentage(*classes)
        out[f"s2:{name}_percentage"] = _num(value) if es else value
    return out


def build_item(
    provider: str,
    *,
    ident: Identity,
    grid: TileGrid,
    stats: SceneStats,
    files: Mapping[str, AssetFile],
    geometry: dict[str, Any],
    bbox: list[float],
    centroid: tuple[float, float],
    sun_zenith_deg: float,
    sun_azimuth_deg: float,
) -> dict[str, Any]:
    """The STAC item of ``provider``'s flavour; ``files`` maps asset file keys to written files.

    ``centroid`` is (lon, lat). Times derive from the identity only, so the same scene always
    gives the same item.
    """
    flavour = FLAVOURS[provider]
    baseline = flavour.baseline
    day = ident.sensing
    rcf = reflectance_conversion_factor(day.date())
    s2_ids = {
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": baseline,
        "s2:product_uri": ident.product_uri(provider, baseline),
        "s2:generation_time": stamp(ident.generation(provider)),
        "s2:datatake_id": ident.datatake_id(baseline),
        "s2:datatake_type": "INS-NOBS",
        "s2:datastrip_id": ident.datastrip_id(provider, baseline),
    }
    if provider == "planetary-computer":
        return _pc_item(
            ident, grid, stats, files, geometry, bbox, s2_ids, rcf, sun_zenith_deg, sun_azimuth_deg
        )

    c1 = provider == "earth-search"
    if c1:
        item_id = ident.scene_id()
        s3 = "s3://e84-earth-search-sentinel-data/sentinel-2-c1-l2a"
    else:
        item_id = f"{ident.platform}_{ident.tile.lstrip('0')}_{day:%Y%m%d}_0_L2A"
        s3 = "s3://sentinel-cogs/sentinel-s2-l2a-cogs"
    tile_path = f"{ident.utm_zone}/{ident.latitude_band}/{ident.grid_square}"
    s3 += f"/{tile_path}/{day.year}/{day.month}/{item_id}"
    # Earth Search ingests the product some time after ESA generated it.
    created = stamp(
        ident.generation(provider) + timedelta(minutes=45, seconds=ident.delay_s % 600), 3
    )
    props: dict[str, Any] = {
        "created": created,
        "platform": ident.spacecraft.lower(),
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": stats.cloud_cover,
        "proj:epsg": grid.epsg,
    }
    if c1:
        props["proj:centroid"] = {"lat": round(centroid[1], 5), "lon": round(centroid[0], 5)}
    props.update(
        {
            "mgrs:utm_zone": ident.utm_zone,
            "mgrs:latitude_band": ident.latitude_band,
            "mgrs:grid_square": ident.grid_square,
            "grid:code": f"MGRS-{ident.tile}",
        }
    )
    if c1:
        props["view:azimuth"] = ident.view_azimuth_deg
        props["view:incidence_angle"] = ident.view_incidence_deg
    props["view:sun_azimuth"] = sun_azimuth_deg
    props["view:sun_elevation"] = 90.0 - sun_zenith_deg
    if c1:
        props["s2:tile_id"] = ident.granule_id(provider, baseline)
    props.update(_percentages(stats, es=True, dark=not c1))
    props.update(s2_ids)
    if not c1:
        props["s2:granule_id"] = ident.granule_id(provider, baseline)
    props["s2:reflectance_conversion_factor"] = rcf
    props["datetime"] = stamp(day)
    payload = hashlib.md5(item_id.encode()).hexdigest()  # stands in for the workflow run id
    if c1:
        props["earthsearch:payload_id"] = (
            f"roda-sentinel-2-c1-l2a/workflow-sentinel-2-c1-l2a-to-stac/{payload}"
        )
        props["storage:platform"] = "AWS"
        props["storage:region"] = "us-west-2"
        props["storage:requester_pays"] = False
        props["processing:software"] = {"sentinel-2-c1-l2a-to-stac": "v2025.06.17"}
    else:
        props["s2:sequence"] = "0"
        props["earthsearch:s3_path"] = s3
        props["earthsearch:payload_id"] = f"roda-sentinel2/workflow-sentinel2-to-stac/{payload}"
        props["earthsearch:boa_offset_applied"] = flavour.boa_offset_applied
        props["processing:software"] = {"sentinel2-to-stac": "0.1.1"}
    props["updated"] = created

    collection_url = f"{ES_ROOT}/collections/{flavour.collection}"
    links: list[dict[str, Any]] = [
        {
            "rel": "self",
            "type": "application/geo+json",
            "href": f"{collection_url}/items/{item_id}",
        },
        {"rel": "canonical", "href": f"{s3}/{item_id}.json", "type": "application/json"},
    ]
    tiles = f"tiles/{ident.utm_zone}/{ident.latitude_band}/{ident.grid_square}"
    if c1:
        links.append(
            {
                "rel": "via",
                "href": f"s3://sentinel-s2-l2a/{tiles}/{day.year}/{day.month}/{day.day}/0/metadata.xml",
                "type": "application/xml",
                "title": "Granule Metadata in Sinergise RODA Archive",
            }
        )
    else:
        l1c = f"{ES_ROOT}/collections/sentinel-2-l1c/items/{item_id.replace('_L2A', '_L1C')}"
        links.append({"rel": "license", "href": LICENSE})
        links.append({"rel": "derived_from", "href": l1c, "type": "application/geo+json"})
    links += [
        {"rel": "parent", "type": "application/json", "href": collection_url},
        {"rel": "collection", "type": "application/json", "href": collection_url},
        {"rel": "root", "type": "application/json", "href": ES_ROOT},
        {"rel": "thumbnail", "href": f"{collection_url}/items/{item_id}/thumbnail"},
    ]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "properties": props,
        "geometry": geometry,
        "links": links,
        "assets": _es_assets(provider, grid, files),
        "bbox": bbox,
        "stac_extensions": list(EXTENSIONS[provider]),
        "collection": flavour.collection,
    }


def _pc_item(
    ident: Identity,
    grid: TileGrid,
    stats: SceneStats,
    files: Mapping[str, AssetFile],
    geometry: dict[str, Any],
    bbox: list[float],
    s2_ids: dict[str, Any],
    rcf: float,
    sun_zenith_deg: float,
    sun_azimuth_deg: float,
) -> dict[str, Any]:
    provider = "planetary-computer"
    baseline = FLAVOURS[provider].baseline
    gen = ident.generation(provider)
    item_id = (
        f"{ident.platform}_MSIL2A_{ident.datatake_start:%Y%m%dT%H%M%S}_R{ident.relative_orbit:03d}"
        f"_T{ident.tile}_{gen:%Y%m%dT%H%M%S}"
    )
    pct = _percentages(stats, es=False, dark=True)
    props: dict[str, Any] = {
        # PC stamps items with the datatake (product) start, not the tile's sensing time.
        "datetime": stamp(ident.datatake_start),
        "platform": ident.spacecraft,
        "proj:epsg": grid.epsg,
        "instruments": ["msi"],
        "s2:mgrs_tile": ident.tile,
        "constellation": "Sentinel 2",
        "s2:granule_id": ident.granule_id(provider, baseline),
        "eo:cloud_cover": stats.cloud_cover,
        "s2:datatake_id": s2_ids["s2:datatake_id"],
        "s2:product_uri": s2_ids["s2:product_uri"],
        "s2:datastrip_id": s2_ids["s2:datastrip_id"],
        "s2:product_type": "S2MSI2A",
        "sat:orbit_state": "descending",
        "s2:datatake_type": "INS-NOBS",
        "s2:generation_time": s2_ids["s2:generation_time"],
        "sat:relative_orbit": ident.relative_orbit,
        "s2:water_percentage": pct["s2:water_percentage"],
        "s2:mean_solar_zenith": sun_zenith_deg,
        "s2:mean_solar_azimuth": sun_azimuth_deg,
        "s2:processing_baseline": baseline,
    }
    for key in (
        "snow_ice", "vegetation", "thin_cirrus", "cloud_shadow", "nodata_pixel", "unclassified",
        "dark_features", "not_vegetated", "degraded_msi_data", "high_proba_clouds",
    ):  # fmt: skip
        props[f"s2:{key}_percentage"] = pct[f"s2:{key}_percentage"]
    props["s2:reflectance_conversion_factor"] = rcf
    props["s2:medium_proba_clouds_percentage"] = pct["s2:medium_proba_clouds_percentage"]
    props["s2:saturated_defective_pixel_percentage"] = pct[
        "s2:saturated_defective_pixel_percentage"
    ]
    collection_url = f"{PC_ROOT}/collections/sentinel-2-l2a"
    links = [
        {"rel": "collection", "type": "application/json", "href": collection_url},
        {"rel": "parent", "type": "application/json", "href": collection_url},
        {"rel": "root", "type": "application/json", "href": f"{PC_ROOT}/"},
        {
            "rel": "self",
            "type": "application/geo+json",
            "href": f"{collection_url}/items/{item_id}",
        },
        {"rel": "license", "href": LICENSE},
        {
            "rel": "preview",
            "href": "https://planetarycomputer.microsoft.com/api/data/v1/item/map"
            f"?collection=sentinel-2-l2a&item={item_id}",
            "title": "Map of item",
            "type": "text/html",
        },
    ]
    return {
        "id": item_id,
        "bbox": bbox,
        "type": "Feature",
        "links": links,
        "assets": _pc_assets(grid, files),
        "geometry": geometry,
        "collection": "sentinel-2-l2a",
        "properties": props,
        "stac_extensions": list(EXTENSIONS["planetary-computer"]),
        "stac_version": "1.0.0",
    }
