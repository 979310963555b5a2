"""``Scene``: one acquisition of one sensor, normalised from any provider's STAC item.

Every later stage (ingest, predict, mosaic) reads scenes only through this model, so provider
quirks (asset keys, string-valued numbers, µm or nm, DN offsets) end at
:func:`spectraflow.catalog.normalise.scene_from_item`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from spectraflow.errors import SceneFormatError
from spectraflow.sensors.bands import BandTable

__all__ = ["ASSET_ROLES", "SENSORS", "Scene", "Sensor"]

Sensor = Literal["emit", "enmap", "sentinel2"]
SENSORS: tuple[Sensor, ...] = ("emit", "enmap", "sentinel2")

ASSET_ROLES = ("data", "mask", "uncertainty", "quality", "metadata", "thumbnail")
"""Roles of :attr:`Scene.assets`. A key is a role (``"data"``) or ``role:name``: per-band files
(``"data:B04"``, named as in :attr:`Scene.bands`) and quality layers (``"quality:cloud"``)."""


class Scene(BaseModel):
    """One acquisition, as every stage after search sees it.

    Attributes
    ----------
    id
        The provider's item id.
    sensor
        ``"emit"``, ``"enmap"`` or ``"sentinel2"``.
    provider, collection
        Where the item was found: provider name (see :func:`spectraflow.catalog.providers`) and
        STAC collection id.
    datetime
        Acquisition time, UTC.
    geometry, bbox
        Footprint as GeoJSON in lon/lat (EPSG:4326) and its bbox ``(lon_min, lat_min, lon_max,
        lat_max)``; ``lon_min > lon_max`` when the footprint crosses the antimeridian.
    cloud_cover
        Percent (0–100) as the provider reports it, or None when it does not.
    assets
        Role → href, hrefs always unsigned (Planetary Computer hrefs are signed only right before
        a read). See :data:`ASSET_ROLES`.
    bands
        Reflectance bands in file order; ``reflectance = DN × scale + offset``.
    crs, transform, shape
        Grid of the data (finest resolution for Sentinel-2): CRS as ``"EPSG:n"``, GDAL/affine
        coefficients ``(a, b, c, d, e, f)`` of the pixel-corner transform, ``(rows, columns)``;
        None when the item does not say (EMIT is delivered in sensor geometry).
    platform, tile
        Spacecraft (lower case) and the provider's tile or scene designation when it has one
        (Sentinel-2 MGRS tile such as ``"13RFR"``).
    item_href
        Where the item itself lives (its ``self`` link or file path).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=False)

    id: str
    sensor: Sensor
    provider: str
    collection: str
    datetime: dt.datetime
    geometry: dict[str, Any]
    bbox: tuple[float, float, float, float]
    cloud_cover: float | None = None
    assets: dict[str, str]
    bands: BandTable
    crs: str | None = None
    transform: tuple[float, float, float, float, float, float] | None = None
    shape: tuple[int, int] | None = None
    platform: str | None = None
    tile: str | None = None
    item_href: str | None = None

    @field_validator("datetime")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    def href(self, role: str) -> str:
        """The href of asset ``role``, or a :class:`SceneFormatError` naming what is missing."""
        try:
            return self.assets[role]
        except KeyError:
            raise SceneFormatError(
                f"scene has no {role!r} asset (it has {', '.join(sorted(self.assets))})",
                where=f"{self.provider} item {self.id}",
                fix="check the item's assets; re-run the search if the provider changed them",
            ) from None

    def band_hrefs(self) -> dict[str, str]:
        """Band name → href of the file holding it (one file for all bands, or one per band)."""
        if "data" in self.assets:
            return {name: self.assets["data"] for name in self.bands.name}
        return {name: self.href(f"data:{name}") for name in self.bands.name}
