"""Open product files wherever they live: local paths, or HTTP(S) with the provider's login.

Readers never handle URLs themselves: they ask :func:`rasterio_source` for what to pass to
``rasterio.open`` (GeoTIFFs) and :func:`open_binary` for a seekable file object (netCDF through
h5py). Planetary Computer blobs are signed here, right before the read, and the signed URL lives
only in memory; credentials go into request headers, never into paths, logs or errors.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx
import rasterio

from spectraflow.errors import SceneFormatError

__all__ = ["RangeFile", "is_remote", "local_path", "open_binary", "rasterio_source"]

_BLOCK = 4 * 2**20  # bytes fetched per range request: few round trips, little waste


def is_remote(href: str) -> bool:
    """Whether ``href`` is an HTTP(S) URL rather than a local path or ``file://`` URL."""
    return urlsplit(href).scheme in ("http", "https")


def local_path(href: str) -> Path:
    """The local path of a plain path or ``file://`` URL."""
    parts = urlsplit(href)
    return Path(parts.path) if parts.scheme == "file" else Path(href)


@cache
def _signer() -> object:
    from spectraflow.catalog.signing import SasSigner

    return SasSigner()


def _auth(href: str) -> tuple[str, dict[str, str]]:
    """The URL to fetch (signed for Planetary Computer) and the headers that carry the login."""
    from spectraflow.catalog.auth import require_credentials, scheme_for_href
    from spectraflow.catalog.signing import SasSigner

    scheme = scheme_for_href(href)
    if scheme is None:
        return href, {}
    if scheme == "planetary-computer":
        signer = _signer()
        assert isinstance(signer, SasSigner)
        return signer.sign(href), {}
    return href, require_credentials(scheme, provider=scheme).headers()


@contextmanager
def rasterio_source(href: str) -> Iterator[str]:
    """What to pass to ``rasterio.open`` for ``href``, inside a GDAL environment with its login.

    Remote files are read through GDAL's ``/vsicurl/`` with range requests; cookies are kept
    for the session because NASA's login redirects set one.
    """
    if not is_remote(href):
        yield str(local_path(href))
        return
    url, headers = _auth(href)
    options: dict[str, str | bool] = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MULTIRANGE": "YES",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    }
    if headers:
        options["GDAL_HTTP_HEADERS"] = "\r\n".join(f"{k}: {v}" for k, v in headers.items())
        cookies = os.path.expanduser("~/.spectraflow/gdal-cookies.txt")
        options.update(GDAL_HTTP_COOKIEFILE=cookies, GDAL_HTTP_COOKIEJAR=cookies)
    with rasterio.Env(**options):
        yield url


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP range requests, fetched in 4 MiB blocks.

    h5py reads netCDF4 through it, so a spatial subset of a contiguous variable costs a few
    range requests instead of a whole-file download.
    """

    def __init__(self, href: str, *, client: httpx.Client | None = None) -> None:
        super().__init__()
        self._href = href  # unsigned: the one shown in errors
        self._url, headers = _auth(href)
        self._client = client or httpx.Client(
            headers=headers, follow_redirects=True, timeout=httpx.Timeout(60.0)
        )
        self._pos = 0
        self._blocks: dict[int, bytes] = {}
        self._size = self._content_length()

    def _content_length(self) -> int:
        response = self._client.head(self._url)
        if response.status_code >= 400 or "content-length" not in response.headers:
            raise SceneFormatError(
                f"cannot read the file over HTTP (status {response.status_code})",
                where=self._href,
                fix="check the href and your login for this provider",
            )
        return int(response.headers["content-length"])

    def _block(self, index: int) -> bytes:
        if index not in self._blocks:
            start = index * _BLOCK
            stop = min(start + _BLOCK, self._size) - 1
            response = self._client.get(self._url, headers={"Range": f"bytes={start}-{stop}"})
            if response.status_code != 206 or len(response.content) != stop - start + 1:
                raise SceneFormatError(
                    f"range request failed (status {response.status_code})",
                    where=self._href,
                    fix="the server must support HTTP range requests; retry later",
                )
            if len(self._blocks) > 64:  # keep at most 256 MiB cached
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[index] = response.content
        return self._blocks[index]

    def readable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """Always True: any offset is one range request away."""
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position; nothing is fetched until the next read."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        """The current position in bytes."""
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the cached blocks, fetching the missing ones."""
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(self._size - self._pos, 0))
        done = 0
        while done < wanted:
            index, offset = divmod(self._pos + done, _BLOCK)
            chunk = self._block(index)[offset : offset + wanted - done]
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        self._pos += done
        return done

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
        super().close()


def open_binary(href: str) -> BinaryIO:
    """A seekable binary file object for ``href`` (local path, ``file://`` or HTTP(S))."""
    if not is_remote(href):
        path = local_path(href)
        if not path.is_file():
            raise SceneFormatError(
                "file not found", where=str(path), fix="check the scene's asset hrefs"
            )
        return path.open("rb")
    return io.BufferedReader(RangeFile(href), buffer_size=2**16)
