"""The registry of STAC providers: built-ins from ``providers.toml``, plus the user's own.

A provider is configuration, not code: its URL, the collections that hold each sensor (preferred
first), the credentials its downloads need, whether it can filter on cloud cover, and how
patiently to page it. Users add or override providers in ``spectraflow.toml``::

    [providers.my-pgstac]
    url = "https://stac.example.org"
    collections.sentinel2 = ["sentinel-2-l2a"]

or point :func:`spectraflow.catalog.search` at any STAC API by URL.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spectraflow.catalog.scene import SENSORS, Sensor
from spectraflow.config import Settings, get_settings
from spectraflow.errors import ConfigError, QueryError

__all__ = ["CloudFilter", "Provider", "provider_for_href", "providers", "resolve_providers"]

CloudFilter = Literal["query", "filter", "client"]


class Provider(BaseModel):
    """One STAC API and what spectraflow needs to know to search it.

    Attributes
    ----------
    name
        Registry key, used in ``--provider`` and :attr:`Scene.provider`.
    title
        Human-readable name.
    url
        Root of the STAC API.
    collections
        Sensor → collection ids, preferred first.
    auth
        Credentials scheme its downloads need (see :mod:`spectraflow.catalog.auth`), or None.
    cloud_filter
        How to apply ``max_cloud``: the STAC ``query`` extension, CQL2 ``filter``, or on the
        client for APIs that reject both (CMR-STAC).
    default
        Searched when the caller names no provider.
    page_size, timeout_s, max_retries, backoff_s
        Paging and retry behaviour: page length, seconds per request, attempts per request on
        429/5xx/timeouts/broken pages, and the first backoff delay (doubled each attempt).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str = ""
    url: str
    collections: dict[Sensor, tuple[str, ...]]
    auth: Literal["earthdata", "dlr", "planetary-computer"] | None = None
    cloud_filter: CloudFilter = "client"
    default: bool = True
    page_size: int = Field(default=100, ge=1, le=10_000)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff_s: float = Field(default=1.0, ge=0)

    def collections_for(self, sensors: Iterable[str]) -> list[str]:
        """Collection ids to search for ``sensors``, in order of preference."""
        return [c for s in sensors for c in self.collections.get(s, ())]  # type: ignore[call-overload]

    def rank(self, collection: str) -> int:
        """Preference of ``collection`` within this provider (0 is best)."""
        ordered = [c for cols in self.collections.values() for c in cols]
        return ordered.index(collection) if collection in ordered else len(ordered)


def _builtin_tables() -> dict[str, dict[str, Any]]:
    text = resources.files("spectraflow.catalog").joinpath("providers.toml").read_text()
    return dict(tomllib.loads(text)["providers"])


def _build(name: str, table: Mapping[str, Any], settings: Settings) -> Provider:
    fields = dict(table)
    fields["url"] = str(fields.get("url", "")).format(stac_port=settings.stac_port).rstrip("/")
    try:
        return Provider(name=name, **fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"provider {name!r} is misconfigured: {problems}",
            where=f"[providers.{name}] in spectraflow.toml",
            fix="give url and collections.<sensor> = [ids]; see docs/catalog.md",
        ) from exc


def providers(settings: Settings | None = None) -> dict[str, Provider]:
    """All known providers by name: built-ins overridden or extended by the user's settings.

    A user table with the name of a built-in updates only the keys it sets.
    """
    settings = settings or get_settings()
    tables = _builtin_tables()
    for name, table in settings.providers.items():
        tables[name] = {**tables.get(name, {}), **table}
    return {name: _build(name, table, settings) for name, table in tables.items()}


def _adhoc(url: str, known: Mapping[str, Provider]) -> Provider:
    # A bare URL (pgstac, stac-fastapi, another rustac): search every known collection id of
    # each sensor; servers answer an empty page for collections they do not hold.
    collections: dict[str, tuple[str, ...]] = {}
    for sensor in SENSORS:
        ids = [c for p in known.values() for c in p.collections.get(sensor, ())]
        collections[sensor] = tuple(dict.fromkeys(ids))
    host = urlsplit(url).netloc or url
    return Provider(name=host, title=url, url=url.rstrip("/"), collections=collections)


def resolve_providers(
    requested: Iterable[str | Provider] | str | None,
    sensors: Iterable[str],
    *,
    settings: Settings | None = None,
) -> list[Provider]:
    """The providers to search for ``sensors``, in order of preference.

    ``requested`` names registry entries or gives STAC API URLs (a comma-separated string is
    split); None means every default provider that holds one of ``sensors``.

    Raises
    ------
    QueryError
        For an unknown provider name, or when no provider holds the requested sensors.
    """
    known = providers(settings)
    sensors = list(sensors)
    if requested is None:
        chosen = [p for p in known.values() if p.default]
    else:
        if isinstance(requested, str):
            requested = [part.strip() for part in requested.split(",") if part.strip()]
        chosen = []
        for entry in requested:
            if isinstance(entry, Provider):
                chosen.append(entry)
            elif entry in known:
                chosen.append(known[entry])
            elif urlsplit(entry).scheme in ("http", "https"):
                chosen.append(_adhoc(entry, known))
            else:
                raise QueryError(
                    f"unknown provider {entry!r}",
                    where="providers",
                    fix=f"use one of {', '.join(known)}, a STAC API URL, or add "
                    f"[providers.{entry}] to spectraflow.toml",
                )
    useful = [p for p in chosen if p.collections_for(sensors)]
    if not useful:
        names = ", ".join(p.name for p in chosen) or "none"
        raise QueryError(
            f"no provider among ({names}) holds {', '.join(sensors)} scenes",
            where="providers",
            fix="name a provider that serves these sensors (spectraflow search --help lists them)",
        )
    return useful


def provider_for_href(href: str | None, settings: Settings | None = None) -> str | None:
    """Name of the registered provider whose API serves ``href`` (an item's self link)."""
    if not href:
        return None
    target = urlsplit(href)
    for provider in providers(settings).values():
        root = urlsplit(provider.url)
        if target.netloc == root.netloc and target.path.startswith(root.path):
            return provider.name
    return None
