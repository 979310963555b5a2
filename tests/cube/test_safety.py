"""Visible only when complete, idempotent, resumable after a real kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import dask
import fsspec
import numpy as np
import pytest
import xarray as xr
import zarr

from spectraflow.cube import open_cube, write_cube
from spectraflow.errors import CubeError

CONFTEST = Path(__file__).with_name("conftest.py")
ATTRS = {"item": "file:///scenes/X/item.json"}
PROGRESS = "_spectraflow_progress"


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _shards(root: Path) -> dict[str, int]:
    return {k: v for k, v in _files(root).items() if "/c/" in k}


def test_incomplete_cube_is_refused_and_resumed(
    tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]
) -> None:
    url = tmp_path / "c.zarr"
    seen: list[tuple[int, int]] = []

    def fail_late(origin: tuple[int, int]) -> None:
        seen.append(origin)
        if origin == (64, 32):
            raise OSError("source read failed")

    with dask.config.set(scheduler="synchronous"), pytest.raises(OSError, match="source read"):
        write_cube(make_map_dataset(chunks=16, on_block=fail_late), url, chunks=16, shards=32)
    assert (url / "zarr.json").exists()
    with pytest.raises(CubeError, match="incomplete") as info:
        open_cube(url)
    assert "re-run" in str(info.value) and str(url) in str(info.value)

    write_cube(make_map_dataset(chunks=16), url, chunks=16, shards=32)
    xr.testing.assert_identical(
        open_cube(url),
        open_cube(
            write_cube(make_map_dataset(chunks=16), tmp_path / "clean.zarr", chunks=16, shards=32)
        ),
    )
    assert not (url / PROGRESS).exists()


def test_interrupted_template_starts_over(
    tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]
) -> None:
    url = tmp_path / "c.zarr"

    def fail(origin: tuple[int, int]) -> None:
        raise OSError("source read failed")

    with pytest.raises(OSError):
        write_cube(make_map_dataset(chunks=16, on_block=fail), url, chunks=16, shards=32)
    (url / PROGRESS / "zarr.json").unlink()  # as if killed before the template was complete
    reads: list[tuple[int, int]] = []
    write_cube(make_map_dataset(chunks=16, on_block=reads.append), url, chunks=16, shards=32)
    assert len(reads) == 5 * 4  # every source block read again (16-pixel blocks of 70 × 60)
    assert open_cube(url).reflectance.shape == (6, 70, 60)


def test_remote_url_through_fsspec(
    tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]
) -> None:
    fs = fsspec.filesystem("memory")
    url = f"memory://cubes/{tmp_path.name}/c.zarr"
    try:
        with pytest.raises(OSError), dask.config.set(scheduler="synchronous"):
            write_cube(
                make_map_dataset(chunks=16, on_block=_fail_at((32, 32))), url, chunks=16, shards=32
            )
        with pytest.raises(CubeError, match="incomplete"):
            open_cube(url)
        assert write_cube(make_map_dataset(), url, chunks=16, shards=32) == url  # resumed
        cube = open_cube(url)
        np.testing.assert_array_equal(
            cube.reflectance.values, make_map_dataset().reflectance.values
        )
        assert cube.rio.crs == make_map_dataset().rio.crs
        with pytest.raises(CubeError, match="other inputs"):
            write_cube(make_map_dataset(), url, attrs=ATTRS, chunks=16, shards=32)
        write_cube(make_map_dataset(), url, attrs=ATTRS, chunks=16, shards=32, overwrite=True)
        assert open_cube(url).attrs["item"] == ATTRS["item"]
        assert not fs.exists(f"/cubes/{tmp_path.name}/c.zarr/{PROGRESS}")
    finally:
        fs.rm(f"/cubes/{tmp_path.name}", recursive=True)


def _fail_at(origin: tuple[int, int]) -> Callable[[tuple[int, int]], None]:
    def check(block: tuple[int, int]) -> None:
        if block == origin:
            raise OSError("source read failed")

    return check


def test_open_refuses_what_is_not_a_cube(tmp_path: Path) -> None:
    with pytest.raises(CubeError, match="no cube at this path"):
        open_cube(tmp_path / "missing.zarr")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    with pytest.raises(CubeError, match="not a Zarr v3 group"):
        open_cube(tmp_path / "notes")
    xr.Dataset({"a": ("x", np.arange(3))}).to_zarr(
        tmp_path / "plain.zarr", zarr_format=3, consolidated=False
    )
    with pytest.raises(CubeError, match="not written by spectraflow"):
        open_cube(tmp_path / "plain.zarr")


def test_never_writes_over_foreign_data(
    tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]
) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    for overwrite in (False, True):
        with pytest.raises(CubeError, match="not a Zarr v3 group"):
            write_cube(make_map_dataset(), tmp_path / "notes", overwrite=overwrite)
    assert os.listdir(tmp_path / "notes") == ["a.txt"]
    (tmp_path / "empty").mkdir()  # an empty directory is a fine place for a cube
    open_cube(write_cube(make_map_dataset(), tmp_path / "empty"))


def test_same_write_again_is_a_no_op(
    tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]
) -> None:
    url = write_cube(make_map_dataset(), tmp_path / "c.zarr", attrs=ATTRS, chunks=16, shards=32)
    before = _files(Path(url))
    assert len(_shards(Path(url))) >= 12
    reads: list[tuple[int, int]] = []
    time.sleep(0.01)
    again = write_cube(
        make_map_dataset(on_block=reads.append), url, attrs=ATTRS, chunks=16, shards=32
    )
    assert again == url
    assert reads == []  # not a pixel read
    assert _files(Path(url)) == before  # not a byte rewritten (same files, same mtimes)


def test_different_write_is_refused_unless_overwrite(
    tmp_path: Path, make_map_dataset: Callable[..., xr.Dataset]
) -> None:
    url = write_cube(make_map_dataset(), tmp_path / "c.zarr", attrs=ATTRS, chunks=16, shards=32)
    other = {"item": "file:///scenes/Y/item.json"}
    for kwargs in ({"attrs": other}, {"attrs": ATTRS, "encoding_dtype": "int16"}):
        with pytest.raises(CubeError, match="other inputs or with other parameters"):
            write_cube(make_map_dataset(), url, chunks=16, shards=32, **kwargs)  # type: ignore[arg-type]
    assert open_cube(url).attrs["item"] == ATTRS["item"]

    write_cube(make_map_dataset(), url, attrs=other, chunks=16, shards=32, overwrite=True)
    cube = open_cube(url)
    assert cube.attrs["item"] == other["item"]
    np.testing.assert_array_equal(cube.reflectance.values, make_map_dataset().reflectance.values)
    assert sorted(os.listdir(tmp_path)) == ["c.zarr"]  # no staging or retired copy left


_WRITER = textwrap.dedent(
    """
    import runpy, sys
    import dask
    from spectraflow.cube import write_cube
    build = runpy.run_path(sys.argv[1])["map_dataset"]
    ds = build((4, 64, 64), chunks=16, slow_s=0.25)
    with dask.config.set(scheduler="synchronous"):  # one region after the other, slowly
        write_cube(ds, sys.argv[2], attrs={"item": "x"}, chunks=16, shards=16)
    """
)


def test_killed_write_resumes_to_the_clean_result(
    tmp_path: Path,
    make_map_dataset: Callable[..., xr.Dataset],
    kill_process_when: Callable[..., None],
) -> None:
    url = tmp_path / "killed.zarr"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(CONFTEST), str(url)])
    progress = url / PROGRESS / "y_x"
    kill_process_when(
        proc, lambda: progress.is_dir() and len(os.listdir(progress)) >= 3, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL

    done = set(os.listdir(progress))
    assert 3 <= len(done) < 16
    with pytest.raises(CubeError, match="incomplete"):
        open_cube(url)
    kept = {k: v for k, v in _shards(url).items() if _region_of(k) in done}
    assert len(kept) >= 3 * 2  # reflectance and valid shards at least (scl/aod can be all fill)

    reads: list[tuple[int, int]] = []
    build = make_map_dataset
    write_cube(
        build((4, 64, 64), chunks=16, on_block=reads.append),
        url,
        attrs={"item": "x"},
        chunks=16,
        shards=16,
    )
    assert len(reads) == 16 - len(done)  # only the missing regions were read and written
    after = _shards(url)
    assert all(after[k] == v for k, v in kept.items())  # finished shards untouched
    assert not (url / PROGRESS).exists() and not list(url.rglob("*.partial"))

    clean = write_cube(
        build((4, 64, 64), chunks=16),
        tmp_path / "clean.zarr",
        attrs={"item": "x"},
        chunks=16,
        shards=16,
    )
    resumed, reference = open_cube(url), open_cube(clean)
    xr.testing.assert_identical(resumed, reference)  # values, coords and attrs
    np.testing.assert_array_equal(resumed.reflectance.values, reference.reflectance.values)
    assert resumed.attrs == reference.attrs
    assert (url / "zarr.json").read_bytes() == (Path(clean) / "zarr.json").read_bytes()
    for name in ("reflectance", "valid", "scl", "aod550"):
        meta = "zarr.json"
        assert (url / name / meta).read_bytes() == (Path(clean) / name / meta).read_bytes()
        a, b = zarr.open_array(url / name, mode="r"), zarr.open_array(Path(clean) / name, mode="r")
        np.testing.assert_array_equal(a[...], b[...])  # the stored (encoded) values


def _region_of(shard_key: str) -> str:
    """Progress name ("row_col" in shards) of a shard file key such as reflectance/c/0/2/3."""
    parts = shard_key.split("/")
    return f"{parts[-2]}_{parts[-1]}"
