"""``search``: scenes of the requested sensors over an AOI and time range, from every provider.

Each provider is asked once per collection and per side of the antimeridian, page by page with
retries (:mod:`spectraflow.catalog.http`). What a provider cannot filter is filtered here: the
exact AOI geometry (servers get its bbox), and cloud cover where the API rejects the query.
The same acquisition found twice (two collections or two providers) is kept once, from the
preferred source, and the result is sorted by time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from pystac_client import Client
from pystac_client.exceptions import APIError
from shapely.geometry import shape

from spectraflow.catalog.aoi import AOI, AOILike, parse_aoi
from spectraflow.catalog.http import RetryingStacIO
from spectraflow.catalog.normalise import scene_from_item
from spectraflow.catalog.providers import Provider, resolve_providers
from spectraflow.catalog.redaction import redact
from spectraflow.catalog.scene import SENSORS, Scene
from spectraflow.catalog.timerange import parse_time_range, stac_datetime
from spectraflow.config import Settings
from spectraflow.errors import CatalogError, QueryError, SceneFormatError

__all__ = ["SAME_ACQUISITION", "deduplicate", "search"]

log = logging.getLogger(__name__)

SAME_ACQUISITION = timedelta(minutes=30)
"""Two records of one sensor closer in time than this, over the same tile or centre, are one
acquisition. Providers disagree on the time they record (Planetary Computer: datatake start,
Earth Search: tile sensing time, minutes apart); repeat passes are hours or days apart."""
_SAME_PLACE_DEG = 0.05
_SORT_CONFORMANCE = "https://api.stacspec.org/v1.0.0/item-search#sort"

Progress = Callable[[str, int], None]
"""Called with (provider name, items received so far from it)."""


def _sensors(sensors: Iterable[str] | str) -> list[str]:
    names = (
        [s.strip().lower() for s in sensors.split(",")]
        if isinstance(sensors, str)
        else [s.lower() for s in sensors]
    )
    names = list(dict.fromkeys(n.replace("-", "").replace("_", "") for n in names if n))
    unknown = [n for n in names if n not in SENSORS]
    if unknown or not names:
        raise QueryError(
            f"unknown sensor {', '.join(unknown) or '(none given)'}",
            where="sensors",
            fix=f"use one or more of {', '.join(SENSORS)}",
        )
    return names


def _cloud_query(provider: Provider, max_cloud: float | None) -> dict[str, Any]:
    if max_cloud is None or provider.cloud_filter == "client":
        return {}
    if provider.cloud_filter == "query":
        return {"query": {"eo:cloud_cover": {"lte": max_cloud}}}
    return {
        "filter": {"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud]},
        "filter_lang": "cql2-json",
    }


def open_client(provider: Provider) -> Client:
    """A pystac-client ``Client`` for ``provider`` that retries every request."""
    io = RetryingStacIO(
        max_retries=provider.max_retries,
        backoff_s=provider.backoff_s,
        timeout_s=provider.timeout_s,
    )
    try:
        client = Client.open(provider.url, stac_io=io)
    except APIError as exc:
        raise unreachable(provider, exc) from None
    if not client.conforms_to("ITEM_SEARCH"):
        # Some APIs (older CMR-STAC deployments) serve /search without declaring it.
        client.add_conforms_to("ITEM_SEARCH")
    return client


def unreachable(provider: Provider, exc: Exception) -> CatalogError:
    """The error for a provider that failed after its retries (message redacted)."""
    return CatalogError(
        f"{provider.title or provider.name} did not answer: {redact(str(exc))}",
        where=f"provider {provider.name} ({provider.url})",
        fix="check the network and the provider's status page, or leave this provider out "
        "with --provider",
    )


def _items(
    provider: Provider,
    aoi: AOI,
    when: str | None,
    sensors: list[str],
    max_cloud: float | None,
    limit: int | None,
) -> Iterator[dict[str, Any]]:
    client = open_client(provider)
    # With a server-side sort the first `limit` items are the earliest: no need to read on.
    sortable = limit is not None and _SORT_CONFORMANCE in client.to_dict().get("conformsTo", [])
    for bbox in aoi.bboxes:
        search = client.search(
            collections=provider.collections_for(sensors),
            bbox=bbox,
            datetime=when,
            limit=provider.page_size,
            max_items=limit if sortable else None,
            sortby="+properties.datetime" if sortable else None,
            **_cloud_query(provider, max_cloud),
        )
        try:
            yield from search.items_as_dicts()
        except APIError as exc:
            raise unreachable(provider, exc) from None


def _centre(scene: Scene) -> tuple[float, float]:
    point = shape(scene.geometry).centroid
    return point.x, point.y


def _same(a: Scene, b: Scene) -> bool:
    if a.sensor != b.sensor or abs(a.datetime - b.datetime) > SAME_ACQUISITION:
        return False
    if a.id == b.id:
        return True
    if a.tile and b.tile:
        return a.tile == b.tile and (a.platform or "") == (b.platform or "")
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    return abs(ax - bx) <= _SAME_PLACE_DEG and abs(ay - by) <= _SAME_PLACE_DEG


def deduplicate(scenes: Iterable[Scene]) -> list[Scene]:
    """Keep the first record of each acquisition (``scenes`` come best source first)."""
    kept: list[Scene] = []
    by_sensor: dict[str, list[Scene]] = {}
    for scene in scenes:
        others = by_sensor.setdefault(scene.sensor, [])
        if not any(_same(scene, other) for other in others):
            others.append(scene)
            kept.append(scene)
    return kept


def search(
    aoi: AOILike,
    start: date | datetime | str | None,
    end: date | datetime | str | None,
    sensors: Iterable[str] | str = SENSORS,
    *,
    max_cloud: float | None = None,
    providers: Iterable[str | Provider] | str | None = None,
    limit: int | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> list[Scene]:
    """Find scenes of ``sensors`` that intersect ``aoi`` between ``start`` and ``end``.

    Parameters
    ----------
    aoi
        Area of interest in lon/lat (EPSG:4326): a bbox ``(lon_min, lat_min, lon_max,
        lat_max)`` (``lon_min > lon_max`` crosses the antimeridian), a GeoJSON object or file,
        or WKT.
    start, end
        Time range, UTC unless the value says otherwise; a date-only ``end`` includes that day;
        None leaves that end open.
    sensors
        Any of ``"emit"``, ``"enmap"``, ``"sentinel2"`` (a list or a comma-separated string).
    max_cloud
        Keep scenes with at most this cloud cover, in percent; scenes that do not report one
        are dropped.
    providers
        Registry names or STAC API URLs, preferred first; default: every default provider.
    limit
        Return at most this many scenes (the earliest).
    settings
        Settings to read the provider registry from; default: :func:`get_settings`.
    progress
        Called as pages arrive, with the provider name and its item count so far.

    Returns
    -------
    list[Scene]
        Sorted by acquisition time, one per acquisition.

    Raises
    ------
    QueryError
        For an invalid AOI, time range, sensor, provider or ``max_cloud``.
    CatalogError
        When a provider cannot be reached after retries.
    """
    area = parse_aoi(aoi)
    first, last = parse_time_range(start, end)
    wanted = _sensors(sensors)
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        raise QueryError(
            f"max_cloud must be a percentage, got {max_cloud}",
            where="max_cloud",
            fix="give a number from 0 to 100",
        )
    if limit is not None and limit < 1:
        raise QueryError(
            f"limit must be positive, got {limit}", where="limit", fix="give 1 or more"
        )
    chosen = resolve_providers(providers, wanted, settings=settings)
    when = stac_datetime(first, last)

    found: list[tuple[tuple[int, int], Scene]] = []
    for order, provider in enumerate(chosen):
        count = 0
        for item in _items(provider, area, when, wanted, max_cloud, limit):
            count += 1
            if progress is not None:
                progress(provider.name, count)
            try:
                scene = scene_from_item(item, provider=provider.name)
            except SceneFormatError as exc:
                log.warning("skipping an unusable item: %s", exc)
                continue
            if scene.sensor not in wanted or not area.intersects(scene.geometry):
                continue
            if max_cloud is not None and (
                scene.cloud_cover is None or scene.cloud_cover > max_cloud
            ):
                continue
            found.append(((order, provider.rank(scene.collection)), scene))
    found.sort(key=lambda pair: pair[0])
    scenes = sorted(deduplicate(scene for _, scene in found), key=lambda s: (s.datetime, s.id))
    return scenes[:limit] if limit is not None else scenes
