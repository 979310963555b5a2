"""A local STAC API: ``rustac serve`` on a :class:`~spectraflow.catalog.store.LocalCatalog`.

:class:`LocalStacServer` runs ``rustac serve`` on the catalog directory (a context manager) and
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
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

from spectraflow.catalog.store import LocalCatalog, atomic_write
from spectraflow.errors import CatalogError, ConfigError

__all__ = [
    "DEFAULT_PORT",
    "DUCKDB_MIN_ITEMS",
    "Backend",
    "LocalStacServer",
    "serve_forever",
]

logger = logging.getLogger(__name__)

Backend: TypeAlias = Literal["auto", "memory", "duckdb"]

DUCKDB_MIN_ITEMS = 20_000
"""From this many items on, ``backend="auto"`` serves with DuckDB (when it is available)."""
DEFAULT_PORT = 7822
"""Port of ``spectraflow catalog serve`` (the port ``rustac serve`` uses by default)."""
STARTUP_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0

_BACKENDS = ("auto", "memory", "duckdb")
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
_IN_USE = "Address already in use"


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

    Blocks. Calls ``on_ready(url)`` once the API answers, then checks :meth:`.LocalCatalog.version`
    every ``poll_s`` seconds and restarts the server when it changed (or when the process died).
    Returns when ``stop`` is set or on KeyboardInterrupt; the server process is always stopped.

    Parameters
    ----------
    directory
        The catalog directory (created if missing).
    host, port, backend
        As for :meth:`.LocalCatalog.serve`.
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
    atomic_write(stamp, version + "\n")
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
