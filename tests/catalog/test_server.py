"""The local STAC API: real `rustac serve` processes on loopback, searched with pystac-client."""

from __future__ import annotations

import json
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pystac
import pystac.validation
import pytest
import requests
import rustac
from pystac_client import Client
from pystac_client.exceptions import APIError
from shapely.geometry import box, shape

from spectraflow.catalog import server as server_module
from spectraflow.catalog.server import LocalStacServer, serve_forever
from spectraflow.catalog.store import DEFAULT_COLLECTION, LocalCatalog
from spectraflow.errors import CatalogError, ConfigError, SceneFormatError
from spectraflow.simulate import simulate_scene

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-data"
SIM_BBOX = [-104.0, 31.0, -103.0, 32.0]
SIM_TIME = "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z"

pytestmark = pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")


def _real_item_paths() -> list[Path]:
    paths = [
        *sorted((REAL / "dlr-geoservice").glob("*.json")),
        *sorted((REAL / "earth-search-v1").glob("sentinel-2-*.json")),
        REAL / "planetary-computer" / "sentinel-2-l2a-pc_4items_PB05.10.json",
    ]
    missing = [path for path in paths if not path.is_file()]
    assert not missing, f"real data missing: {missing}"
    return paths


def _derived(n: int, *, start: int = 0, prefix: str = "derived") -> list[dict[str, Any]]:
    """Cheap items without a collection: one 0.1° box a day, 1° further east each day."""
    items = []
    for i in range(start, start + n):
        lon, when = 10.0 + i, datetime(2023, 1, 1, 10, tzinfo=UTC) + timedelta(days=i)
        footprint = box(lon, 45.0, lon + 0.1, 45.1)
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": f"{prefix}-{i:03d}",
                "geometry": json.loads(json.dumps(footprint.__geo_interface__)),
                "bbox": list(footprint.bounds),
                "properties": {"datetime": when.isoformat().replace("+00:00", "Z"), "n": i},
                "assets": {"data": {"href": f"https://example.test/{prefix}-{i}.tif"}},
                "links": [],
            }
        )
    return items


def _times_parsed(properties: dict[str, Any]) -> dict[str, Any]:
    # rustac re-serialises times (…09.000000Z → …09Z): compare them as instants.
    times = {"datetime", "start_datetime", "end_datetime"}
    return {
        key: datetime.fromisoformat(value) if key in times and value else value
        for key, value in properties.items()
    }


def _search_ids(url: str, **query: Any) -> list[str]:
    return [item.id for item in Client.open(url).search(**query).items()]


def _expected(
    items: list[dict[str, Any]],
    *,
    bbox: list[float] | None = None,
    datetime_range: str | None = None,
    collections: list[str] | None = None,
) -> set[str]:
    """Brute-force reference of a STAC search over item dicts."""
    found = set()
    for item in items:
        if collections and item["collection"] not in collections:
            continue
        if bbox and not shape(item["geometry"]).intersects(box(*bbox)):
            continue
        if datetime_range:
            start, end = (datetime.fromisoformat(t) for t in datetime_range.split("/"))
            props = item["properties"]
            first = datetime.fromisoformat(props.get("start_datetime") or props["datetime"])
            last = datetime.fromisoformat(props.get("end_datetime") or props["datetime"])
            if last < start or first > end:
                continue
        found.add(item["id"])
    return found


QUERIES: list[dict[str, Any]] = [
    {"bbox": SIM_BBOX, "datetime": SIM_TIME},
    {"bbox": [92.0, 80.0, 98.0, 83.0], "collections": ["sentinel-2-l2a"]},
    {"bbox": [14.95, 44.9, 20.05, 45.2], "datetime": "2023-01-08T00:00:00Z/2023-01-10T23:00:00Z"},
    {"collections": [DEFAULT_COLLECTION], "limit": 10},  # 25 items: pages through next links
    {"datetime": "2025-07-01T00:00:00Z/2025-08-31T00:00:00Z"},
    {"collections": ["ENMAP_HSI_L2A", "EMITL2ARFL_001"]},
]


def _check_queries(url: str, items: list[dict[str, Any]]) -> None:
    for query in QUERIES:
        ids = _search_ids(url, **query)
        assert len(ids) == len(set(ids)), f"duplicates for {query}"
        expected = _expected(
            items,
            bbox=query.get("bbox"),
            datetime_range=query.get("datetime"),
            collections=query.get("collections"),
        )
        assert set(ids) == expected, query
        assert expected, f"query {query} should match something"


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sims")
    return {sensor: simulate_scene(sensor, out=out, size="tiny") for sensor in ("enmap", "emit")}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, sims: dict[str, Any]
) -> Iterator[tuple[LocalCatalog, LocalStacServer]]:
    catalog = LocalCatalog(tmp_path_factory.mktemp("catalog"))
    s2 = simulate_scene("sentinel2", out=tmp_path_factory.mktemp("s2"), size="tiny")
    sim_paths = [scene.item_path for scene in (*sims.values(), s2)]
    catalog.add([*sim_paths, *_real_item_paths()])
    catalog.add(_derived(25))
    with catalog.serve() as server:
        yield catalog, server


def test_served_items_match_what_was_added(
    served: tuple[LocalCatalog, LocalStacServer], sims: dict[str, Any]
) -> None:
    catalog, server = served
    client = Client.open(server.url)
    collection_ids = {c["id"] for c in catalog.collections()}
    assert {c.id for c in client.get_collections()} == collection_ids
    assert collection_ids == {
        "ENMAP_HSI_L2A",
        "EMITL2ARFL_001",
        "sentinel-2-c1-l2a",
        "sentinel-2-l2a",
        DEFAULT_COLLECTION,
    }
    for collection in collection_ids:
        stored = {item["id"]: item for item in catalog.items(collection)}
        # raw JSON as served (pystac would migrate old extension fields on reading)
        served_items = list(client.search(collections=[collection]).items_as_dicts())
        assert sorted(i["id"] for i in served_items) == sorted(stored)
        for item in served_items:
            original = stored[item["id"]]
            for key in ("geometry", "bbox", "assets", "stac_version"):
                assert item[key] == original[key], (item["id"], key)
            assert _times_parsed(item["properties"]) == _times_parsed(original["properties"])
            # the links into the original catalog are gone: self/root/collection are ours
            links = {(link["rel"], link["href"]) for link in item["links"]}
            for rel in ("self", "root", "collection", "parent"):
                hrefs = [href for r, href in links if r == rel]
                assert len(hrefs) == 1 and hrefs[0].startswith(server.url), (item["id"], rel)
            assert {(link["rel"], link["href"]) for link in original["links"]} <= links
    # the simulated scenes' assets point at their files on disk
    enmap = catalog.items("ENMAP_HSI_L2A")
    sim = next(item for item in enmap if item["id"] == sims["enmap"].id)
    assert Path(sim["assets"]["image"]["href"]) == sims["enmap"].files["image"]
    assert Path(sim["assets"]["image"]["href"]).is_file()


def test_search_by_bbox_datetime_and_collection(
    served: tuple[LocalCatalog, LocalStacServer], sims: dict[str, Any]
) -> None:
    catalog, server = served
    _check_queries(server.url, catalog.items())
    # the simulated region holds exactly the three simulated scenes
    found = set(_search_ids(server.url, bbox=SIM_BBOX, datetime=SIM_TIME))
    assert {sims["enmap"].id, sims["emit"].id} < found
    assert len(found) == 3
    pc = _search_ids(server.url, bbox=[92.0, 80.0, 98.0, 83.0], collections=["sentinel-2-l2a"])
    assert len(pc) == 4 and all(i.startswith("S2B_MSIL2A_20240419") for i in pc)


def test_real_items_keep_their_values(served: tuple[LocalCatalog, LocalStacServer]) -> None:
    _, server = served
    dlr_path = next((REAL / "dlr-geoservice").glob("*.json"))
    original = json.loads(dlr_path.read_text())
    item = next(Client.open(server.url).search(ids=[original["id"]]).items())
    assert item.properties["eo:cloud_cover"] == original["properties"]["eo:cloud_cover"] == "0"
    assert item.assets["image"].href == original["assets"]["image"]["href"]
    origin = next(link["href"] for link in original["links"] if link["rel"] == "self")
    assert origin in [link.href for link in item.links if link.rel == "via"]


def test_server_listens_on_loopback_only(served: tuple[LocalCatalog, LocalStacServer]) -> None:
    _, server = served
    assert server.url.startswith("http://127.0.0.1:")
    assert server.pid is not None
    listening = [
        conn.laddr
        for conn in psutil.Process(server.pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert [(addr.ip, addr.port) for addr in listening] == [("127.0.0.1", server.port)]


def test_loopback_detection() -> None:
    assert server_module._is_loopback("127.0.0.1")
    assert server_module._is_loopback("::1")
    assert server_module._is_loopback("localhost")
    assert not server_module._is_loopback("0.0.0.0")
    assert not server_module._is_loopback("192.168.1.20")
    assert not server_module._is_loopback("stac.example.org")


def test_add_reload_and_replace(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "catalog")
    assert catalog.version() == 0
    given = _derived(3)
    assert catalog.add(given) == ["derived-000", "derived-001", "derived-002"]
    assert "collection" not in given[0]  # the caller's dicts are left alone
    first_version = catalog.version()
    with catalog.serve() as server:
        url, port = server.url, server.port
        assert sorted(_search_ids(url)) == ["derived-000", "derived-001", "derived-002"]
        catalog.add(_derived(2, start=3))
        assert catalog.version() > first_version
        assert len(_search_ids(url)) == 3  # a running server serves what it loaded
        server.reload()
        assert (server.url, server.port) == (url, port)
        assert len(_search_ids(url)) == 5
        replacement = _derived(1, start=1)[0]
        replacement["properties"]["n"] = 101
        catalog.add([replacement])
        server.reload()
        ids = _search_ids(url)
        assert sorted(ids) == [f"derived-{i:03d}" for i in range(5)]
        item = next(Client.open(url).search(ids=["derived-001"]).items())
        assert item.properties["n"] == 101
    assert len(catalog.items()) == 5
    assert [item["id"] for item in catalog.items()][1] == "derived-001"  # replaced in place


def test_relative_hrefs_default_collection_and_extent(tmp_path: Path) -> None:
    source = tmp_path / "scene"
    source.mkdir()
    item = _derived(1, start=7, prefix="local")[0]
    item["assets"] = {"data": {"href": "data/B04.tif"}, "meta": {"href": "../meta.xml"}}
    item["links"] = [{"rel": "license", "href": "LICENSE.txt"}]
    (source / "item.json").write_text(json.dumps(item))
    catalog = LocalCatalog(tmp_path / "catalog")
    assert catalog.add([source / "item.json"]) == ["local-007"]
    stored = catalog.items(DEFAULT_COLLECTION)[0]
    assert stored["collection"] == DEFAULT_COLLECTION
    assert stored["assets"]["data"]["href"] == str(source / "data" / "B04.tif")
    assert stored["assets"]["meta"]["href"] == str(tmp_path / "meta.xml")
    assert stored["links"] == [{"rel": "license", "href": str(source / "LICENSE.txt")}]

    # a pystac Item resolves relative hrefs against its own location too
    pystac_item = pystac.Item.from_file(str(source / "item.json"))
    pystac_item.id = "local-pystac"
    catalog.add([pystac_item])
    by_id = {item["id"]: item for item in catalog.items()}
    assert by_id["local-pystac"]["assets"]["data"]["href"] == str(source / "data" / "B04.tif")

    catalog.add(_derived(2, start=20))
    (collection,) = catalog.collections()
    assert collection["id"] == DEFAULT_COLLECTION
    pystac.validation.validate_dict(collection)  # core STAC 1.1 collection schema
    assert pystac.Collection.from_dict(collection).id == DEFAULT_COLLECTION
    assert collection["extent"]["spatial"]["bbox"][0] == pytest.approx([17.0, 45.0, 31.1, 45.1])
    assert collection["extent"]["temporal"]["interval"] == [
        ["2023-01-08T10:00:00Z", "2023-01-22T10:00:00Z"]
    ]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_bad_input_raises_and_writes_nothing(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "catalog")
    catalog.add(_derived(2))
    before, version = _snapshot(catalog.directory), catalog.version()

    (tmp_path / "broken.json").write_text('{"type": "Feature", "id": ')
    collection_file = REAL / "earth-search-v1" / "collection_sentinel-2-l2a.json"
    no_geometry = {**_derived(1, start=5)[0], "geometry": None}
    no_id = {key: value for key, value in _derived(1, start=6)[0].items() if key != "id"}
    lines = [json.dumps(_derived(1, start=7)[0]), '{"type": "Feature", "id": "x"']
    (tmp_path / "half.ndjson").write_text("\n".join(lines) + "\n")
    bad_time = _derived(1, start=8)[0]
    bad_time["properties"]["datetime"] = "yesterday"
    bad_collection = {**_derived(1, start=9)[0], "collection": "../escape"}
    cases: list[tuple[list[Any], str]] = [
        ([tmp_path / "broken.json"], "broken.json"),
        ([collection_file], "collection_sentinel-2-l2a.json"),
        ([*_derived(1, start=4), no_geometry], "derived-005"),
        ([no_id], "items[0]"),
        ([tmp_path / "half.ndjson"], "half.ndjson:2"),
        ([bad_time], "derived-008"),
        ([bad_collection], "derived-009"),
        ([tmp_path / "missing.json"], "missing.json"),
        ([42], "items[0]"),
    ]
    for items, where in cases:
        with pytest.raises(SceneFormatError) as caught:
            catalog.add(items)
        assert caught.value.where is not None and where in caught.value.where, caught.value
        assert caught.value.fix
    assert _snapshot(catalog.directory) == before
    assert catalog.version() == version
    assert [item["id"] for item in catalog.items()] == ["derived-000", "derived-001"]


def test_empty_catalog_serves(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "new")
    with catalog.serve(backend="auto") as server:
        assert server.active_backend == "memory"
        client = Client.open(server.url)
        assert list(client.get_collections()) == []
        assert _search_ids(server.url, bbox=SIM_BBOX) == []


def test_stop_frees_port_and_leaves_no_process(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "catalog")
    catalog.add(_derived(1))
    server = catalog.serve()
    server.start()
    pid, port = server.pid, server.port
    assert pid is not None and port is not None and psutil.pid_exists(pid)
    server.start()  # already running: no second process
    assert server.pid == pid
    server.stop()
    server.stop()  # idempotent
    assert not server.running and server.pid is None
    assert not psutil.pid_exists(pid)
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))

    # the context manager stops the process on exceptions too
    with pytest.raises(KeyError), catalog.serve() as failing:
        pid = failing.pid
        raise KeyError("boom")
    assert pid is not None and not psutil.pid_exists(pid)


def test_taken_port_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = LocalCatalog(tmp_path / "catalog").serve(port=port)
        with pytest.raises(CatalogError, match=str(port)):
            server.start()
        assert server.pid is None


def test_a_dying_server_reports_rustacs_message(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "catalog")
    catalog.add(_derived(1))
    # a file broken behind the catalog's back (add() itself never writes one)
    (catalog.directory / "items" / "hand-made.ndjson").write_text('{"type": "Feature", "id": \n')
    server = catalog.serve()
    with pytest.raises(CatalogError, match="exited with status") as caught:
        server.start()
    assert "EOF while parsing" in caught.value.what
    assert caught.value.fix is not None and str(catalog.directory) in caught.value.fix
    assert server.pid is None


def test_invalid_options_and_missing_rustac(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="backend"):
        LocalStacServer(tmp_path, backend="postgres")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="port"):
        LocalStacServer(tmp_path, port=70000)
    with pytest.raises(CatalogError, match="no port yet"):
        _ = LocalStacServer(tmp_path).url
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "empty-bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(CatalogError, match="rustac") as caught:
        LocalCatalog(tmp_path / "catalog").serve().start()
    assert caught.value.fix is not None and "pip install rustac" in caught.value.fix


def test_serve_forever_picks_up_added_items(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "catalog")
    catalog.add(_derived(2))
    ready: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_forever,
        args=(catalog.directory,),
        kwargs={"port": 0, "poll_s": 0.1, "on_ready": ready.put, "stop": stop},
        daemon=True,
    )
    thread.start()
    try:
        url = ready.get(timeout=30)
        assert url.startswith("http://127.0.0.1:")
        assert sorted(_search_ids(url)) == ["derived-000", "derived-001"]
        catalog.add(_derived(1, start=2))
        deadline = time.monotonic() + 15
        while "derived-002" not in (ids := _safe_search_ids(url)):
            assert time.monotonic() < deadline, f"new item never served: {ids}"
            time.sleep(0.1)
        assert sorted(ids) == ["derived-000", "derived-001", "derived-002"]
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
    children = psutil.Process(os.getpid()).children(recursive=True)
    assert not [p for p in children if f"127.0.0.1:{port}" in " ".join(_cmdline(p))]


def _safe_search_ids(url: str) -> list[str]:
    # The server restarts between polls: a refused connection just means "not yet".
    try:
        return _search_ids(url)
    except (APIError, requests.RequestException):
        return []


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_geoparquet_holds_every_item(served: tuple[LocalCatalog, LocalStacServer]) -> None:
    catalog, _ = served
    # DLR's string numbers and other providers' numbers share one column in the parquet file
    path = server_module._write_parquet(catalog)
    back = rustac.read_sync(path)
    assert sorted(item["id"] for item in back["features"]) == sorted(
        item["id"] for item in catalog.items()
    )
    assert server_module._write_parquet(catalog) == path  # reused while the version holds


def test_duckdb_backend_answers_like_memory(
    served: tuple[LocalCatalog, LocalStacServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog, memory = served
    reason = server_module._duckdb_unavailable()
    if reason is not None:
        # Offline without DuckDB's spatial extension: a clear error, and "auto" keeps to memory.
        with pytest.raises(CatalogError, match="DuckDB") as caught:
            catalog.serve(backend="duckdb").start()
        assert caught.value.fix is not None and "memory" in caught.value.fix
        monkeypatch.setattr(server_module, "DUCKDB_MIN_ITEMS", 5)
        with catalog.serve(backend="auto") as auto:
            assert auto.active_backend == "memory"
            assert len(_search_ids(auto.url, bbox=SIM_BBOX, datetime=SIM_TIME)) == 3
        return
    with catalog.serve(backend="duckdb") as duck:
        assert duck.active_backend == "duckdb"
        for query in QUERIES:
            assert sorted(_search_ids(duck.url, **query)) == sorted(
                _search_ids(memory.url, **query)
            ), query
