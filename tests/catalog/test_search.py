"""``search`` against a real rustac STAC API on loopback, directly and through a faulty proxy."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from spectraflow.catalog import search
from spectraflow.catalog.search import deduplicate
from spectraflow.errors import CatalogError, QueryError

PERMIAN_BBOX = (-103.75, 31.85, -103.45, 32.05)  # as in conftest: around the "permian" preset
DATES = ("2024-06-12", "2024-06-27")


def test_finds_every_simulated_scene_of_all_sensors(loaded_catalog):
    scenes = search(PERMIAN_BBOX, DATES[0], DATES[1], providers=[loaded_catalog.provider()])
    simulated = {(s.sensor, s.datetime) for s in loaded_catalog.scenes}
    assert {(s.sensor, s.datetime) for s in scenes} == simulated
    assert len(scenes) == 6  # the earth-search-l2a copy of the first Sentinel-2 scene is merged
    assert [s.datetime for s in scenes] == sorted(s.datetime for s in scenes)
    assert {s.sensor for s in scenes} == {"emit", "enmap", "sentinel2"}
    assert loaded_catalog.elsewhere.id not in {s.id for s in scenes}


def test_duplicate_acquisition_keeps_the_preferred_collection(loaded_catalog):
    scenes = search(
        PERMIAN_BBOX, DATES[0], DATES[0], "sentinel2", providers=[loaded_catalog.provider()]
    )
    assert len(scenes) == 1
    assert scenes[0].collection == "sentinel-2-c1-l2a"


def test_time_range_and_sensor_filter(loaded_catalog):
    scenes = search(
        PERMIAN_BBOX, DATES[1], DATES[1], ["enmap"], providers=[loaded_catalog.provider()]
    )
    assert [s.sensor for s in scenes] == ["enmap"]
    assert scenes[0].datetime.date().isoformat() == DATES[1]


def test_max_cloud_is_applied_on_the_client(loaded_catalog):
    every = search(PERMIAN_BBOX, DATES[0], DATES[1], providers=[loaded_catalog.provider()])
    threshold = sorted(s.cloud_cover for s in every if s.cloud_cover is not None)[2]
    clear = search(
        PERMIAN_BBOX, DATES[0], DATES[1], max_cloud=threshold, providers=[loaded_catalog.provider()]
    )
    assert clear and all(s.cloud_cover is not None and s.cloud_cover <= threshold for s in clear)
    assert len(clear) < len(every) or all(s.cloud_cover == threshold for s in every)


def test_limit_returns_the_earliest(loaded_catalog):
    every = search(PERMIAN_BBOX, DATES[0], DATES[1], providers=[loaded_catalog.provider()])
    first = search(PERMIAN_BBOX, DATES[0], DATES[1], limit=2, providers=[loaded_catalog.provider()])
    assert [s.id for s in first] == [s.id for s in every[:2]]


def test_real_items_are_found_by_their_own_aoi(loaded_catalog):
    # the real DLR EnMAP item lies in Mozambique/South Africa, 2024-06-30
    scenes = search(
        (32.6, -25.2, 32.9, -24.95),
        "2024-06-01",
        "2024-07-31",
        "enmap",
        providers=[loaded_catalog.provider()],
    )
    assert [s.id for s in scenes] == [
        "ENMAP01-____L2A-DT0000080454_20240630T082045Z_001_V010402_20240701T122237Z"
    ]
    assert scenes[0].bands.wavelengths[0] > 400  # nm


def test_geojson_and_wkt_aoi_give_the_same_answer(loaded_catalog):
    x0, y0, x1, y1 = PERMIAN_BBOX
    wkt = f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"
    geojson = {
        "type": "Polygon",
        "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
    }
    provider = [loaded_catalog.provider()]
    a = search(wkt, DATES[0], DATES[1], providers=provider)
    b = search(geojson, DATES[0], DATES[1], providers=provider)
    assert [s.id for s in a] == [s.id for s in b] and len(a) == 6


def test_antimeridian_aoi_finds_nothing_here_but_searches_both_sides(loaded_catalog):
    scenes = search(
        (179.0, -20.0, -179.0, -10.0), DATES[0], DATES[1], providers=[loaded_catalog.provider()]
    )
    assert scenes == []


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"aoi": (31.9, -103.7, 32.1, -103.5)}, "aoi"),  # lat/lon swapped
        ({"aoi": (-103.7, 31.9, -103.7, 32.1)}, "aoi"),  # zero area
        ({"aoi": (-200, 31.9, -103.5, 32.1)}, "aoi"),
        ({"start": "2024-07-01", "end": "2024-06-01"}, "end"),
        ({"sensors": "landsat"}, "sensors"),
        ({"providers": ["nowhere"]}, "providers"),
        ({"max_cloud": 120.0}, "max_cloud"),
    ],
)
def test_bad_input_is_a_query_error_naming_the_parameter(kwargs, where):
    args = {"aoi": PERMIAN_BBOX, "start": DATES[0], "end": DATES[1], "sensors": "emit"} | kwargs
    with pytest.raises(QueryError) as err:
        search(args.pop("aoi"), args.pop("start"), args.pop("end"), args.pop("sensors"), **args)
    assert err.value.where == where
    assert err.value.fix


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_provider_is_a_catalog_error(loaded_catalog):
    dead = loaded_catalog.provider(max_retries=1).model_copy(
        update={"url": f"http://127.0.0.1:{_free_port()}"}
    )
    with pytest.raises(CatalogError, match="did not answer") as err:
        search(PERMIAN_BBOX, DATES[0], DATES[1], providers=[dead])
    assert "local" in str(err.value) and err.value.fix


class FaultyProxy:
    """Forwards to the STAC API but answers the planned faults first (one per request).

    Faults: an HTTP status (503, 429 …), "drop" (close the connection without an answer) or
    "truncate" (send half of the real body). Faults apply only to requests whose path starts
    with ``path`` and only once ``after`` such requests went through, so they can hit the middle
    of a paged search.
    """

    def __init__(
        self, upstream: str, faults: list[int | str], *, path: str, after: int = 0
    ) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = list(faults)
        self.path, self.after = path, after
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self, None)

            def do_POST(self) -> None:
                proxy.handle(self, self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, request: BaseHTTPRequestHandler, body: bytes | None) -> None:
        self.seen.append(request.path)
        if request.path.startswith(self.path):
            if self.after > 0:
                self.after -= 1
            elif self.faults:
                fault = self.faults.pop(0)
                if fault == "drop":
                    request.close_connection = True
                    request.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(fault, int):
                    request.send_response(fault)
                    request.send_header("Retry-After", "0")
                    request.send_header("Content-Length", "0")
                    request.end_headers()
                    return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=10)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(request.command, request.path, body=body, headers=headers)
        answer = conn.getresponse()
        # links must lead back through the proxy
        data = answer.read().replace(self.upstream.geturl().encode(), self.url.encode())
        if request.path.startswith(self.path) and self.faults and self.faults[0] == "truncate":
            self.faults.pop(0)
            data = data[: len(data) // 2]
        request.send_response(answer.status)
        request.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def proxy_factory(loaded_catalog) -> Iterator[object]:
    def make(faults: list[int | str], *, after: int = 0) -> FaultyProxy:
        return FaultyProxy(loaded_catalog.url, faults, path="/search", after=after)

    yield make  # type: ignore[misc]


@pytest.mark.parametrize(
    ("faults", "after"),
    [
        ([503, 429, 502], 0),  # the first page fails three times
        (["drop"], 2),  # the connection drops in the middle of paging
        (["truncate"], 3),  # a page arrives cut short
        ([504, "drop", 503], 1),
    ],
)
def test_paging_survives_transient_failures(loaded_catalog, proxy_factory, faults, after):
    expected = search(
        PERMIAN_BBOX, DATES[0], DATES[1], providers=[loaded_catalog.provider(page_size=1)]
    )
    with proxy_factory(faults, after=after) as proxy:
        provider = loaded_catalog.provider(page_size=1).model_copy(update={"url": proxy.url})
        scenes = search(PERMIAN_BBOX, DATES[0], DATES[1], providers=[provider])
    assert not proxy.faults  # every planned fault was served
    assert [s.id for s in scenes] == [s.id for s in expected]
    assert sum(path.startswith("/search") for path in proxy.seen) > 6  # it really paged


def test_paging_gives_up_after_the_retry_budget(loaded_catalog, proxy_factory):
    with proxy_factory([503] * 10, after=2) as proxy:
        provider = loaded_catalog.provider(page_size=1, max_retries=3)
        provider = provider.model_copy(update={"url": proxy.url})
        with pytest.raises(CatalogError, match="503"):
            search(PERMIAN_BBOX, DATES[0], DATES[1], providers=[provider])
    assert len(proxy.faults) == 6  # 1 try + 3 retries


def test_deduplicate_across_providers_keeps_the_first(loaded_catalog):
    provider = loaded_catalog.provider()
    scenes = search(PERMIAN_BBOX, DATES[0], DATES[0], "sentinel2", providers=[provider])
    twin = scenes[0].model_copy(
        update={
            "provider": "mirror",
            "id": "other-id",
            "datetime": scenes[0].datetime.replace(minute=0),
        }
    )
    assert deduplicate([scenes[0], twin]) == [scenes[0]]
    later = twin.model_copy(update={"datetime": datetime(2024, 6, 17, tzinfo=UTC)})
    assert deduplicate([scenes[0], later]) == [scenes[0], later]
