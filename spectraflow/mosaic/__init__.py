"""Mosaics and map products: predictions stores → one georeferenced product (COG + STAC item).

- :func:`mosaic` opens predictions stores (EMIT orthorectified with its GLT), plans or takes a
  target grid, reprojects and composites them block by block (policies :data:`POLICIES`) and
  writes the product with :func:`write_product`.
- :func:`mosaic_layers` is the lazy composite itself (an ``xarray.Dataset`` of dask arrays).
- :class:`TargetGrid` and :func:`target_grid` describe and plan grids (pure);
  :func:`open_prediction` opens one store on its map grid.
"""

from __future__ import annotations

from spectraflow.mosaic.composite import POLICIES
from spectraflow.mosaic.grid import TargetGrid, target_grid
from spectraflow.mosaic.mosaic import mosaic, mosaic_layers, sources_of
from spectraflow.mosaic.product import Product, SourceRef, write_product
from spectraflow.mosaic.sources import open_prediction

__all__ = [
    "POLICIES",
    "Product",
    "SourceRef",
    "TargetGrid",
    "mosaic",
    "mosaic_layers",
    "open_prediction",
    "sources_of",
    "target_grid",
    "write_product",
]
