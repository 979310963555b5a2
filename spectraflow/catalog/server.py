"""A local STAC API: a directory of STAC items served by ``rustac serve``.

:class:`LocalCatalog` keeps a catalog on disk in a layout that ``rustac serve`` loads as it is::

    DIR/collections/<collection id>.json  one STAC 1.1 collection per file, extent kept up to date
    DIR/items/<collection id>.ndjson      the collection's items, one JSON object per line
    DIR/.version                          a counter bumped by every add(), so servers reload

:class:`LocalStacServer` runs ``rustac serve`` on that directory (a context manager) and
:func:`serve_forever` supervises one for ``spectraflow catalog serve``, reloading it when items are
added. The server binds to 127.0.0.1 unless another host is asked for.

Backends: the in-memory backend of ``rustac serve`` (below :data:`DUCKDB_MIN_ITEMS` items) answers
``ids``, ``collections``, ``bbox``, ``intersects`` and ``datetime`` searches but ignores ``query``
and ``filter``, and accepts no transactions (items are added by writing files and restarting,
which takes well under a second). The DuckDB backend serves one stac-geoparquet file written from
the catalog, with collections generated from the items; it needs DuckDB's ``spatial`` extension,
which DuckDB downloads on first use, so without it ``"auto"`` stays with the memory backend.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias
from urllib.parse import urljoin, urlsplit

import pystac

from spectraflow.errors import CatalogError, ConfigError, SceneFormatError

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_PORT",
    "DUCKDB_MIN_ITEMS",
    "Backend",
    "LocalCatalog",
    "LocalStacServer",
    "serve_forever",
]

logger = logging.getLogger(__name__)

Backend: TypeAlias = Literal["auto", "memory", "duckdb"]
ItemLike: TypeAlias = pystac.Item | Mapping[str, Any] | str | os.PathLike[str]

DEFAULT_COLLECTION = "spectraflow-local"
"""Collection of added items that name none."""
DUCKDB_MIN_ITEMS = 20_000
"""From this many items on, ``backend="auto"`` serves with DuckDB (when it is available)."""
DEFAULT_PORT = 7822
"""Port of ``spectraflow catalog serve`` (the port ``rustac serve`` uses by default)."""
STARTUP_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0

_BACKENDS = ("auto", "memory", "duckdb")
# Links into the catalog an item came from; the local server adds its own.
_STRUCTURAL_RELS = frozenset({"self", "root", "parent", "collection"})
_NDJSON_SUFFIXES = frozenset({".ndjson", ".jsonl", ".geojsonl"})
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
_ADD_FIX = "pass STAC items (GeoJSON Features with id, geometry, properties.datetime)"
_IN_USE = "Address already in use"


class LocalCatalog:
    """A directory holding a STAC catalog that ``rustac serve`` can load.

    Layout: ``DIR/collections/<id>.json`` and ``DIR/items/<collection>.ndjson`` (see the module
    docstring). Nothing is written until :meth:`add` or a server needs it.

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
                _atomic_write(path, text)
            _atomic_write(self.directory / ".version", f"{self.version() + 1}\n")
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
            ``"memory"``, ``"duckdb"`` or ``"auto"`` (DuckDB from :data:`DUCKDB_MIN_ITEMS` items).
        """
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


class LocalStacServer:
    """A running ``rustac serve`` process; a context manager (started on enter, stopped on exit).

    Parameters
    ----------
    catalog
        The catalog to serve, or its directory.
    host
        Interface to bind: 127.0.0.1 by default. Any other address logs a warning; a wildcard
        (``0.0.0.0``, ``::``) advertises the machine's host name in links.
    port
        TCP port; 0 picks a free one at start (kept by :meth:`reload`).
    backend
        ``"memory"``, ``"duckdb"`` or ``"auto"``.
    startup_timeout_s
        How long :meth:`start` waits for the API to answer.
    """

    def __init__(
        self,
        catalog: LocalCatalog | str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        backend: Backend = "auto",
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        if backend not in _BACKENDS:
            fix = "use one of: " + ", ".join(_BACKENDS)
            raise ConfigError(f"unknown STAC server backend {backend!r}", where="backend", fix=fix)
        if not 0 <= port <= 65535:
            fix = "use 1–65535, or 0 for a free port"
            raise ConfigError(f"port {port} is out of range", where="port", fix=fix)
        self.catalog = catalog if isinstance(catalog, LocalCatalog) else LocalCatalog(catalog)
        self.host = host.strip("[]")
        self.backend: Backend = backend
        self.active_backend: Literal["memory", "duckdb"] | None = None
        self.startup_timeout_s = startup_timeout_s
        self._port: int | None = port or None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The API's root URL, without a trailing slash, e.g. ``http://127.0.0.1:7822``."""
        if self._port is None:
            raise CatalogError("the server has no port yet", where="url", fix="start it first")
        return self._url(self._port)

    @property
    def port(self) -> int | None:
        """The TCP port (None before the first start when a free port is to be picked)."""
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id of the running ``rustac serve``, or None."""
        return self._proc.pid if self._proc is not None and self.running else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start ``rustac serve`` and wait until ``GET {url}/`` answers; no-op when running.

        Raises
        ------
        CatalogError
            rustac is missing, the port is taken, the process exits, or it does not answer within
            ``startup_timeout_s`` (the message ends with the tail of its output).
        """
        if self.running:
            return
        self.stop()
        rustac = _find_rustac()
        if not _is_loopback(self.host):
            logger.warning(
                "serving the STAC API on %s, not a loopback address: other machines can reach it",
                self.host,
            )
        self.catalog.directory.mkdir(parents=True, exist_ok=True)
        backend = self._resolve_backend()
        hrefs = [_write_parquet(self.catalog)] if backend == "duckdb" else self.catalog._hrefs()
        pick = self._port is None
        for attempt in range(3 if pick else 1):
            port = _bind_check(self.host, 0 if pick else self._port or 0)
            try:
                self._launch(rustac, port, backend, hrefs)
            except _AddressInUse:
                if pick and attempt < 2:
                    continue  # another process took the picked port in between: pick again
                raise CatalogError(
                    f"port {port} is already in use",
                    where=self._url(port),
                    fix="choose another port, or stop the server that uses it",
                ) from None
            self._port, self.active_backend = port, backend
            logger.info("STAC API (%s backend) ready at %s", backend, self.url)
            return

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def reload(self) -> None:
        """Restart on the same port with the catalog's current data."""
        self.stop()
        self.start()

    def __enter__(self) -> LocalStacServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _resolve_backend(self) -> Literal["memory", "duckdb"]:
        if self.backend == "memory":
            return "memory"
        count = self.catalog._count_items()
        if self.backend == "auto" and count < DUCKDB_MIN_ITEMS:
            return "memory"
        reason = _duckdb_unavailable()
        if reason is None:
            return "duckdb"
        if self.backend == "duckdb":
            raise CatalogError(
                f"the DuckDB backend is unavailable: {reason}",
                where="backend",
                fix="install DuckDB's spatial extension once with network access "
                "(python -c 'import rustac; rustac.DuckdbClient()'), or use the memory backend",
            )
        logger.warning("%d items but DuckDB is unavailable (%s): using memory", count, reason)
        return "memory"

    def _launch(self, rustac: str, port: int, backend: str, hrefs: list[str]) -> None:
        url = self._url(port)
        command = [rustac, "serve", "-a", url, "-b", _join_host_port(self.host, port)]
        command += ["--use-duckdb", "true" if backend == "duckdb" else "false"]
        if backend == "memory":
            command.append("--create-collections")
        # Open while the server runs (closed by stop()); O_APPEND, so our reads never move the
        # child's writes.
        self._log = tempfile.TemporaryFile(mode="a+b", prefix="rustac-serve-")  # noqa: SIM115
        # Own session: a Ctrl-C in the terminal reaches the supervisor, which stops the child.
        self._proc = subprocess.Popen(
            [*command, *hrefs],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        try:
            self._wait_ready(self._proc, url, self._url(port, loopback=True))
        except BaseException:
            tail = self._log_tail()
            self.stop()
            if _IN_USE in tail:
                raise _AddressInUse from None
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], url: str, probe: str) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.startup_timeout_s
        while not _answers_as(opener, probe + "/", url + "/"):
            status = proc.poll()
            if status is not None:
                raise CatalogError(
                    f"rustac serve exited with status {status}: {self._log_tail()}",
                    where=url,
                    fix=f"check rustac's message and the files under {self.catalog.directory}",
                )
            if time.monotonic() > deadline:
                raise CatalogError(
                    f"rustac serve did not answer within {self.startup_timeout_s:g} s: "
                    + self._log_tail(),
                    where=url,
                    fix="check rustac's message; a large catalog may need a longer timeout",
                )
            time.sleep(0.05)

    def _log_tail(self, size: int = 2000) -> str:
        if self._log is None:
            return ""
        end = os.fstat(self._log.fileno()).st_size
        data = os.pread(self._log.fileno(), size, max(0, end - size))
        return data.decode("utf-8", "replace").strip().rstrip(".") or "(no output)"

    def _url(self, port: int, *, loopback: bool = False) -> str:
        host = self.host
        if host in _WILDCARD_HOSTS:
            host = ("::1" if host == "::" else "127.0.0.1") if loopback else socket.gethostname()
        return "http://" + _join_host_port(host, port)


def serve_forever(
    directory: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    backend: Backend = "auto",
    poll_s: float = 1.0,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve a catalog directory until stopped, reloading when items are added.

    Blocks. Calls ``on_ready(url)`` once the API answers, then checks :meth:`LocalCatalog.version`
    every ``poll_s`` seconds and restarts the server when it changed (or when the process died).
    Returns when ``stop`` is set or on KeyboardInterrupt; the server process is always stopped.

    Parameters
    ----------
    directory
        The catalog directory (created if missing).
    host, port, backend
        As for :meth:`LocalCatalog.serve`.
    poll_s
        Seconds between checks for new data.
    on_ready
        Called with the root URL once the server answers.
    stop
        Set it (from another thread) to stop serving.
    """
    catalog = LocalCatalog(directory)
    server = catalog.serve(host=host, port=port, backend=backend)
    stop = stop or threading.Event()
    try:
        seen = catalog.version()  # read before starting: an add during start-up still reloads
        server.start()
        if on_ready is not None:
            on_ready(server.url)
        while not stop.wait(poll_s):
            if (current := catalog.version()) != seen:
                seen = current
                logger.info("catalog changed (version %d): reloading %s", current, server.url)
                server.reload()
            elif not server.running:
                logger.warning("rustac serve exited unexpectedly: restarting %s", server.url)
                server.start()
    except KeyboardInterrupt:
        logger.info("stopping the local STAC API")
    finally:
        server.stop()


class _AddressInUse(Exception):
    """rustac could not bind its port (internal: becomes a retry or a CatalogError)."""


# --- input parsing -----------------------------------------------------------------------------


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


def _atomic_write(path: Path, text: str) -> None:
    # A hidden temporary name that no `*.json` / `*.ndjson` glob matches, then an atomic rename:
    # a server (re)starting meanwhile reads the old file or the new one, never half of one.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with partial.open("w", encoding="utf-8") as handle:  # mode 0666 less the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# --- DuckDB backend ----------------------------------------------------------------------------


def _duckdb_unavailable() -> str | None:
    """Why rustac's DuckDB cannot serve stac-geoparquet here, or None when it can."""
    import rustac

    try:
        # Without install_extensions a missing `spatial` extension fails at once; `rustac serve`
        # would try to download it, and offline its connection pool times out on every request.
        rustac.DuckdbClient(install_extensions=False)
    except rustac.RustacError as error:
        return str(error).strip().splitlines()[0]
    return None


def _write_parquet(catalog: LocalCatalog) -> str:
    """Write (or reuse) ``DIR/.cache/items.parquet`` for the catalog's current version."""
    import rustac

    cache = catalog.directory / ".cache"
    target, stamp = cache / "items.parquet", cache / "items.parquet.version"
    version = str(catalog.version())
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == version:
        return str(target)
    items = catalog.items()
    if not items:
        fix = "add items first, or use the memory backend"
        raise CatalogError("DuckDB cannot serve an empty catalog", where="backend", fix=fix)
    _unify_property_types(items)
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".items-{os.getpid()}-{threading.get_ident()}.parquet"
    try:
        rustac.write_sync(str(partial), items)
        os.replace(partial, target)
    except rustac.RustacError as error:
        what = f"could not write stac-geoparquet for DuckDB: {error}"
        raise CatalogError(what, where=str(target), fix="use the memory backend") from error
    finally:
        partial.unlink(missing_ok=True)
    _atomic_write(stamp, version + "\n")
    return str(target)


def _unify_property_types(items: list[dict[str, Any]]) -> None:
    """Give each property one type across items, as an Arrow column needs (in place).

    Providers disagree (DLR writes ``"eo:cloud_cover": "0"``, others numbers): properties of
    mixed types are written as strings, as the DLR items already carry them.
    """
    kinds: dict[str, set[str]] = {}
    for item in items:
        for key, value in item["properties"].items():
            if value is not None:
                number = isinstance(value, int | float) and not isinstance(value, bool)
                kinds.setdefault(key, set()).add("number" if number else type(value).__name__)
    mixed = {key for key, seen in kinds.items() if len(seen) > 1}
    if mixed:
        logger.info("writing mixed-type properties as strings: %s", ", ".join(sorted(mixed)))
    for item in items:
        props = item["properties"]
        for key in mixed & props.keys():
            if props[key] is not None and not isinstance(props[key], str):
                props[key] = json.dumps(props[key])


# --- processes and sockets ---------------------------------------------------------------------


def _find_rustac() -> str:
    beside = Path(sys.executable).parent / ("rustac.exe" if os.name == "nt" else "rustac")
    found = str(beside) if beside.is_file() else shutil.which("rustac")
    if found is None:
        fix = "install rustac into this Python environment (pip install rustac)"
        raise CatalogError("the rustac command was not found", where=str(beside.parent), fix=fix)
    return found


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: warn, whatever it resolves to


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_check(host: str, port: int) -> int:
    """Bind ``host:port`` as rustac will (port 0: any free port) and return the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as rustac sets it: a port in TIME_WAIT after a stop counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CatalogError(
                f"cannot bind {_join_host_port(host, port)}: {error.strerror or error}",
                where="host" if error.errno == 99 else "port",  # 99: address not available
                fix="choose another port or host, or stop the server that uses the port",
            ) from error
        bound: int = probe.getsockname()[1]
        return bound


def _answers_as(opener: urllib.request.OpenerDirector, probe: str, self_href: str) -> bool:
    """Whether ``probe`` serves a STAC landing page whose self link is ``self_href``."""
    try:
        with opener.open(probe, timeout=2) as response:
            root = json.loads(response.read()) if response.status == 200 else None
    except (OSError, ValueError):
        return False
    # Another program answering on the port would not name our URL as its own.
    links = root.get("links", []) if isinstance(root, dict) else []
    return any(link.get("rel") == "self" and link.get("href") == self_href for link in links)
