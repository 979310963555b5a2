"""``find_scene``: one scene from what a user types: an item file, an item URL or a scene id."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pystac_client.exceptions import APIError

from spectraflow.catalog.http import RetryingStacIO
from spectraflow.catalog.normalise import scene_from_item
from spectraflow.catalog.providers import Provider, resolve_providers
from spectraflow.catalog.scene import SENSORS, Scene
from spectraflow.catalog.search import open_client, unreachable
from spectraflow.config import Settings
from spectraflow.errors import CatalogError, SceneFormatError

__all__ = ["find_scene"]


def _read_item_file(path: Path) -> dict[str, Any]:
    try:
        item = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneFormatError(
            f"cannot read the STAC item: {exc}", where=str(path), fix="give a STAC item JSON file"
        ) from None
    if not isinstance(item, dict) or item.get("type") != "Feature":
        raise SceneFormatError(
            "not a STAC item (no Feature)", where=str(path), fix="give a STAC item JSON file"
        )
    # the item lives in this file now, whatever catalog it was copied from
    links = [link for link in item.get("links", []) if link.get("rel") != "self"]
    item["links"] = [*links, {"rel": "self", "href": str(path.resolve())}]
    return item


def _by_id(
    scene_id: str, providers: Iterable[str | Provider] | None, settings: Settings | None
) -> tuple[dict[str, Any], str]:
    for provider in resolve_providers(providers, SENSORS, settings=settings):
        client = open_client(provider)
        search = client.search(ids=[scene_id], collections=provider.collections_for(SENSORS))
        try:
            for item in search.items_as_dicts():
                return item, provider.name
        except APIError as exc:
            raise unreachable(provider, exc) from None
    raise CatalogError(
        f"no provider has a scene with id {scene_id!r}",
        where="scene id",
        fix="check the id (spectraflow search lists them), name the provider with --provider, "
        "or give the STAC item file or URL",
    )


def find_scene(
    reference: str | Path,
    *,
    providers: Iterable[str | Provider] | None = None,
    settings: Settings | None = None,
) -> Scene:
    """The :class:`Scene` of an item file, an item URL, or a scene id looked up at the providers.

    Raises
    ------
    SceneFormatError
        When the file is not a readable STAC item of a supported sensor.
    CatalogError
        When no provider knows the id, or a provider cannot be reached.
    """
    text = str(reference)
    if urlsplit(text).scheme in ("http", "https"):
        try:
            item = RetryingStacIO().read_json(text)
        except APIError as exc:
            raise CatalogError(
                f"cannot fetch the STAC item: {exc}", where=text, fix="check the URL"
            ) from None
        return scene_from_item(item)
    path = Path(text).expanduser()
    if path.suffix.lower() in (".json", ".geojson") or path.exists():
        return scene_from_item(_read_item_file(path))
    item, provider = _by_id(text, providers, settings)
    return scene_from_item(item, provider=provider)
