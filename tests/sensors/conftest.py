"""A loopback HTTP server with range requests, as object stores serve product files."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range GET support; counts the ranges it served."""

    ranges_served = 0

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start, stop = int(match[1]), min(int(match[2]), size - 1)
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read(stop - start + 1)
        type(self).ranges_served += 1
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(data)


@contextmanager
def _serve(root: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def range_server() -> Callable[[Path], AbstractContextManager[str]]:
    """``range_server(root)``: a context manager serving ``root``, yielding its base URL."""
    return _serve


@pytest.fixture(scope="session")
def ranges_served() -> Callable[[], int]:
    """How many range requests the servers have answered so far."""
    return lambda: RangeHandler.ranges_served
