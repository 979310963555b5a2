"""Catalog records of simulated EMIT granules: the CMR UMM-G record and the CMR-STAC item.

Pure code (no I/O). LP DAAC publishes each granule to NASA's CMR as a UMM-G record (the
``.cmr.json`` next to the files); CMR-STAC (provider ``LPCLOUD``) derives the STAC item from it:
geometry from the GPolygon, ``eo:cloud_cover`` from ``CloudCover``, links to the CMR-STAC API and
asset keys made from the file names (they are not stable across CMR-STAC versions; readers pick
assets by file name). Asset hrefs of the simulated item are the local files.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

COLLECTION = "EMITL2ARFL_001"
SOFTWARE_BUILD = "010610"
CMR_STAC_ROOT = "https://cmr.earthdata.nasa.gov/stac"
CMR_URL = "https://cmr.earthdata.nasa.gov"
LPDAAC_URL = "https://data.lpdaac.earthdatacloud.nasa.gov"
_OPENDAP = "https://opendap.earthdata.nasa.gov/collections/C2408750690-LPCLOUD/granules"
_S3_TEXT = "This link provides direct download access via S3 to the granule"


def granule_files(granule: str) -> dict[str, str]:
    """File names of a granule by role: the three netCDF files, browse PNG and UMM-G JSON."""
    return {
        "reflectance": f"{granule}.nc",
        "uncertainty": granule.replace("_RFL_", "_RFLUNCERT_") + ".nc",
        "mask": granule.replace("_RFL_", "_MASK_") + ".nc",
        "browse": f"{granule}.png",
        "metadata": f"{granule}.cmr.json",
    }


def archive_entry(name: str, size: int, sha512: str) -> dict[str, Any]:
    """One ``DataGranule.ArchiveAndDistributionInformation`` entry."""
    return {
        "Name": name,
        "SizeInBytes": size,
        "Format": "PNG" if name.endswith(".png") else "NETCDF-4",
        "Checksum": {"Value": sha512, "Algorithm": "SHA-512"},
    }


def _related_urls(granule: str) -> list[dict[str, str]]:
    names = granule_files(granule)
    related = [
        {
            "URL": f"{_OPENDAP}/{granule}",
            "Type": "USE SERVICE API",
            "Subtype": "OPENDAP DATA",
            "Description": "OPeNDAP request URL",
        }
    ]
    for key in ("reflectance", "uncertainty", "mask", "browse", "metadata"):
        name = names[key]
        kind = {"browse": "GET RELATED VISUALIZATION", "metadata": "EXTENDED METADATA"}
        bucket = "lp-prod-public" if key == "browse" else "lp-prod-protected"
        path = f"{bucket}/EMITL2ARFL.001/{granule}/{name}"
        url_type = kind.get(key, "GET DATA")
        related.append(
            {"URL": f"{LPDAAC_URL}/{path}", "Description": f"Download {name}", "Type": url_type}
        )
        related.append({"URL": f"s3://{path}", "Description": _S3_TEXT, "Type": url_type})
    return related


def granule_record(
    granule: str,
    *,
    start: datetime,
    end: datetime,
    produced: datetime,
    sun_zenith_deg: float,
    sun_azimuth_deg: float,
    corners: list[tuple[float, float]],
    cloud_cover_pct: int,
    archive: list[dict[str, Any]],
) -> dict[str, Any]:
    """The UMM-G 1.6.3 record of a granule, shaped like LP DAAC's.

    ``corners`` are the (lon, lat) of the raw image's corner pixels, counter-clockwise.
    """
    orbit, scene = granule.split("_")[-2:]
    attrs = {
        "SOFTWARE_BUILD_VERSION": SOFTWARE_BUILD,
        "SOFTWARE_DELIVERY_VERSION": SOFTWARE_BUILD,
        "Identifier_product_doi_authority": "https://doi.org",
        "Identifier_product_doi": "10.5067/EMIT/EMITL2ARFL.001",
        "ORBIT": orbit,
        "ORBIT_SEGMENT": str(orbit_segment(granule)),
        "SCENE": str(int(scene)),
        "SOLAR_ZENITH": f"{sun_zenith_deg:.2f}",
        "SOLAR_AZIMUTH": f"{sun_azimuth_deg:.2f}",
    }
    points = [{"Longitude": lon, "Latitude": lat} for lon, lat in [*corners, corners[0]]]
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "MetadataSpecification": {
            "URL": "https://cdn.earthdata.nasa.gov/umm/granule/v1.6.3",
            "Name": "UMM-G",
            "Version": "1.6.3",
        },
        "GranuleUR": granule,
        "ProviderDates": [{"Date": f"{produced:{iso}}", "Type": "Update"}],
        "CollectionReference": {"ShortName": "EMITL2ARFL", "Version": "001"},
        "Platforms": [
            {"ShortName": "ISS", "Instruments": [{"ShortName": "EMIT Imaging Spectrometer"}]}
        ],
        "TemporalExtent": {
            "RangeDateTime": {
                "BeginningDateTime": f"{start:{iso}}",
                "EndingDateTime": f"{end:{iso}}",
            }
        },
        "AdditionalAttributes": [{"Name": k, "Values": [v]} for k, v in attrs.items()],
        "PGEVersionClass": {"PGEName": "emit-sds-l2a", "PGEVersion": "v1.3.3"},
        "CloudCover": cloud_cover_pct,
        "DataGranule": {
            "DayNightFlag": "Day",
            "ArchiveAndDistributionInformation": archive,
            "ProductionDateTime": f"{produced:{iso}}",
        },
        "SpatialExtent": {
            "HorizontalSpatialDomain": {
                "Geometry": {"GPolygons": [{"Boundary": {"Points": points}}]}
            }
        },
        "RelatedUrls": _related_urls(granule),
    }


def orbit_segment(granule: str) -> int:
    """Orbit segment of a granule (segments group about 20 consecutive scenes)."""
    return 1 + int(granule.split("_")[-1]) // 20


def _link(rel: str, href: str, media: str, title: str | None = None) -> dict[str, str]:
    link = {"rel": rel, "href": href, "type": media}
    if title is not None:
        link["title"] = title
    return link


def cmr_stac_item(ummg: dict[str, Any], directory: Path) -> dict[str, Any]:
    """The item CMR-STAC serves for ``ummg``, with asset hrefs to the files in ``directory``."""
    granule = ummg["GranuleUR"]
    names = granule_files(granule)
    boundary = ummg["SpatialExtent"]["HorizontalSpatialDomain"]["Geometry"]["GPolygons"][0]
    ring = [[p["Longitude"], p["Latitude"]] for p in boundary["Boundary"]["Points"]]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    times = ummg["TemporalExtent"]["RangeDateTime"]
    # CMR reports times with milliseconds.
    start = times["BeginningDateTime"].replace("Z", ".000Z")
    end = times["EndingDateTime"].replace("Z", ".000Z")
    assets: dict[str, dict[str, Any]] = {
        "browse": {
            "href": str(directory / names["browse"]),
            "type": "image/png",
            "title": f"Download {names['browse']}",
            "roles": ["browse"],
        }
    }
    for key in ("reflectance", "uncertainty", "mask"):
        assets[Path(names[key]).stem] = {
            "href": str(directory / names[key]),
            "type": "application/x-netcdf",
            "title": f"Download {names[key]}",
            "roles": ["data"],
        }
    assets["metadata"] = {
        "href": str(directory / names["metadata"]),
        "type": "application/json",
        "title": "Metadata",
        "roles": ["metadata"],
    }
    provider = f"{CMR_STAC_ROOT}/LPCLOUD"
    collection = f"{provider}/collections/{COLLECTION}"
    concept = f"{CMR_URL}/search/concepts/{granule}"
    return {
        "type": "Feature",
        "id": granule,
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.0.0/schema.json"],
        "collection": COLLECTION,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {
            "datetime": start,
            "start_datetime": start,
            "end_datetime": end,
            "eo:cloud_cover": ummg["CloudCover"],
        },
        "links": [
            _link("self", f"{collection}/items/{granule}", "application/geo+json"),
            _link("parent", collection, "application/json"),
            _link("collection", collection, "application/json"),
            _link("root", f"{CMR_STAC_ROOT}/", "application/json"),
            _link("provider", provider, "application/json"),
            _link("via", f"{concept}.json", "application/json", "CMR JSON metadata for item"),
            _link(
                "via",
                f"{concept}.umm_json",
                "application/vnd.nasa.cmr.umm+json",
                "CMR UMM_JSON metadata for item",
            ),
        ],
        "assets": assets,
    }
