"""Reading product files over HTTP range requests from a real loopback server."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio

from spectraflow.errors import AuthError, SceneFormatError
from spectraflow.sensors.access import open_binary, rasterio_source
from spectraflow.simulate import simulate_scene


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range GET support, as object stores serve them."""

    ranges_served = 0

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        start, stop = int(match[1]), int(match[2])
        size = path.stat().st_size
        stop = min(stop, size - 1)
        data = path.read_bytes()[start : stop + 1]
        type(self).ranges_served += 1
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(data)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("served")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_netcdf_slices_over_http_equal_the_local_file(served):
    url, root = served
    scene = simulate_scene("emit", out=root, size="tiny")
    local = scene.files["reflectance"]
    href = f"{url}/{local.relative_to(root).as_posix()}"
    before = RangeHandler.ranges_served
    with open_binary(href) as remote, h5py.File(remote, "r") as h5, h5py.File(local, "r") as ref:
        np.testing.assert_array_equal(
            h5["reflectance"][5:9, 3:7, :], ref["reflectance"][5:9, 3:7, :]
        )
    assert RangeHandler.ranges_served > before  # read by ranges, not by a plain GET


def test_geotiff_over_http_equals_the_local_file(served):
    url, root = served
    scene = simulate_scene("enmap", out=root, size="tiny")
    local = scene.files["image"]
    href = f"{url}/{local.relative_to(root).as_posix()}"
    with rasterio_source(href) as source, rasterio.open(source) as remote:
        window = ((3, 10), (4, 12))
        with rasterio.open(local) as ref:
            np.testing.assert_array_equal(remote.read(7, window=window), ref.read(7, window=window))
            assert remote.crs == ref.crs and remote.transform == ref.transform


def test_missing_remote_file_is_a_scene_format_error(served):
    url, _ = served
    with pytest.raises(SceneFormatError, match="404"):
        open_binary(f"{url}/nothing-here.nc")


def test_missing_local_file_is_a_scene_format_error(tmp_path):
    with pytest.raises(SceneFormatError, match="not found"):
        open_binary(str(tmp_path / "absent.nc"))


def test_protected_href_without_login_fails_before_any_request(tmp_path, monkeypatch):
    monkeypatch.setenv("NETRC", str(tmp_path / "empty-netrc"))
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    href = "https://data.lpdaac.earthdatacloud.nasa.gov/lp-prod-protected/EMITL2ARFL.001/x/x.nc"
    with pytest.raises(AuthError, match=r"urs\.earthdata\.nasa\.gov"):
        open_binary(href)
