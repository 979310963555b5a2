"""Mosaics: several predictions stores reprojected and composited onto one target grid.

:func:`mosaic_layers` is the composite, lazy and block by block with bounded memory:

1. :func:`plan_mosaic` opens each store on its map grid
   (:func:`~spectraflow.mosaic.sources.open_prediction`; EMIT orthorectified lazily with its
   GLT), checks that the inputs can be composited together, orders them oldest → newest and
   takes or plans the target grid (:func:`~spectraflow.mosaic.grid.target_grid`).
2. :func:`~spectraflow.mosaic.blocks.composite_arrays` builds the dask graph: per output block,
   the overlapping stores' windows resampled onto it (nearest for classes, exact picks;
   bilinear for continuous values) and composited with the policy.

:func:`mosaic` writes the composite as a product (COG, STAC item, quicklook) with
:func:`spectraflow.mosaic.product.write_product`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import xarray as xr
from odc.geo.geobox import GeoBox

from spectraflow.errors import ConfigError
from spectraflow.mosaic.blocks import composite_arrays
from spectraflow.mosaic.composite import check_policy
from spectraflow.mosaic.grid import TargetGrid, target_grid
from spectraflow.mosaic.product import Product, SourceRef, write_product
from spectraflow.mosaic.sources import PredictionSource, check_compatible, load_source
from spectraflow.mosaic.stac_item import clean_href

__all__ = ["DEFAULT_BLOCK", "mosaic", "mosaic_layers", "plan_mosaic", "sources_of"]

DEFAULT_BLOCK = 1024
"""Edge of the output blocks (pixels): the dask chunks of the composite and its unit of work."""

_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def _checked_block(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ConfigError(
            f"block must be a positive number of pixels, got {block!r}",
            where="block",
            fix=f"pass e.g. block={DEFAULT_BLOCK}",
        )
    return block


def plan_mosaic(
    prediction_urls: Sequence[str | os.PathLike[str]],
    *,
    grid: TargetGrid | GeoBox | None = None,
    policy: str = "latest",
    crs: Any = None,
    resolution: float | None = None,
    bounds: Sequence[float] | None = None,
) -> tuple[list[PredictionSource], TargetGrid]:
    """Open and check the inputs and plan the target grid (nothing is read but metadata).

    Returns
    -------
    (sources, grid)
        The inputs ordered oldest → newest (ties keep the given order) and the target grid.

    Raises
    ------
    ConfigError
        No inputs, an unknown policy, ``grid`` together with ``crs``/``resolution``/``bounds``,
        or a bad ``crs``/``resolution``/``bounds``.
    CubeError
        An input is not a complete store.
    ProductError
        An input has no georeferenced grid, or the inputs cannot be composited together (the
        message names the store).
    """
    check_policy(policy)
    urls = [prediction_urls] if isinstance(prediction_urls, str | os.PathLike) else prediction_urls
    if not urls:
        raise ConfigError(
            "no predictions to mosaic",
            where="prediction_urls",
            fix="pass one or more predictions stores (spectraflow predict writes them)",
        )
    if grid is not None and (crs is not None or resolution is not None or bounds is not None):
        raise ConfigError(
            "grid and crs/resolution/bounds both given",
            where="grid",
            fix="pass either a TargetGrid or crs/resolution/bounds, not both",
        )
    if isinstance(grid, GeoBox):
        grid = TargetGrid.from_geobox(grid)
    if grid is not None and not isinstance(grid, TargetGrid):
        raise ConfigError(
            f"grid must be a TargetGrid or an odc-geo GeoBox, got {type(grid).__name__}",
            where="grid",
            fix="build it with spectraflow.mosaic.target_grid(...) or TargetGrid(...)",
        )
    sources = [load_source(u) for u in urls]
    check_compatible(sources, policy=policy)
    order = sorted(range(len(sources)), key=lambda i: (sources[i].datetime, i))
    sources = [sources[i] for i in order]
    if grid is None:
        grid = target_grid([s.grid for s in sources], crs=crs, resolution=resolution, bounds=bounds)
    return sources, grid


def _layer_attrs(src: PredictionSource, name: str) -> dict[str, Any]:
    drop = {"grid_mapping", "coordinates", "_FillValue", "missing_value"}
    return {k: v for k, v in src.data[name].attrs.items() if k not in drop}


def _common(sources: Sequence[PredictionSource], key: str) -> Any:
    values = {str(s.data.attrs.get(key)) for s in sources}
    return sources[0].data.attrs.get(key) if len(values) == 1 else None


def mosaic_layers(
    prediction_urls: Sequence[str | os.PathLike[str]],
    *,
    grid: TargetGrid | GeoBox | None = None,
    policy: str = "latest",
    block: int = DEFAULT_BLOCK,
    crs: Any = None,
    resolution: float | None = None,
    bounds: Sequence[float] | None = None,
) -> xr.Dataset:
    """The composite of predictions stores on one grid, lazy (dask), block by block.

    Parameters
    ----------
    prediction_urls
        Predictions stores (``predict_cube`` outputs) of one model, in any CRSs; EMIT's are
        orthorectified with their GLT.
    grid
        Target grid (a :class:`~spectraflow.mosaic.grid.TargetGrid` or an odc-geo GeoBox);
        default: :func:`~spectraflow.mosaic.grid.target_grid` of the inputs with ``crs``,
        ``resolution`` and ``bounds`` (target CRS units).
    policy
        ``"latest"``, ``"best-confidence"`` or ``"mean"`` (:mod:`spectraflow.mosaic.composite`).
    block
        Edge of the output blocks (pixels): the dask chunks of the result and the unit of work.

    Returns
    -------
    xarray.Dataset
        On the grid's ``(y, x)`` (pixel-centre coordinates) with ``.rio.crs`` and
        ``.rio.transform()`` set, dask arrays chunked ``(block, block)``. Class maps: ``class``
        (uint8, 0 = no data, attributes ``flag_values``/``flag_meanings``/``flag_colors``) then
        ``confidence`` (float32, NaN); continuous maps: the main layer (e.g.
        ``ch4_enhancement``, float32, NaN, attribute ``units``) then ``uncertainty``.

    Raises
    ------
    ConfigError, CubeError, ProductError
        See :func:`plan_mosaic`; and a bad ``block``.
    """
    block = _checked_block(block)
    sources, grid = plan_mosaic(
        prediction_urls, grid=grid, policy=policy, crs=crs, resolution=resolution, bounds=bounds
    )
    return _layers(sources, grid, policy=policy, block=block)


def _layers(
    sources: Sequence[PredictionSource], grid: TargetGrid, *, policy: str, block: int
) -> xr.Dataset:
    """:func:`mosaic_layers` of inputs already opened, checked and ordered."""
    main, second = composite_arrays(sources, grid, policy=policy, block=block)
    first = sources[0]
    names = (first.main, "confidence" if first.kind == "class" else "uncertainty")
    dims = ("y", "x")
    ds = xr.Dataset(
        {names[0]: (dims, main), names[1]: (dims, second)},
        coords={"y": grid.y_coords(), "x": grid.x_coords()},
    )
    for name in names:
        if name in first.data:
            ds[name].attrs.update(_layer_attrs(first, name))
    ds.attrs.update(
        policy=policy,
        model=_common(sources, "model"),
        model_version=_common(sources, "model_version"),
        model_sha256=_common(sources, "model_sha256"),
        scenes=[s.scene_id for s in sources],
    )
    ds.attrs = {k: v for k, v in ds.attrs.items() if v is not None}
    return ds.rio.write_crs(grid.crs.to_wkt()).rio.write_transform(grid.transform)


def sources_of(
    prediction_urls: Sequence[str | os.PathLike[str]] | Sequence[PredictionSource],
) -> list[SourceRef]:
    """One :class:`~spectraflow.mosaic.product.SourceRef` per input, in the given order."""
    out = []
    for item in prediction_urls:
        src = item if isinstance(item, PredictionSource) else load_source(item)
        href = src.data.attrs.get("source_item")
        out.append(
            SourceRef(
                scene_id=src.scene_id,
                sensor=str(src.data.attrs.get("sensor", "")),
                datetime=src.datetime.isoformat(),
                item_href=clean_href(str(href)) if href else None,
            )
        )
    return out


def _default_name(sources: Sequence[PredictionSource], policy: str) -> str:
    model = _common(sources, "model") or sources[0].main
    first, last = sources[0].datetime, sources[-1].datetime
    days = f"{first:%Y%m%d}" + ("" if first.date() == last.date() else f"-{last:%Y%m%d}")
    return _NAME_RE.sub("-", f"{model}_{days}_{policy}")


def mosaic(
    prediction_urls: Sequence[str | os.PathLike[str]],
    *,
    grid: TargetGrid | GeoBox | None = None,
    out: str | os.PathLike[str],
    policy: str = "latest",
    name: str | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    block: int = DEFAULT_BLOCK,
    catalog: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    **product_options: Any,
) -> Product:
    """Mosaic predictions stores onto one grid and write the product (COG, STAC item …).

    Parameters
    ----------
    prediction_urls
        Predictions stores of one model (see :func:`mosaic_layers`).
    grid, crs, resolution, bounds, policy, block
        As in :func:`mosaic_layers`.
    out
        Directory under which ``<name>/`` is written.
    name
        Product name and STAC item id; default ``<model>_<YYYYMMDD[-YYYYMMDD]>_<policy>``.
    catalog
        A local STAC catalog directory the item is also added to.
    progress
        Called with (blocks done, blocks in all) while writing.
    **product_options
        Passed to :func:`~spectraflow.mosaic.product.write_product` (``zarr``, ``quicklook``,
        ``compress``).

    Returns
    -------
    Product

    Raises
    ------
    ConfigError, CubeError, ProductError
        Bad arguments or inputs (see :func:`plan_mosaic`), found before anything is written.
    """
    block = _checked_block(block)
    sources, target = plan_mosaic(
        prediction_urls, grid=grid, policy=policy, crs=crs, resolution=resolution, bounds=bounds
    )
    layers = _layers(sources, target, policy=policy, block=block)
    return write_product(
        layers,
        out=out,
        name=name or _default_name(sources, policy),
        sources=sources_of(sources),
        catalog=catalog,
        progress=progress,
        **product_options,
    )
