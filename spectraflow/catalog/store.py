"""A local STAC catalog on disk, in the layout that ``rustac serve`` loads as it is.

::

    DIR/collections/<collection id>.json  one STAC 1.1 collection per file, extent kept up to date
    DIR/items/<collection id>.ndjson      the collection's items, one JSON object per line
    DIR/.version                          a counter bumped by every add(), so servers reload

:class:`LocalCatalog` checks and normalises the items it is given and writes them atomically;
:mod:`spectraflow.catalog.server` serves the directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urljoin, urlsplit

import pystac

from spectraflow.errors import CatalogError, SceneFormatError

if TYPE_CHECKING:
    from spectraflow.catalog.server import Backend, LocalStacServer

__all__ = ["DEFAULT_COLLECTION", "ItemLike", "LocalCatalog", "atomic_write"]

logger = logging.getLogger(__name__)

ItemLike: TypeAlias = pystac.Item | Mapping[str, Any] | str | os.PathLike[str]
"""What :meth:`LocalCatalog.add` takes: a pystac Item, an item dict, or an item file path."""

DEFAULT_COLLECTION = "spectraflow-local"
"""Collection of added items that name none."""

# Links into the catalog an item came from; the local server adds its own.
_STRUCTURAL_RELS = frozenset({"self", "root", "parent", "collection"})
_NDJSON_SUFFIXES = frozenset({".ndjson", ".jsonl", ".geojsonl"})
_ADD_FIX = "pass STAC items (GeoJSON Features with id, geometry, properties.datetime)"


class LocalCatalog:
    """A directory holding a STAC catalog that ``rustac serve`` can load (layout: module docstring).

    Nothing is written until :meth:`add` or a server needs it.

    Parameters
    ----------
    directory
        The catalog directory; created when needed.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser().absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise CatalogError(
                "the catalog path is not a directory",
                where=str(self.directory),
                fix="pass a directory (it is created if missing)",
            )
        self._items_dir = self.directory / "items"
        self._collections_dir = self.directory / "collections"

    def __repr__(self) -> str:
        return f"LocalCatalog({str(self.directory)!r})"

    def add(self, items: Iterable[ItemLike]) -> list[str]:
        """Add STAC items; an item whose id already is in its collection replaces the old one.

        Parameters
        ----------
        items
            pystac Items, item dicts, or paths to item JSON files (one item, a FeatureCollection
            or a list of items) or ``.ndjson`` files. Relative asset and link hrefs are made
            absolute (relative to the item file, or to the item's self link). Items without a
            collection go to :data:`DEFAULT_COLLECTION`. Links into the catalog an item came from
            (self, root, parent, collection) are dropped; an http(s) self link becomes ``via``.

        Returns
        -------
        list of str
            The ids added or replaced, in input order.

        Raises
        ------
        SceneFormatError
            An input is not JSON or not a STAC item; nothing is written then.
        """
        batch = {(item["collection"], item["id"]): item for item in _load_inputs(items)}
        if not batch:
            return []
        by_collection: dict[str, list[dict[str, Any]]] = {}
        for (collection, _), item in batch.items():
            by_collection.setdefault(collection, []).append(item)
        with self._lock():
            # Everything is read and checked before the first write, so bad data writes nothing.
            writes: list[tuple[Path, str]] = []
            for collection, new in by_collection.items():
                merged = _merge(self.items(collection), new)
                lines = "".join(_dumps(item, line=True) for item in merged)
                writes.append((self._items_dir / f"{collection}.ndjson", lines))
                doc = _collection_doc(self._collection(collection), collection, merged)
                writes.append((self._collections_dir / f"{collection}.json", _dumps(doc)))
            self._items_dir.mkdir(parents=True, exist_ok=True)
            self._collections_dir.mkdir(parents=True, exist_ok=True)
            for path, text in writes:
                atomic_write(path, text)
            atomic_write(self.directory / ".version", f"{self.version() + 1}\n")
        ids = list(dict.fromkeys(item_id for _, item_id in batch))
        logger.info("added %d item(s) to %s", len(ids), self.directory)
        return ids

    def items(self, collection: str | None = None) -> list[dict[str, Any]]:
        """The items of one collection, or of all (by collection id), in the order first added."""
        if collection is not None:
            _check_collection_id(collection, where="collection")
            files = [self._items_dir / f"{collection}.ndjson"]
        else:
            files = sorted(self._items_dir.glob("*.ndjson"))
        return [item for path in files if path.is_file() for item in _read_ndjson(path)]

    def collections(self) -> list[dict[str, Any]]:
        """The catalog's collections as dicts, sorted by id."""
        paths = sorted(self._collections_dir.glob("*.json"))
        return [doc for path in paths if (doc := self._collection(path.stem)) is not None]

    def version(self) -> int:
        """A counter that every :meth:`add` increments (0 for a new catalog)."""
        try:
            return int((self.directory / ".version").read_text(encoding="utf-8").strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def serve(
        self, *, host: str = "127.0.0.1", port: int = 0, backend: Backend = "auto"
    ) -> LocalStacServer:
        """A server for this catalog, not started: use it as a context manager or call start().

        Parameters
        ----------
        host
            Interface to bind; anything but a loopback address logs a warning.
        port
            TCP port; 0 picks a free one.
        backend
            ``"memory"``, ``"duckdb"`` or ``"auto"`` (DuckDB from
            :data:`~spectraflow.catalog.server.DUCKDB_MIN_ITEMS` items).
        """
        from spectraflow.catalog.server import LocalStacServer  # the server imports this module

        return LocalStacServer(self, host=host, port=port, backend=backend)

    def _count_items(self) -> int:
        count = 0
        for path in self._items_dir.glob("*.ndjson"):
            with path.open("rb") as stream:
                count += sum(1 for line in stream if line.strip())
        return count

    def _collection(self, collection: str) -> dict[str, Any] | None:
        path = self._collections_dir / f"{collection}.json"
        if not path.is_file():
            return None
        doc = _parse_json(path.read_text(encoding="utf-8"), where=str(path))
        if not isinstance(doc, dict):
            raise _bad("collection file holds no JSON object", str(path), "delete the file")
        return doc

    def _hrefs(self) -> list[str]:
        collections = sorted(self._collections_dir.glob("*.json"))
        return [str(path) for path in (*collections, *sorted(self._items_dir.glob("*.ndjson")))]

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Serialises add() across processes (two `spectraflow catalog add` at once).
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("a") as handle:
            try:
                import fcntl
            except ImportError:  # Windows: no advisory locks, adds are not serialised
                yield
                return
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --- item checks -------------------------------------------------------------------------------


def _bad(what: str, where: str, fix: str = _ADD_FIX) -> SceneFormatError:
    return SceneFormatError(what, where=where, fix=fix)


def _load_inputs(items: Iterable[ItemLike]) -> list[dict[str, Any]]:
    if isinstance(items, str | os.PathLike | Mapping | pystac.Item):
        items = [items]  # one item or path where an iterable was expected
    loaded: list[dict[str, Any]] = []
    for index, obj in enumerate(items):
        if isinstance(obj, pystac.Item):
            value = obj.to_dict(include_self_link=True, transform_hrefs=False)
            loaded.append(_check_item(value, where=f"item {obj.id}", base=obj.get_self_href()))
        elif isinstance(obj, Mapping):
            try:
                value = json.loads(json.dumps(obj))  # a deep copy that also proves it is JSON
            except (TypeError, ValueError) as error:
                raise _bad(f"item is not JSON-serialisable: {error}", f"items[{index}]") from error
            loaded.append(_check_item(value, where=f"items[{index}]", base=_self_href(value)))
        elif isinstance(obj, str | os.PathLike):
            loaded.extend(_read_item_file(Path(obj)))
        else:
            raise _bad(f"cannot add an object of type {type(obj).__name__}", f"items[{index}]")
    return loaded


def _read_item_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise _bad("item file not found", str(path), "check the path of the STAC item file")
    base = os.path.abspath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise _bad("item file is not UTF-8 text", str(path)) from error
    if path.suffix.lower() in _NDJSON_SUFFIXES:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        return [
            _check_item(_parse_json(line, where=f"{path}:{n}"), where=f"{path}:{n}", base=base)
            for n, line in lines
        ]
    value = _parse_json(text, where=str(path))
    if isinstance(value, dict) and value.get("type") == "FeatureCollection":
        value = value.get("features")
        if not isinstance(value, list):
            raise _bad("FeatureCollection has no list of features", str(path))
    if isinstance(value, list):
        return [
            _check_item(feature, where=f"{path} (feature {index})", base=base)
            for index, feature in enumerate(value)
        ]
    return [_check_item(value, where=str(path), base=base)]


def _check_item(value: Any, *, where: str, base: str | None) -> dict[str, Any]:
    """Check one item dict and normalise it for the local catalog (in place)."""
    if not isinstance(value, dict) or value.get("type") != "Feature":
        kind = value.get("type") if isinstance(value, dict) else type(value).__name__
        raise _bad(f"not a STAC item (type {kind!r}, expected 'Feature')", where)
    item_id = value.get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        raise _bad("STAC item has no id", where)
    where = where if item_id in where else f"{where} (item {item_id})"
    if not isinstance(value.get("stac_version"), str):
        raise _bad("STAC item has no stac_version", where)
    bounds = _geometry_bounds(value.get("geometry"), where=where)
    props = value.get("properties")
    if not isinstance(props, dict):
        raise _bad("STAC item has no properties object", where)
    keys = ["datetime"] if props.get("datetime") is not None else []
    for key in keys or ["start_datetime", "end_datetime"]:
        _parse_datetime(props.get(key), where=where, key=key)
    value["collection"] = value.get("collection") or DEFAULT_COLLECTION
    _check_collection_id(value["collection"], where=where)
    if value.get("bbox") is None:
        value["bbox"] = list(bounds)
    bbox = value["bbox"]
    if not (
        isinstance(bbox, list)
        and len(bbox) in (4, 6)
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in bbox)
    ):
        raise _bad(f"STAC item has an invalid bbox {bbox!r}", where, "give 4 or 6 numbers")
    assets, links = value.setdefault("assets", {}), value.setdefault("links", [])
    if not isinstance(assets, dict) or not all(_has_href(a) for a in assets.values()):
        raise _bad("STAC item assets must be objects with an href", where)
    if not isinstance(links, list) or not all(_has_href(link) for link in links):
        raise _bad("STAC item links must be objects with an href", where)
    value["links"] = _local_links(links, base)
    for asset in assets.values():
        asset["href"] = _absolute_href(asset["href"], base)
    return value


def _has_href(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("href"), str)


def _geometry_bounds(geometry: Any, *, where: str) -> tuple[float, ...]:
    if not isinstance(geometry, dict) or "type" not in geometry:
        fix = "give the item a GeoJSON footprint in lon/lat (items are searched by bbox)"
        raise _bad("STAC item has no geometry", where, fix)
    from shapely.geometry import shape

    try:
        bounds = tuple(float(b) for b in shape(geometry).bounds)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
        raise _bad(f"STAC item has an invalid GeoJSON geometry: {error}", where) from error
    if len(bounds) != 4 or any(b != b for b in bounds):  # empty geometries have NaN bounds
        raise _bad("STAC item has an empty geometry", where)
    return bounds


def _parse_datetime(value: Any, *, where: str, key: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as error:
        what = f"STAC item property {key} is not an RFC 3339 time: {value!r}"
        raise _bad(what, where, "set properties.datetime like 2024-06-12T17:47:42Z") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_collection_id(collection: Any, *, where: str) -> None:
    if (
        not isinstance(collection, str)
        or not collection.strip()
        or collection.startswith(".")
        or any(c in collection for c in "/\\:\0")
        or len(collection) > 200
    ):
        what = f"collection id {collection!r} cannot be used as a file name"
        raise _bad(what, where, "use a collection id without slashes, colons or a leading dot")


def _self_href(item: dict[str, Any]) -> str | None:
    for link in item.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self":
            href = link.get("href")
            if isinstance(href, str) and not _is_relative(href):
                return href
    return None


def _local_links(links: list[dict[str, Any]], base: str | None) -> list[dict[str, Any]]:
    kept = [dict(link) for link in links if link.get("rel") not in _STRUCTURAL_RELS]
    for link in kept:
        link["href"] = _absolute_href(link["href"], base)
    origin = next((link["href"] for link in links if link.get("rel") == "self"), None)
    known = {(link.get("rel"), link["href"]) for link in kept}
    if origin and urlsplit(origin).scheme in ("http", "https") and ("via", origin) not in known:
        kept.append({"rel": "via", "href": origin, "type": "application/geo+json"})
    return kept


def _is_relative(href: str) -> bool:
    return not (len(urlsplit(href).scheme) > 1 or os.path.isabs(href))


def _absolute_href(href: str, base: str | None) -> str:
    if base is None or not _is_relative(href):
        return href
    # base: the item document's own href (a file path, or a URL from its self link)
    if len(urlsplit(base).scheme) > 1:
        return urljoin(base, href)
    return os.path.normpath(os.path.join(os.path.dirname(base), href))


# --- storage -----------------------------------------------------------------------------------


def _merge(existing: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged = list(existing)
    position = {item["id"]: index for index, item in enumerate(merged)}
    for item in new:
        if item["id"] in position:
            merged[position[item["id"]]] = item
        else:
            position[item["id"]] = len(merged)
            merged.append(item)
    return merged


def _collection_doc(
    existing: dict[str, Any] | None, collection: str, items: list[dict[str, Any]]
) -> dict[str, Any]:
    doc = existing or {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": collection,
        "description": f"Items of {collection} added to the local spectraflow catalog",
        "license": "other",
        "links": [],
    }
    starts, ends = [], []
    for item in items:
        props, where = item["properties"], f"item {item['id']}"
        start = props.get("start_datetime") or props["datetime"]
        starts.append(_parse_datetime(start, where=where, key="start_datetime"))
        end = props.get("end_datetime") or start
        ends.append(_parse_datetime(end, where=where, key="end_datetime"))
    doc["extent"] = {
        "spatial": {"bbox": [_union_bbox(item["bbox"] for item in items)]},
        "temporal": {"interval": [[_rfc3339(min(starts)), _rfc3339(max(ends))]]},
    }
    return doc


def _union_bbox(bboxes: Iterable[list[float]]) -> list[float]:
    west = south = float("inf")
    east = north = float("-inf")
    crosses = False
    for bbox in bboxes:
        half = len(bbox) // 2
        x0, y0, x1, y1 = bbox[0], bbox[1], bbox[half], bbox[half + 1]
        crosses |= x0 > x1  # antimeridian-crossing bbox: keep the full longitude range
        west, south, east, north = min(west, x0), min(south, y0), max(east, x1), max(north, y1)
    return [-180.0, south, 180.0, north] if crosses else [west, south, east, north]


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _read_ndjson(path: Path) -> list[dict[str, Any]]:
    items = []
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                value = _parse_json(line, where=f"{path}:{number}")
                if not isinstance(value, dict):
                    raise _bad("line is not a JSON object", f"{path}:{number}")
                items.append(value)
    return items


def _parse_json(text: str, *, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _bad(f"not valid JSON: {error}", where) from error


def _dumps(value: Any, *, line: bool = False) -> str:
    if line:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def atomic_write(path: Path, text: str) -> None:
    """Write ``path`` so that a reader, e.g. a server (re)starting, sees the old or the new file."""
    # A hidden temporary name that no `*.json` / `*.ndjson` glob matches, then an atomic rename.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with partial.open("w", encoding="utf-8") as handle:  # mode 0666 less the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
