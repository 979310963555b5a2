"""spectraflow: imaging-spectroscopy and multispectral scenes to georeferenced map products.

spectraflow finds NASA EMIT, DLR EnMAP and Copernicus Sentinel-2 scenes in STAC catalogs, writes
them into chunked Zarr cubes, runs PyTorch models over tiles of those cubes and blends the
results into seamless products (Cloud-Optimized GeoTIFF + STAC item). Each stage lives in its
own subpackage (``spectraflow.catalog``, ``spectraflow.cube``, ``spectraflow.inference``, ...);
this top-level module only exposes the package version.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("spectraflow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
