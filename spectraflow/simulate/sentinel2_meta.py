"""Sentinel-2 L2A names, tile grid and metadata documents of a simulated scene (pure code).

One simulated acquisition has one :class:`Identity` (platform, MGRS tile, orbits, the times of
datatake, datastrip and tile sensing) from which every provider's identifiers follow, and one
:class:`TileGrid` shared by all resolutions. The documents built here (``MTD_MSIL2A.xml``,
``MTD_TL.xml``, Sinergise's ``tileInfo.json``, the SAFE ``manifest.safe``, ``INSPIRE.xml`` and
``MTD_DS.xml``) carry the elements readers use (offsets, quantification, geoposition, sun
angles, quality percentages), named as ESA names them; they are compact, not complete.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from affine import Affine

from spectraflow.errors import SimulationError
from spectraflow.sensors.sentinel2 import BANDS, QUANTIFICATION, SCL_CLASSES, offset_applies
from spectraflow.simulate.geometry import north_up_grid
from spectraflow.simulate.world import Region, World

# Launch dates (absolute orbit 0) and the day S2C took over from S2A as an operational unit.
_LAUNCH = {"S2A": date(2015, 6, 23), "S2B": date(2017, 3, 7), "S2C": date(2024, 9, 5)}
_S2C_OPERATIONAL = date(2025, 1, 21)
_ORBITS_PER_DAY = 143 / 10  # 143 orbits per 10-day repeat cycle
_LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"
# Hours from datatake start to L2A generation, per provider's processing chain.
_GENERATION_DELAY_H = {"earth-search": 0.4, "earth-search-l2a": 5.6, "planetary-computer": 2.7}
# ESA band index (B10 included) used by band_id / bandId attributes.
ESA_BAND_INDEX = {
    n: i
    for i, n in enumerate(
        ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
    )
}
# Thuillier solar irradiance (W m-2 µm-1) as MTD_MSIL2A lists it for S2A (S2B/C differ < 1 %).
_SOLAR_IRRADIANCE = (
    1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08,
    1041.63, 955.32, 812.92, 367.15, 245.59, 85.25,
)  # fmt: skip


def mgrs_tile(epsg: int, lat: float, easting: float, northing: float) -> tuple[int, str, str]:
    """UTM zone, latitude band and 100 km square letters of the MGRS tile containing a point."""
    zone = epsg % 100
    band = _LAT_BANDS[int(np.clip((lat + 80.0) // 8.0, 0, 19))]
    column = _MGRS_COLUMNS[(zone - 1) % 3][int(np.clip(easting // 100_000 - 1, 0, 7))]
    row = _MGRS_ROWS[(int(northing // 100_000) + (0 if zone % 2 else 5)) % 20]
    return zone, band, column + row


def stamp(when: datetime, digits: int = 6) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` with ``digits`` fractional digits (UTC)."""
    frac = f"{when.microsecond:06d}"[:digits]
    return f"{when:%Y-%m-%dT%H:%M:%S}" + (f".{frac}" if digits else "") + "Z"


def compact(when: datetime) -> str:
    """``YYYYMMDDTHHMMSS``, the time format of Sentinel-2 names."""
    return f"{when:%Y%m%dT%H%M%S}"


@dataclass(frozen=True)
class Identity:
    """Who took the scene, where and when; every identifier derives from it."""

    platform: str  # S2A, S2B or S2C
    utm_zone: int
    latitude_band: str
    grid_square: str
    relative_orbit: int
    absolute_orbit: int
    sensing: datetime  # tile sensing time (the scene's datetime)
    datastrip_start: datetime
    datatake_start: datetime
    view_incidence_deg: float
    view_azimuth_deg: float
    delay_s: float  # spread of processing delays, seconds

    @classmethod
    def create(cls, when: datetime, region: Region, seed: int) -> Identity:
        """Deterministic identity of the acquisition of ``region`` at ``when`` with ``seed``."""
        rng = np.random.default_rng([region.seed, seed, 2, 7919])
        day = when.date()
        units = ("S2B", "S2C") if day >= _S2C_OPERATIONAL else ("S2A", "S2B")
        platform = units[int(rng.integers(0, 2))]
        e, n = World(region).centre_utm
        zone, band, square = mgrs_tile(region.utm_epsg, region.lat, e, n)
        datastrip = when - timedelta(seconds=int(rng.integers(15, 60)))
        datatake = datastrip - timedelta(seconds=int(rng.integers(-6, 420)))
        days = (day - _LAUNCH[platform]).days
        return cls(
            platform=platform,
            utm_zone=zone,
            latitude_band=band,
            grid_square=square,
            relative_orbit=int(rng.integers(1, 144)),
            absolute_orbit=int(days * _ORBITS_PER_DAY) + int(rng.integers(0, 14)),
            sensing=when,
            datastrip_start=datastrip,
            datatake_start=datatake.replace(microsecond=int(rng.integers(0, 1000)) * 1000),
            view_incidence_deg=float(rng.uniform(1.5, 11.0)),
            view_azimuth_deg=float(rng.choice([102.0, 284.0]) + rng.uniform(-4.0, 4.0)),
            delay_s=float(rng.uniform(0.0, 1800.0)),
        )

    @property
    def tile(self) -> str:
        """MGRS tile code, e.g. ``13TDE``."""
        return f"{self.utm_zone:02d}{self.latitude_band}{self.grid_square}"

    @property
    def spacecraft(self) -> str:
        """``Sentinel-2B`` and so on."""
        return f"Sentinel-2{self.platform[-1]}"

    def scene_id(self) -> str:
        """Earth Search Collection-1 style id, also the scene's directory name."""
        return f"{self.platform}_T{self.tile}_{compact(self.datastrip_start)}_L2A"

    def generation(self, provider: str) -> datetime:
        """L2A generation time of ``provider``'s processing."""
        hours = _GENERATION_DELAY_H[provider]
        return self.datatake_start + timedelta(seconds=hours * 3600.0 + self.delay_s)

    def centre(self, provider: str) -> str:
        """Processing centre code in ESA identifiers (``2BPS``; ``MSFT`` for Microsoft)."""
        return "MSFT" if provider == "planetary-computer" else f"{self.platform[1:]}PS"

    def product_uri(self, provider: str, baseline: str) -> str:
        """SAFE product name, ``S2B_MSIL2A_<datatake>_N0511_R095_T24MUV_<generation>.SAFE``."""
        return (
            f"{self.platform}_MSIL2A_{compact(self.datatake_start)}_N{baseline.replace('.', '')}"
            f"_R{self.relative_orbit:03d}_T{self.tile}_{compact(self.generation(provider))}.SAFE"
        )

    def datatake_id(self, baseline: str) -> str:
        """``GS2B_<datatake>_<absolute orbit>_N05.11``."""
        return (
            f"G{self.platform}_{compact(self.datatake_start)}_{self.absolute_orbit:06d}_N{baseline}"
        )

    def datastrip_id(self, provider: str, baseline: str) -> str:
        """``S2B_OPER_MSI_L2A_DS_<centre>_<generation>_S<datastrip start>_N05.11``."""
        return (
            f"{self.platform}_OPER_MSI_L2A_DS_{self.centre(provider)}_"
            f"{compact(self.generation(provider))}_S{compact(self.datastrip_start)}_N{baseline}"
        )

    def granule_id(self, provider: str, baseline: str) -> str:
        """``S2B_OPER_MSI_L2A_TL_<centre>_<generation>_A<orbit>_T<tile>_N05.11``."""
        return (
            f"{self.platform}_OPER_MSI_L2A_TL_{self.centre(provider)}_"
            f"{compact(self.generation(provider))}_A{self.absolute_orbit:06d}_T{self.tile}_N{baseline}"
        )


@dataclass(frozen=True)
class TileGrid:
    """The product's UTM grid: ``rows × cols`` at 20 m; 10, 60 and 320 m grids share its corner."""

    epsg: int
    west: float
    north: float
    rows: int
    cols: int

    def shape(self, res: int) -> tuple[int, int]:
        """(rows, cols) at ``res`` metres (the 320 m preview rounds down, as ESA's does)."""
        return self.rows * 20 // res, self.cols * 20 // res

    def transform(self, res: int) -> Affine:
        """GDAL-order affine transform at ``res`` metres."""
        return Affine(float(res), 0.0, self.west, 0.0, -float(res), self.north)

    def proj_transform(self, res: int) -> list[float]:
        """``proj:transform`` (the first six affine coefficients)."""
        return list(self.transform(res))[:6]


def tile_grid(world: World, shape: tuple[int, int]) -> TileGrid:
    """The 20 m grid of ``shape`` centred on the region, its corner on a multiple of 60 m."""
    rows, cols = shape
    if rows % 3 or cols % 3:
        raise SimulationError(
            f"Sentinel-2 grid {rows} × {cols} at 20 m is not divisible by 3",
            where="shape",
            fix="use a 20 m shape whose sides are multiples of 3 (60 m bands are a third of it)",
        )
    transform, _, _ = north_up_grid(world, rows, cols, 20.0, phase=0.0)
    # Real tiles keep 10/20/60 m grids nested: snap the corner to a multiple of 60 m.
    west = float(np.round(transform.c / 60.0) * 60.0)
    north = float(np.round(transform.f / 60.0) * 60.0)
    return TileGrid(world.region.utm_epsg, west, north, rows, cols)


@dataclass(frozen=True)
class SceneStats:
    """What the scene classification says, plus the mean AOT and water vapour."""

    scl_counts: tuple[int, ...]  # pixels per SCL class 0..11
    mean_aot: float
    mean_wvp_cm: float

    def percentage(self, *classes: int) -> float:
        """Share (%) of valid (non-zero SCL) pixels in ``classes``, rounded to 6 decimals."""
        counts = np.asarray(self.scl_counts, dtype=float)
        valid = counts[1:].sum()
        return round(float(counts[list(classes)].sum() / max(valid, 1.0) * 100.0), 6)

    @property
    def nodata_percentage(self) -> float:
        """Share (%) of all pixels that are no data."""
        counts = np.asarray(self.scl_counts, dtype=float)
        return round(float(counts[0] / max(counts.sum(), 1.0) * 100.0), 6)

    @property
    def cloud_cover(self) -> float:
        """Sen2Cor's cloudy pixel percentage: medium + high probability clouds + thin cirrus."""
        return self.percentage(8, 9, 10)


def reflectance_conversion_factor(day: date) -> float:
    """Earth–Sun distance correction U of the L2A metadata for ``day``."""
    doy = day.timetuple().tm_yday
    return float(1.0 / (1.0 - 0.01673 * np.cos(0.0172 * (doy - 4))) ** 2)


def _el(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
    node = ET.SubElement(parent, tag, attrib)
    if text is not None:
        node.text = str(text)
    return node


def _xml(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def _qi_percentages(parent: ET.Element, stats: SceneStats) -> None:
    fields = (
        ("NODATA_PIXEL_PERCENTAGE", None),
        ("SATURATED_DEFECTIVE_PIXEL_PERCENTAGE", (1,)),
        ("CLOUDY_PIXEL_PERCENTAGE", (8, 9, 10)),
        ("DEGRADED_MSI_DATA_PERCENTAGE", ()),
        ("DARK_FEATURES_PERCENTAGE", (2,)),
        ("CLOUD_SHADOW_PERCENTAGE", (3,)),
        ("VEGETATION_PERCENTAGE", (4,)),
        ("NOT_VEGETATED_PERCENTAGE", (5,)),
        ("WATER_PERCENTAGE", (6,)),
        ("UNCLASSIFIED_PERCENTAGE", (7,)),
        ("MEDIUM_PROBA_CLOUDS_PERCENTAGE", (8,)),
        ("HIGH_PROBA_CLOUDS_PERCENTAGE", (9,)),
        ("THIN_CIRRUS_PERCENTAGE", (10,)),
        ("SNOW_ICE_PERCENTAGE", (11,)),
    )
    for tag, classes in fields:
        value = stats.nodata_percentage if classes is None else stats.percentage(*classes)
        _el(parent, tag, f"{value:.6f}")


def product_metadata(
    ident: Identity,
    provider: str,
    baseline: str,
    grid: TileGrid,
    stats: SceneStats,
    footprint: Sequence[Sequence[float]],
    image_files: Sequence[str],
) -> bytes:
    """``MTD_MSIL2A.xml``: product info, quantification and (baseline ≥ 04.00) BOA offsets."""
    ns = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"
    root = ET.Element("n1:Level-2A_User_Product", {"xmlns:n1": ns})
    general = _el(root, "n1:General_Info")
    info = _el(general, "Product_Info")
    _el(info, "PRODUCT_START_TIME", stamp(ident.datatake_start, 3))
    _el(info, "PRODUCT_STOP_TIME", stamp(ident.sensing + timedelta(seconds=5), 3))
    _el(info, "PRODUCT_URI", ident.product_uri(provider, baseline))
    _el(info, "PROCESSING_LEVEL", "Level-2A")
    _el(info, "PRODUCT_TYPE", "S2MSI2A")
    _el(info, "PROCESSING_BASELINE", baseline)
    _el(info, "GENERATION_TIME", stamp(ident.generation(provider), 6))
    take = _el(info, "Datatake", datatakeIdentifier=ident.datatake_id(baseline))
    _el(take, "SPACECRAFT_NAME", ident.spacecraft)
    _el(take, "DATATAKE_TYPE", "INS-NOBS")
    _el(take, "DATATAKE_SENSING_START", stamp(ident.datatake_start, 3))
    _el(take, "SENSING_ORBIT_NUMBER", ident.relative_orbit)
    _el(take, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    granules = _el(_el(info, "Product_Organisation"), "Granule_List")
    granule = _el(
        granules,
        "Granule",
        datastripIdentifier=ident.datastrip_id(provider, baseline),
        granuleIdentifier=ident.granule_id(provider, baseline),
        imageFormat="GeoTIFF",
    )
    for name in image_files:
        _el(granule, "IMAGE_FILE", name)
    chars = _el(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        special = _el(chars, "Special_Values")
        _el(special, "SPECIAL_VALUE_TEXT", text)
        _el(special, "SPECIAL_VALUE_INDEX", index)
    quant = _el(chars, "QUANTIFICATION_VALUES_LIST")
    _el(quant, "BOA_QUANTIFICATION_VALUE", int(QUANTIFICATION), unit="none")
    _el(quant, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
    _el(quant, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")
    if offset_applies(baseline):
        offsets = _el(chars, "BOA_ADD_OFFSET_VALUES_LIST")
        for index in ESA_BAND_INDEX.values():
            _el(offsets, "BOA_ADD_OFFSET", -1000, band_id=str(index))
    conversion = _el(chars, "Reflectance_Conversion")
    _el(conversion, "U", repr(reflectance_conversion_factor(ident.sensing.date())))
    irradiance = _el(conversion, "Solar_Irradiance_List")
    for index, value in enumerate(_SOLAR_IRRADIANCE):
        _el(irradiance, "SOLAR_IRRADIANCE", value, bandId=str(index), unit="W/m²/µm")
    spectral = _el(chars, "Spectral_Information_List")
    for band in BANDS:
        node = _el(
            spectral,
            "Spectral_Information",
            bandId=str(ESA_BAND_INDEX[band.name]),
            physicalBand=band.name.replace("B0", "B"),
        )
        _el(node, "RESOLUTION", band.resolution_m)
        wl = _el(node, "Wavelength")
        _el(wl, "MIN", round(band.wavelength_nm - band.fwhm_nm / 2), unit="nm")
        _el(wl, "MAX", round(band.wavelength_nm + band.fwhm_nm / 2), unit="nm")
        _el(wl, "CENTRAL", band.wavelength_nm, unit="nm")
    scl = _el(chars, "Scene_Classification_List")
    for index, name in SCL_CLASSES.items():
        node = _el(scl, "Scene_Classification_ID")
        _el(node, "SCENE_CLASSIFICATION_TEXT", f"SC_{name.upper()}")
        _el(node, "SCENE_CLASSIFICATION_INDEX", index)
    geo = _el(root, "n1:Geometric_Info")
    outline = _el(_el(_el(geo, "Product_Footprint"), "Product_Footprint"), "Global_Footprint")
    _el(outline, "EXT_POS_LIST", " ".join(f"{lat} {lon}" for lon, lat in footprint))
    crs = _el(geo, "Coordinate_Reference_System")
    _el(crs, "GEO_TABLES", "EPSG", version="1")
    _el(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")
    quality = _el(root, "n1:Quality_Indicators_Info")
    _el(quality, "Cloud_Coverage_Assessment", f"{stats.cloud_cover:.6f}")
    _qi_percentages(_el(quality, "Image_Content_QI"), stats)
    return _xml(root)


def granule_metadata(
    ident: Identity,
    provider: str,
    baseline: str,
    grid: TileGrid,
    stats: SceneStats,
    sun_zenith_deg: float,
    sun_azimuth_deg: float,
) -> bytes:
    """``MTD_TL.xml``: tile geocoding per resolution, mean angles and quality indicators."""
    ns = "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd"
    root = ET.Element("n1:Level-2A_Tile_ID", {"xmlns:n1": ns})
    general = _el(root, "n1:General_Info")
    _el(general, "TILE_ID", ident.granule_id(provider, baseline), metadataLevel="Brief")
    _el(general, "DATASTRIP_ID", ident.datastrip_id(provider, baseline), metadataLevel="Standard")
    _el(general, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    _el(general, "SENSING_TIME", stamp(ident.sensing, 6), metadataLevel="Standard")
    archive = _el(general, "Archiving_Info", metadataLevel="Expertise")
    _el(archive, "ARCHIVING_CENTRE", ident.centre(provider))
    _el(archive, "ARCHIVING_TIME", stamp(ident.generation(provider), 6))
    geo = _el(root, "n1:Geometric_Info")
    coding = _el(geo, "Tile_Geocoding", metadataLevel="Brief")
    hemi = "N" if grid.epsg < 32700 else "S"
    _el(coding, "HORIZONTAL_CS_NAME", f"WGS84 / UTM zone {grid.epsg % 100}{hemi}")
    _el(coding, "HORIZONTAL_CS_CODE", f"EPSG:{grid.epsg}")
    for res in (10, 20, 60):
        size = _el(coding, "Size", resolution=str(res))
        rows, cols = grid.shape(res)
        _el(size, "NROWS", rows)
        _el(size, "NCOLS", cols)
    for res in (10, 20, 60):
        pos = _el(coding, "Geoposition", resolution=str(res))
        _el(pos, "ULX", f"{grid.west:.0f}")
        _el(pos, "ULY", f"{grid.north:.0f}")
        _el(pos, "XDIM", res)
        _el(pos, "YDIM", -res)
    angles = _el(geo, "Tile_Angles", metadataLevel="Standard")
    sun = _el(angles, "Mean_Sun_Angle")
    _el(sun, "ZENITH_ANGLE", repr(sun_zenith_deg), unit="deg")
    _el(sun, "AZIMUTH_ANGLE", repr(sun_azimuth_deg), unit="deg")
    views = _el(angles, "Mean_Viewing_Incidence_Angle_List")
    for index in ESA_BAND_INDEX.values():
        view = _el(views, "Mean_Viewing_Incidence_Angle", bandId=str(index))
        tilt = 0.02 * (index - 6)  # detectors' small band-to-band parallax
        _el(view, "ZENITH_ANGLE", repr(round(ident.view_incidence_deg + tilt, 6)), unit="deg")
        _el(view, "AZIMUTH_ANGLE", repr(round(ident.view_azimuth_deg, 6)), unit="deg")
    quality = _el(root, "n1:Quality_Indicators_Info", metadataLevel="Standard")
    content = _el(quality, "Image_Content_QI")
    _qi_percentages(content, stats)
    _el(content, "AOT_RETRIEVAL_METHOD", "CAMS")
    _el(content, "GRANULE_MEAN_AOT", f"{stats.mean_aot:.6f}")
    _el(content, "GRANULE_MEAN_WV", f"{stats.mean_wvp_cm:.6f}")
    return _xml(root)


def _utm_geometry(kind: str, epsg: int, coordinates: Any) -> dict[str, Any]:
    crs = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG:8.8.1:{epsg}"}}
    return {"type": kind, "crs": crs, "coordinates": coordinates}


def tile_info(
    ident: Identity, provider: str, baseline: str, grid: TileGrid, stats: SceneStats
) -> bytes:
    """Sinergise's ``tileInfo.json`` of the tile (paths in the ``sentinel-s2-l2a`` bucket)."""
    day = ident.sensing
    path = f"tiles/{ident.utm_zone}/{ident.latitude_band}/{ident.grid_square}"
    path += f"/{day.year}/{day.month}/{day.day}/0"
    product = ident.product_uri(provider, baseline).removesuffix(".SAFE")
    e0, n0 = grid.west, grid.north
    e1, n1 = e0 + grid.cols * 20.0, n0 - grid.rows * 20.0
    ring = [[[e0, n0], [e1, n0], [e1, n1], [e0, n1], [e0, n0]]]
    doc = {
        "path": path,
        "timestamp": stamp(ident.sensing, 3),
        "utmZone": ident.utm_zone,
        "latitudeBand": ident.latitude_band,
        "gridSquare": ident.grid_square,
        "datastrip": {
            "id": ident.datastrip_id(provider, baseline),
            "path": f"products/{day.year}/{day.month}/{day.day}/{product}/datastrip/0",
        },
        "tileGeometry": _utm_geometry("Polygon", grid.epsg, ring),
        "tileDataGeometry": _utm_geometry("Polygon", grid.epsg, ring),
        "tileOrigin": _utm_geometry("Point", grid.epsg, [e0, n0]),
        "dataCoveragePercentage": round(100.0 - stats.nodata_percentage, 2),
        "cloudyPixelPercentage": round(stats.cloud_cover, 2),
        "productName": product,
        "productPath": f"products/{day.year}/{day.month}/{day.day}/{product}",
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def safe_manifest(
    ident: Identity, provider: str, baseline: str, files: Sequence[tuple[str, int, str]]
) -> bytes:
    """``manifest.safe`` (XFDU) listing ``(relative path, size, SHA3-256)`` of the files."""
    root = ET.Element(
        "xfdu:XFDU",
        {
            "xmlns:xfdu": "urn:ccsds:schema:xfdu:1",
            "xmlns:safe": "http://www.esa.int/safe/sentinel/1.1",
            "version": "esa/safe/sentinel/1.1/sentinel-2/msi/archive_l2a_user_product",
        },
    )
    package = _el(root, "informationPackageMap")
    _el(
        package,
        "xfdu:contentUnit",
        ID="S2_Level-2A_Product",
        unitType="Product_Level-2A",
        textInfo="SENTINEL-2 MSI Level-2A User Product",
    )
    meta = _el(_el(root, "metadataSection"), "metadataObject", ID="platform")
    _el(meta, "safe:familyName", "SENTINEL-2")
    _el(meta, "safe:number", ident.platform[-1])
    _el(meta, "safe:productName", ident.product_uri(provider, baseline))
    section = _el(root, "dataObjectSection")
    for i, (rel, size, sha3) in enumerate(files):
        obj = _el(section, "dataObject", ID=f"DataObject_{i:03d}")
        stream = _el(obj, "byteStream", mimeType="application/octet-stream", size=str(size))
        _el(stream, "fileLocation", locatorType="URL", href=f"./{rel}")
        _el(stream, "checksum", sha3, checksumName="SHA3-256")
    return _xml(root)


def inspire_metadata(ident: Identity, provider: str, baseline: str, bbox: Sequence[float]) -> bytes:
    """``INSPIRE.xml``: the ISO 19139 record (identifier, date, title, bounding box)."""
    root = ET.Element(
        "gmd:MD_Metadata",
        {
            "xmlns:gmd": "http://www.isotc211.org/2005/gmd",
            "xmlns:gco": "http://www.isotc211.org/2005/gco",
        },
    )
    _el(
        _el(root, "gmd:fileIdentifier"),
        "gco:CharacterString",
        ident.product_uri(provider, baseline),
    )
    _el(_el(root, "gmd:dateStamp"), "gco:Date", ident.generation(provider).date().isoformat())
    ident_info = _el(_el(root, "gmd:identificationInfo"), "gmd:MD_DataIdentification")
    _el(
        _el(_el(_el(ident_info, "gmd:citation"), "gmd:CI_Citation"), "gmd:title"),
        "gco:CharacterString",
        "SENTINEL-2 MSI Level-2A User Product",
    )
    box = _el(_el(_el(ident_info, "gmd:extent"), "gmd:EX_Extent"), "gmd:geographicElement")
    box = _el(box, "gmd:EX_GeographicBoundingBox")
    for tag, value in zip(
        ("westBoundLongitude", "southBoundLatitude", "eastBoundLongitude", "northBoundLatitude"),
        bbox,
        strict=True,
    ):
        _el(_el(box, f"gmd:{tag}"), "gco:Decimal", value)
    return _xml(root)


def datastrip_metadata(ident: Identity, provider: str, baseline: str) -> bytes:
    """``MTD_DS.xml``: datastrip id, sensing span and processing baseline."""
    ns = "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Datastrip_Metadata.xsd"
    root = ET.Element("n1:Level-2A_DataStrip_ID", {"xmlns:n1": ns})
    general = _el(root, "n1:General_Info")
    _el(general, "DATASTRIP_ID", ident.datastrip_id(provider, baseline), metadataLevel="Brief")
    times = _el(general, "Datastrip_Time_Info")
    _el(times, "DATASTRIP_SENSING_START", stamp(ident.datastrip_start, 3))
    _el(times, "DATASTRIP_SENSING_STOP", stamp(ident.sensing + timedelta(seconds=30), 3))
    processing = _el(general, "Processing_Info")
    _el(processing, "PROCESSING_CENTER", ident.centre(provider))
    _el(processing, "UTC_DATE_TIME", stamp(ident.generation(provider), 6))
    _el(processing, "PROCESSING_BASELINE", baseline)
    return _xml(root)
