"""HTTP for STAC APIs: pystac-client I/O that retries, with backoff, every page it reads.

Real catalogs fail in the middle of long searches: CMR-STAC answers 502/429 under load,
connections drop, a page arrives cut short. pystac-client pages by following ``next`` links, so
retrying each page request resumes a search where it broke instead of starting it over.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from spectraflow.catalog.redaction import redact

__all__ = ["RETRY_STATUS", "RetryingStacIO"]

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth another try; other errors (400, 404 …) are the caller's to fix."""

_MAX_DELAY_S = 60.0
# Connection refused or reset, timeouts, and bodies cut off mid-transfer.
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class RetryingStacIO(StacApiIO):
    """A :class:`~pystac_client.stac_api_io.StacApiIO` that retries transient failures.

    Parameters
    ----------
    max_retries
        Further attempts after the first failure of one request.
    backoff_s
        First delay; doubled at every attempt, with ±25 % jitter, capped at 60 s. A
        ``Retry-After`` header from the server takes precedence.
    timeout_s
        Seconds to wait for a connection and for each read.
    sleep
        Waits between attempts (tests pass a recorder).
    """

    def __init__(
        self,
        *,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # urllib3's own retries would not cover a page cut short, so they are off.
        super().__init__(timeout=timeout_s, max_retries=0)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.retries = 0  # how many retries this object made, for reports and tests

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), _MAX_DELAY_S)
            except ValueError:
                try:
                    wait = parsedate_to_datetime(retry_after).timestamp() - time.time()
                    return min(max(wait, 0.0), _MAX_DELAY_S)
                except (TypeError, ValueError):
                    pass
        base = min(self.backoff_s * 2**attempt, _MAX_DELAY_S)
        return base * random.uniform(0.75, 1.25)

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        """Send one request, retrying 429/5xx, timeouts and broken connections."""
        method = (method or "GET").upper()
        body = method in ("POST", "PUT", "PATCH")
        attempt = 0
        while True:
            retry_after: str | None = None
            try:
                response = self.session.request(
                    method,
                    href,
                    headers=headers,
                    params=None if body else parameters,
                    json=parameters if body else None,
                    timeout=self.timeout,
                )
            except _TRANSIENT as exc:
                problem = type(exc).__name__
            else:
                if 200 <= response.status_code < 300:
                    return response.content.decode("utf-8")
                if response.status_code not in RETRY_STATUS:
                    raise APIError.from_response(response)
                problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After")
            if attempt >= self.max_retries:
                raise APIError(f"{problem} from {redact(href)} after {attempt + 1} attempts")
            delay = self._delay(attempt, retry_after)
            log.info("%s from %s; retry %d in %.1f s", problem, redact(href), attempt + 1, delay)
            self._sleep(delay)
            attempt += 1
            self.retries += 1

    def read_json(self, source: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Read and parse one document, reading it again when it arrives cut short."""
        attempt = 0
        while True:
            text = self.read_text(source, *args, **kwargs)
            try:
                return dict(json.loads(text))
            except json.JSONDecodeError:
                if attempt >= self.max_retries:
                    raise APIError(
                        f"unreadable JSON from {redact(str(source))} after {attempt + 1} attempts"
                    ) from None
                log.info("broken JSON page from %s; reading it again", redact(str(source)))
                self._sleep(self._delay(attempt, None))
                attempt += 1
                self.retries += 1
