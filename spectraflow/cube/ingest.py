"""``ingest``: one scene into one cube, credentials checked before any byte is downloaded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from spectraflow.catalog.auth import check_credentials
from spectraflow.catalog.scene import Scene
from spectraflow.cube.write import write_cube
from spectraflow.sensors.access import is_remote, local_path
from spectraflow.sensors.read import open_scene

__all__ = ["cube_url", "ingest", "source_fingerprint"]

_EDGE = 2**20  # bytes hashed at each end of a local input


def cube_url(scene: Scene, out: str | os.PathLike[str]) -> str:
    """Where :func:`ingest` puts the cube of ``scene`` under ``out``: ``<out>/<scene id>.zarr``."""
    base = str(out)
    if "://" in base:
        return f"{base.rstrip('/')}/{scene.id}.zarr"
    return str(Path(base).expanduser().resolve() / f"{scene.id}.zarr")


def source_fingerprint(href: str) -> str:
    """A cheap checksum of an input: size plus BLAKE2b of its first and last MiB.

    Hashing whole products (gigabytes) would double the ingest's reads; size and both ends
    catch re-processed, truncated and replaced files. Remote inputs are recorded by href only.
    """
    if is_remote(href):
        return "remote"
    path = local_path(href)
    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as file:
        digest.update(file.read(_EDGE))
        file.seek(max(size - _EDGE, 0))
        digest.update(file.read(_EDGE))
    return f"size={size};blake2b={digest.hexdigest()}"


def ingest(
    scene: Scene,
    *,
    out: str | os.PathLike[str],
    chunks: int = 256,
    resolution: int = 20,
    encoding_dtype: Literal["float32", "int16"] = "float32",
    overwrite: bool = False,
) -> str:
    """Write ``scene`` into a Zarr v3 cube under ``out`` and return the cube URL.

    Ingesting the same scene with the same parameters again is a no-op; an interrupted ingest
    resumes, writing only the missing shards.

    Parameters
    ----------
    scene
        A scene from :func:`spectraflow.catalog.search` or :func:`~spectraflow.catalog.find_scene`.
    out
        Directory (or fsspec URL) that receives ``<scene id>.zarr``.
    chunks
        Spatial edge of the reader's dask chunks, in pixels.
    resolution
        Grid of Sentinel-2 cubes in metres (10 or 20); ignored for EMIT and EnMAP.
    encoding_dtype
        Storage of reflectance: float32, or int16 with a CF scale factor of 1e-4.
    overwrite
        Replace a cube written from other inputs or parameters instead of raising.

    Raises
    ------
    AuthError
        A remote input needs a login that is not set up (raised before any download).
    SceneFormatError
        An input is missing, truncated, corrupt or inconsistent with the item.
    CubeError
        Another cube is in the way and ``overwrite`` is false.
    """
    hrefs = list(scene.assets.values())
    check_credentials(hrefs, provider=scene.provider)
    ds = open_scene(scene, chunks=chunks, resolution=resolution)
    data_roles = [
        role for role in scene.assets if role.split(":")[0] in ("data", "mask", "uncertainty")
    ]
    attrs: dict[str, Any] = {
        "sensor": scene.sensor,
        "scene_id": scene.id,
        "provider": scene.provider,
        "collection": scene.collection,
        "datetime": scene.datetime.isoformat(),
        "source_item": scene.item_href,
        "source_assets": {role: scene.assets[role] for role in data_roles},
        "source_checksums": {role: source_fingerprint(scene.assets[role]) for role in data_roles},
        "ingest_parameters": {"chunks": chunks, "resolution": resolution},
    }
    return write_cube(
        ds, cube_url(scene, out), attrs=attrs, encoding_dtype=encoding_dtype, overwrite=overwrite
    )
