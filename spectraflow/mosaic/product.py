"""Map products: Cloud-Optimized GeoTIFFs, a STAC item, a quicklook and optionally Zarr.

:func:`write_product` writes, under ``out/<name>/``::

    <name>.tif           main layer COG (class map: uint8 + colour table; continuous: float32)
    <name>.tif.aux.xml   class maps: GDAL category names (PAM sidecar, read by GDAL and QGIS)
    <name>_<var>.tif     one COG per other variable (confidence, uncertainty, ...)
    <name>.png           quicklook with a legend
    <name>.zarr          optional: every layer as Zarr v3
    <name>.json          the STAC item (asset hrefs relative to it)

Layers are read block by block (dask arrays one batch of windows at a time), written into
temporary tiled GeoTIFFs, then turned into COGs by GDAL's COG driver: tiled 512, zstd or deflate,
internal overviews (mode for classes, average for continuous values), nodata 0 for classes
and NaN for floats. (rio-cogeo's ``cog_translate`` re-creates the bands through a WarpedVRT and
drops band units, and setting them afterwards breaks the COG layout; its ``cog_validate`` checks
the result in the tests.)

Class names: GeoTIFF has no field for GDAL category names, so they live in the standard PAM
sidecar ``<name>.tif.aux.xml`` (``<CategoryNames>``, which GDAL and QGIS read), and inside the COG
itself as the band description (``class: 1=water, 2=...``) and CF band tags ``flag_values``,
``flag_meanings``, ``flag_colors``; the STAC item has them in the classification extension.

Everything is written into a hidden sibling ``.<name>.*.partial`` that is renamed to
``out/<name>`` once complete; an existing product of that name is moved aside into
``.<name>.*.old`` only then, and deleted once the new one is in place (and published). A write
interrupted by a crash leaves these behind: the next write of that name puts a lone old product
back at ``out/<name>`` and deletes the rest, but not those another process is still writing
(each holds an advisory lock on its directories).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError
from rasterio.windows import Window

from spectraflow.errors import ProductError
from spectraflow.mosaic.layers import (
    BLOCK,
    BandStats,
    BlockStats,
    GridSpec,
    LayerSpec,
    MapClass,
    block_windows,
    plan_layers,
)
from spectraflow.mosaic.quicklook import write_quicklook
from spectraflow.mosaic.stac_item import ZARR_MEDIA_TYPE, AssetSpec, build_item, clean_href

__all__ = ["Product", "SourceRef", "write_product"]

logger = logging.getLogger(__name__)

_BATCH_BYTES = 256 * 2**20  # block windows computed together, all variables
_CACHE_BYTES = 512 * 2**20  # GDAL block cache while writing
_LOW_DISK_BYTES = 64 * 2**20  # less free space than this after a failed write: the disk is full
_IO_FIX = "free disk space under the output directory, or write to another one with enough room"


@dataclass(frozen=True)
class SourceRef:
    """A scene that went into a product.

    Attributes
    ----------
    scene_id
        The scene's id.
    sensor
        ``"emit"``, ``"enmap"`` or ``"sentinel2"``.
    datetime
        Acquisition time, ISO 8601 (UTC when no offset is given).
    item_href
        The source STAC item (query strings are stripped before use).
    """

    scene_id: str
    sensor: str
    datetime: str
    item_href: str | None = None


@dataclass(frozen=True)
class Product:
    """A written product: its id, main COG, STAC item, quicklook and every asset by key."""

    id: str
    cog: Path
    item: Path
    quicklook: Path | None
    assets: Mapping[str, Path]


def write_product(
    layers: xr.Dataset,
    *,
    out: str | os.PathLike[str],
    name: str,
    sources: Sequence[SourceRef] = (),
    zarr: bool = False,
    quicklook: bool = True,
    compress: Literal["zstd", "deflate"] = "zstd",
    catalog: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Product:
    """Write ``layers`` as a map product under ``out/<name>/`` (layout: module docstring).

    Parameters
    ----------
    layers
        Variables on one north-up grid, dims ``(y, x)``, with ``.rio.crs`` and
        ``.rio.transform()`` set; numpy- or dask-backed (read one block window at a time). The
        first variable is the main layer: a class map (integers, 0 = no data, attrs
        ``flag_values``, ``flag_meanings``, ``flag_colors``) or a continuous map (floats, NaN =
        no data, attr ``units``). Dataset attrs ``model``, ``model_version``, ``model_sha256``
        and ``policy`` go into the item's lineage.
    out
        Directory that receives the product directory ``<name>``.
    name
        Product name: directory, file stem and STAC item id.
    sources
        The scenes the product was made from (time range, ``derived_from`` links).
    zarr
        Also write every layer as ``<name>.zarr``.
    quicklook
        Also draw ``<name>.png``.
    compress
        COG compression.
    catalog
        A :class:`~spectraflow.catalog.store.LocalCatalog` directory to publish the item into.
    progress
        Called as ``progress(done, total)`` after each block window and each finishing step.

    Returns
    -------
    Product
        Paths of what was written, at their final place.

    Raises
    ------
    ProductError
        The layers are invalid (nothing is written then), or writing failed (disk full,
        permissions); ``out/<name>`` then holds the previous product, if there was one
        (also one that an interrupted write had left aside).
    CatalogError
        Publishing failed; the product is rolled back too.
    """
    grid, plan = plan_layers(layers, name)
    _check_sources(sources)
    if compress not in ("zstd", "deflate"):
        raise ProductError(f"unknown compression {compress!r}", where="compress", fix="use zstd")
    target = None
    if catalog is not None:
        from spectraflow.catalog.store import LocalCatalog

        target = LocalCatalog(catalog)  # checks the path before anything is written
    out_dir = Path(out).expanduser().absolute()
    final = out_dir / name
    windows = block_windows(grid.shape, _chunks(layers, plan))
    total = len(windows) + len(plan) + 1
    tick = _Ticker(progress, total)
    staging: Path | None = None
    with contextlib.ExitStack() as claims:  # our directories' locks, until they are settled
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            _recover(final)
            staging = _side_dir(final, ".partial", claims)
            staging.chmod(0o755)  # mkdtemp's 0o700 would hide the product from other users
            with _gdal_env():
                assets = _write_all(layers, grid, plan, windows, staging, name, sources, tick,
                                    zarr=zarr, quicklook=quicklook, compress=compress)  # fmt: skip
            holder = _swap_in(staging, final, claims)
            staging = None
        except (OSError, RasterioError, CPLE_BaseError) as error:
            raise _io_error(error, staging or out_dir, out_dir) from error
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        try:
            if target is not None:
                target.add([final / f"{name}.json"])
        except BaseException:
            _roll_back(final, holder, claims)
            raise
        if holder is not None:
            shutil.rmtree(holder, ignore_errors=True)
    tick()
    paths = {key: final / filename for key, filename in assets.items()}
    logger.info("wrote product %s (%d assets)", final, len(paths))
    return Product(
        id=name,
        cog=paths["data"],
        item=final / f"{name}.json",
        quicklook=paths.get("quicklook"),
        assets=paths,
    )


def _check_sources(sources: Sequence[SourceRef]) -> None:
    for index, source in enumerate(sources):
        if not isinstance(source, SourceRef):
            what = f"sources[{index}] is a {type(source).__name__}, not a SourceRef"
            raise ProductError(what, where="sources", fix="pass SourceRef objects")
        try:
            datetime.fromisoformat(source.datetime.replace("Z", "+00:00"))
        except (AttributeError, ValueError) as error:
            raise ProductError(
                f"source time {source.datetime!r} is not ISO 8601",
                where=f"sources[{index}].datetime",
                fix="give times like 2024-06-12T17:47:42Z",
            ) from error


def _chunks(layers: xr.Dataset, plan: Sequence[LayerSpec]) -> tuple[tuple[int, ...], ...] | None:
    for layer in plan:
        chunks = layers[layer.var].chunks
        if chunks is not None:
            return tuple(tuple(int(c) for c in axis) for axis in chunks)
    return None


# --- writing -----------------------------------------------------------------------------------


class _Ticker:
    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def __call__(self, steps: int = 1) -> None:
        self.done += steps
        if self.callback is not None:
            self.callback(self.done, self.total)


@contextmanager
def _gdal_env() -> Iterator[None]:
    # GDAL settings for this write only: a bounded block cache (rasterio takes an integer
    # GDAL_CACHEMAX as bytes, not GDAL's megabytes) and threads for compression and overviews.
    with rasterio.Env(GDAL_CACHEMAX=_CACHE_BYTES, GDAL_NUM_THREADS="ALL_CPUS"):
        yield


def _write_all(
    layers: xr.Dataset,
    grid: GridSpec,
    plan: Sequence[LayerSpec],
    windows: Sequence[Window],
    staging: Path,
    name: str,
    sources: Sequence[SourceRef],
    tick: _Ticker,
    *,
    zarr: bool,
    quicklook: bool,
    compress: str,
) -> dict[str, str]:
    """Write every file into ``staging``; return asset key → file name."""
    work = staging / ".work"
    work.mkdir()
    tags = _dataset_tags(layers.attrs, name)
    stats = _write_blocks(layers, grid, plan, windows, work, tags, tick)
    assets: dict[str, str] = {}
    specs: list[AssetSpec] = []
    for layer in plan:
        _to_cog(work / layer.filename, staging / layer.filename, layer, compress)
        tick()
        assets[layer.key] = layer.filename
        specs.append(AssetSpec.of_layer(layer, stats[layer.var]))
    shutil.rmtree(work)
    main = plan[0]
    extra: list[tuple[str, str, str, tuple[str, ...], str]] = []  # key, file, type, roles, title
    if main.kind == "class":
        aux = f"{main.filename}.aux.xml"
        _write_category_names(staging / aux, main.classes)
        extra.append(("categories", aux, "application/xml", ("metadata",), "GDAL category names"))
    if quicklook:
        png = f"{name}.png"
        write_quicklook(staging / main.filename, staging / png, classes=main.classes,
                        units=main.units, title=main.var)  # fmt: skip
        extra.append(("quicklook", png, "image/png", ("overview", "visual"), "Quicklook"))
    if zarr:
        store = f"{name}.zarr"
        _write_zarr(layers, plan, staging, staging / store)
        extra.append(("zarr", store, ZARR_MEDIA_TYPE, ("data",), "All layers as Zarr v3"))
    for key, filename, media_type, roles, title in extra:
        assets[key] = filename
        specs.append(AssetSpec(key, f"./{filename}", media_type, roles, title=title))
    from spectraflow import __version__

    item = build_item(
        item_id=name,
        crs=grid.crs,
        transform=grid.transform,
        shape=grid.shape,
        assets=specs,
        sources=sources,
        attrs=layers.attrs,
        software_version=__version__,
    )
    doc = item.to_dict(include_self_link=False, transform_hrefs=False)
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    (staging / f"{name}.json").write_text(text, encoding="utf-8")
    return assets


def _write_blocks(
    layers: xr.Dataset,
    grid: GridSpec,
    plan: Sequence[LayerSpec],
    windows: Sequence[Window],
    work: Path,
    tags: Mapping[str, str],
    tick: _Ticker,
) -> dict[str, BandStats]:
    """Write all layers into tiled GeoTIFFs in ``work``, one batch of block windows at a time."""
    import dask

    accumulators = {layer.var: BlockStats(layer.kind) for layer in plan}
    largest = max(int(w.width) * int(w.height) for w in windows)
    batch = max(1, _BATCH_BYTES // (largest * 4 * len(plan)))
    sources = [_source(layers[layer.var]) for layer in plan]
    files = [rasterio.open(work / layer.filename, "w", **_profile(grid, layer)) for layer in plan]
    try:
        for dst, layer in zip(files, plan, strict=True):
            _describe(dst, layer, tags)
        for start in range(0, len(windows), batch):
            chunk = windows[start : start + batch]
            lazy = [_slice(src, w) for w in chunk for src in sources]
            blocks = dask.compute(*lazy)  # shared upstream work is computed once per batch
            for index, window in enumerate(chunk):
                for number, layer in enumerate(plan):
                    block = layer.cast(np.asarray(blocks[index * len(plan) + number]))
                    accumulators[layer.var].update(block)
                    files[number].write(block, 1, window=window)
                tick()
        results = {layer.var: accumulators[layer.var].result() for layer in plan}
        for dst, layer in zip(files, plan, strict=True):
            dst.update_tags(1, **results[layer.var].gdal_tags())
    finally:
        for dst in files:
            dst.close()
    return results


def _source(array: xr.DataArray) -> Any:
    # dask arrays are sliced lazily and computed in batches; other backends read per window.
    return array.data if array.chunks is not None else array.variable


def _slice(source: Any, window: Window) -> Any:
    (r0, r1), (c0, c1) = window.toranges()
    block = source[r0:r1, c0:c1]
    return block.values if isinstance(block, xr.Variable) else block


def _profile(grid: GridSpec, layer: LayerSpec) -> dict[str, Any]:
    height, width = grid.shape
    return {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": layer.dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": layer.nodata,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "zstd",
        "zstd_level": 1,  # a scratch file: fast beats small
        "bigtiff": "if_safer",
    }


def _describe(dst: Any, layer: LayerSpec, tags: Mapping[str, str]) -> None:
    dst.set_band_description(1, layer.description)
    dst.update_tags(**tags, OVERVIEW_RESAMPLING=layer.overview_resampling)  # as rio-cogeo does
    if layer.units:
        dst.set_band_unit(1, layer.units)
    if layer.kind == "class":
        colours: dict[int, tuple[int, ...]] = {0: (0, 0, 0, 0)}  # palettes have no alpha: nodata
        for cls in layer.classes:
            colours[cls.value] = (*(int(cls.color[i : i + 2], 16) for i in (1, 3, 5)), 255)
        dst.write_colormap(1, colours)
        dst.update_tags(
            1,
            flag_values=" ".join(str(c.value) for c in layer.classes),
            flag_meanings=" ".join(c.name for c in layer.classes),
            flag_colors=" ".join(c.color for c in layer.classes),
        )


def _to_cog(source: Path, target: Path, layer: LayerSpec, compress: str) -> None:
    rasterio.shutil.copy(
        source,
        target,
        driver="COG",
        blocksize=BLOCK,
        compress=compress.upper(),
        predictor="YES" if layer.kind == "continuous" else "NO",
        overview_resampling=layer.overview_resampling,
        overviews="AUTO",
        bigtiff="IF_SAFER",
        num_threads="ALL_CPUS",
        statistics="AUTO",  # keeps ours (from the blocks, in the band tags); NO drops them
    )


def _write_category_names(path: Path, classes: Sequence[MapClass]) -> None:
    """A GDAL PAM sidecar holding the band's category names (index = pixel value)."""
    names = dict.fromkeys(range(max(c.value for c in classes) + 1), "")
    names[0] = "no data"
    names.update({c.value: c.name for c in classes})
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    categories = ET.SubElement(band, "CategoryNames")
    for value in sorted(names):
        ET.SubElement(categories, "Category").text = names[value]
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n")


def _write_zarr(layers: xr.Dataset, plan: Sequence[LayerSpec], staging: Path, path: Path) -> None:
    """Every layer as Zarr v3, read back from the COGs (the layers are not computed again)."""
    import rioxarray

    from spectraflow.cube.write import quiet_zarr_warnings

    variables = {}
    for layer in plan:
        opened = rioxarray.open_rasterio(
            staging / layer.filename, chunks={"y": 1024, "x": 1024}, mask_and_scale=False
        )
        assert isinstance(opened, xr.DataArray)
        array = opened.squeeze("band", drop=True)
        attrs = {k: _attr_value(v) for k, v in layers[layer.var].attrs.items()}
        variables[layer.var] = xr.DataArray(array.data, dims=("y", "x"), attrs=attrs)
        spatial_ref = array.coords["spatial_ref"]
    coords = {"y": array.coords["y"].values, "x": array.coords["x"].values}
    ds = xr.Dataset(variables, coords={**coords, "spatial_ref": spatial_ref})
    for var in ds.data_vars:
        ds[var].attrs["grid_mapping"] = "spatial_ref"
    ds.attrs.update({k: _attr_value(v) for k, v in layers.attrs.items()})
    # Floats are masked by NaN; class maps stay integers (0 = no data, as in predictions stores).
    fills = {layer.var: None if layer.kind == "class" else layer.nodata for layer in plan}
    with quiet_zarr_warnings():
        ds.to_zarr(
            path,
            mode="w-",
            zarr_format=3,
            consolidated=True,
            encoding={v: {"_FillValue": f} for v, f in fills.items()},
        )


def _attr_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_href(value) if "://" in value else value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_attr_value(v) for v in value]
    return value


def _dataset_tags(attrs: Mapping[str, Any], name: str) -> dict[str, str]:
    tags = {"product": name}
    for key, value in attrs.items():
        value = _attr_value(value)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            tags[str(key)] = str(value)
    return tags


# --- publishing --------------------------------------------------------------------------------


def _side_dir(final: Path, suffix: str, claims: contextlib.ExitStack) -> Path:
    """A new hidden sibling ``.<name>.<random><suffix>`` of ``final``, locked while ``claims``."""
    path = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent))
    claims.enter_context(_claimed(path))
    return path


def _swap_in(staging: Path, final: Path, claims: contextlib.ExitStack) -> Path | None:
    """Rename ``staging`` to ``final``; return the directory that holds the old ``final``."""
    holder = None
    if final.exists():
        holder = _side_dir(final, ".old", claims)
        os.replace(final, holder / final.name)
    try:
        os.replace(staging, final)
    except OSError:
        if holder is not None:
            _restore(holder, final)
        raise
    return holder


def _roll_back(final: Path, holder: Path | None, claims: contextlib.ExitStack) -> None:
    # Moved aside first: a crash while deleting it leaves a leftover, not a half product.
    doomed = _side_dir(final, ".partial", claims)
    os.replace(final, doomed / final.name)
    if holder is not None:
        _restore(holder, final)
    shutil.rmtree(doomed, ignore_errors=True)


def _restore(holder: Path, final: Path) -> None:
    os.replace(holder / final.name, final)
    holder.rmdir()


def _recover(final: Path) -> None:
    """Restore a lone old product of ``final`` and delete what interrupted writes left of it."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[^.]+\.(partial|old)")  # as _side_dir
    with contextlib.ExitStack() as claims:  # skip what live writers hold
        mine = [p for p in sorted(final.parent.iterdir()) if pattern.fullmatch(p.name)]
        leftovers = [p for p in mine if claims.enter_context(_claimed(p))]
        olds = [p for p in leftovers if p.suffix == ".old" and (p / final.name).is_dir()]
        if olds and not final.exists():  # a crash came between moving it aside and swapping
            newest = max(olds, key=lambda p: p.stat().st_mtime_ns)
            os.replace(newest / final.name, final)
            logger.warning("restored %s, left aside by an interrupted write", final)
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _claimed(path: Path) -> Iterator[bool]:
    """Hold an advisory lock on directory ``path``; yield False when another writer holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; leftovers count as abandoned
        yield True
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone meanwhile, or not a directory
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = True
    except OSError:
        locked = False
    try:
        yield locked  # held until the descriptor closes
    finally:
        os.close(fd)


def _io_error(error: BaseException, where: Path, out_dir: Path) -> ProductError:
    from spectraflow.catalog.redaction import redact

    number = getattr(error, "errno", None)
    text = redact(str(error)) or type(error).__name__
    full = number in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or any(
        words in text.lower() for words in ("no space", "file too large", "disk full")
    )
    with contextlib.suppress(OSError):  # GDAL often loses the errno: look at the disk itself
        full = full or shutil.disk_usage(out_dir).free < _LOW_DISK_BYTES
    what = "the disk is full" if full else "could not write the product"
    fix = _IO_FIX if full else "check that the output directory is writable and has free space"
    return ProductError(f"{what}: {text}", where=str(where), fix=fix)
