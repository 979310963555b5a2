"""``open_scene``: the lazy reader Dataset of any supported scene, by its sensor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectraflow.errors import SceneFormatError

if TYPE_CHECKING:
    import xarray as xr

    from spectraflow.catalog.scene import Scene

__all__ = ["open_scene"]


def open_scene(scene: Scene, *, chunks: int = 256, resolution: int = 20) -> xr.Dataset:
    """Open ``scene`` lazily with its sensor's reader.

    ``resolution`` (metres, 10 or 20) applies to Sentinel-2 only; EMIT stays in sensor geometry
    and EnMAP on its 30 m grid.
    """
    if scene.sensor == "emit":
        from spectraflow.sensors.emit import open_emit

        return open_emit(scene, chunks=chunks)
    if scene.sensor == "enmap":
        from spectraflow.sensors.enmap import open_enmap

        return open_enmap(scene, chunks=chunks)
    if scene.sensor == "sentinel2":
        from spectraflow.sensors.sentinel2 import open_sentinel2

        return open_sentinel2(scene, chunks=chunks, resolution=resolution)
    raise SceneFormatError(
        f"no reader for sensor {scene.sensor!r}",
        where=f"scene {scene.id}",
        fix="spectraflow reads emit, enmap and sentinel2 scenes",
    )
