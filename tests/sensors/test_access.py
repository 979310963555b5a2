"""Reading product files over HTTP range requests from a real loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio

from spectraflow.errors import AuthError, SceneFormatError
from spectraflow.sensors.access import open_binary, rasterio_source
from spectraflow.simulate import simulate_scene


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, range_server) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("served")
    with range_server(root) as url:
        yield url, root


def test_netcdf_slices_over_http_equal_the_local_file(served, ranges_served):
    url, root = served
    scene = simulate_scene("emit", out=root, size="tiny")
    local = scene.files["reflectance"]
    href = f"{url}/{local.relative_to(root).as_posix()}"
    before = ranges_served()
    with open_binary(href) as remote, h5py.File(remote, "r") as h5, h5py.File(local, "r") as ref:
        np.testing.assert_array_equal(
            h5["reflectance"][5:9, 3:7, :], ref["reflectance"][5:9, 3:7, :]
        )
    assert ranges_served() > before  # read by ranges, not by a plain GET


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
