"""Zarr v3 cubes: one georeferenced, chunked and sharded group per scene.

- :func:`ingest` opens a :class:`~spectraflow.catalog.Scene` with its sensor's reader and writes
  its cube under a directory, recording provenance (source item, input checksums, parameters).
- :func:`write_cube` writes a reader Dataset (``spectraflow.sensors``) as a cube: template
  first, then shard-owning region writes, a completion marker last; idempotent and resumable.
- :func:`open_cube` opens a complete cube lazily with decoded float32 reflectance and a
  rioxarray-readable CRS, and refuses incomplete cubes with :class:`~spectraflow.errors.CubeError`.

Layout rules are in :mod:`spectraflow.cube.layout`, georeferencing attributes in
:mod:`spectraflow.cube.georef`, the write plan in :mod:`spectraflow.cube.prepare`.
"""

from __future__ import annotations

from spectraflow.cube.ingest import ingest
from spectraflow.cube.read import open_cube
from spectraflow.cube.write import write_cube

__all__ = ["ingest", "open_cube", "write_cube"]
