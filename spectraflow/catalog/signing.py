"""Planetary Computer signing: SAS tokens for Azure blob hrefs, right before each read.

Signed hrefs are for one read and are never stored: :func:`unsigned` strips a signature (Azure
SAS, S3 presigned, CloudFront) so that scenes and items keep the plain href.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from spectraflow.catalog.auth import BLOB_SUFFIX, PC_KEY_ENV, find_credentials
from spectraflow.errors import AuthError, CatalogError

__all__ = ["SasSigner", "unsigned"]

logger = logging.getLogger(__name__)

_PC_KEY_HEADER = "Ocp-Apim-Subscription-Key"
_PC_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"


def unsigned(href: str) -> str:
    """``href`` without its signature: the query is dropped when it carries one.

    Parameters
    ----------
    href
        A URL, signed (Azure SAS ``sig=``, S3 presigned ``X-Amz-Signature=``, CloudFront
        ``Signature=``) or not.

    Returns
    -------
    str
        The URL without the signed query; other URLs unchanged.
    """
    parts = urlsplit(href)
    if not parts.query:
        return href
    keys = {key.lower() for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if keys & {"sig", "x-amz-signature", "signature"}:
        return urlunsplit(parts._replace(query=""))
    return href


def _blob_container(href: str) -> tuple[str, str] | None:
    """(account, container) of an Azure blob URL, or None for any other href."""
    parts = urlsplit(href)
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() not in ("http", "https") or not host.endswith(BLOB_SUFFIX):
        return None
    account = host[: -len(BLOB_SUFFIX)]
    container = parts.path.lstrip("/").split("/", 1)[0]
    if not account or "." in account or not container:
        return None
    return account, container


class SasSigner:
    """Sign Azure blob hrefs of the Planetary Computer with SAS tokens, right before a read.

    Tokens come from ``GET {token_url}/{account}/{container}`` and are cached per
    (account, container) until ``refresh_margin_s`` before they expire. Safe to share between
    threads: one token request per container at a time.

    Parameters
    ----------
    token_url
        The SAS token endpoint.
    subscription_key
        Planetary Computer subscription key, sent as ``Ocp-Apim-Subscription-Key`` to the token
        endpoint only; default env ``PC_SDK_SUBSCRIPTION_KEY`` (anonymous when unset).
    timeout
        Seconds per token request.
    refresh_margin_s
        Seconds before expiry at which a cached token is replaced.
    clock
        Returns the current time, timezone-aware; default UTC now (inject one in tests).

    Examples
    --------
    >>> signer = SasSigner()
    >>> href = signer.sign(scene.assets["B04"])  # doctest: +SKIP
    >>> # after HTTP 403 on a read: signer.invalidate(href); href = signer.sign(href)
    """

    _attempts = 4
    _backoff_s = 0.25
    _max_wait_s = 10.0

    def __init__(
        self,
        *,
        token_url: str = _PC_TOKEN_URL,
        subscription_key: str | None = None,
        timeout: float = 30.0,
        refresh_margin_s: float = 300.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._token_url = token_url.rstrip("/")
        if subscription_key is None:
            found = find_credentials("planetary-computer")
            subscription_key = found.token if found is not None else None
        self._key = subscription_key
        self._timeout = timeout
        self._margin = timedelta(seconds=refresh_margin_s)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._fetch_locks: dict[tuple[str, str], threading.Lock] = {}

    def __repr__(self) -> str:
        keyed = "with" if self._key else "without"
        return f"SasSigner(token_url={self._token_url!r}, {keyed} subscription key)"

    def sign(self, href: str) -> str:
        """``href`` with a valid SAS token in its query; non-blob hrefs unchanged.

        Parameters
        ----------
        href
            An asset href; an already signed one is signed afresh from its unsigned form.

        Returns
        -------
        str
            The signed href. Use it for one read; never store it.

        Raises
        ------
        CatalogError
            The token endpoint failed (an :class:`AuthError` when it refused the key).
        """
        key = _blob_container(href)
        if key is None:
            return href
        token = self._token(key)
        parts = urlsplit(unsigned(href))
        query = f"{parts.query}&{token}" if parts.query else token
        return urlunsplit(parts._replace(query=query))

    def invalidate(self, href: str) -> None:
        """Forget the cached token of ``href``'s container, e.g. after HTTP 403 on a read.

        Parameters
        ----------
        href
            Any href of the container, signed or not; non-blob hrefs are ignored.
        """
        key = _blob_container(href)
        if key is not None:
            with self._lock:
                self._tokens.pop(key, None)

    def _cached(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            hit = self._tokens.get(key)
        if hit is not None and self._clock() < hit[1] - self._margin:
            return hit[0]
        return None

    def _token(self, key: tuple[str, str]) -> str:
        token = self._cached(key)
        if token is not None:
            return token
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            # Another thread may have fetched it while this one waited.
            token = self._cached(key)
            if token is not None:
                return token
            token, expiry = self._fetch(key)
            with self._lock:
                self._tokens[key] = (token, expiry)
            return token

    def _fetch(self, key: tuple[str, str]) -> tuple[str, datetime]:
        url = f"{self._token_url}/{key[0]}/{key[1]}"
        headers = {_PC_KEY_HEADER: self._key} if self._key else {}
        fix = "check network access to the token URL, or retry later"
        failure = "no answer"
        # No redirects: the subscription key must not travel to another host.
        with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
            for attempt in range(self._attempts):
                wait = self._backoff_s * 2**attempt * (1 + random.random() / 4)
                try:
                    response = client.get(url, headers=headers)
                except httpx.TransportError as exc:
                    failure = type(exc).__name__
                else:
                    if response.status_code == 200:
                        return self._parse(response, url)
                    if response.status_code in (401, 403):
                        raise AuthError(
                            f"the Planetary Computer token endpoint refused the request "
                            f"(HTTP {response.status_code})",
                            where=url,
                            fix=f"check or unset the subscription key in {PC_KEY_ENV}",
                        )
                    failure = f"HTTP {response.status_code}"
                    if response.status_code != 429 and response.status_code < 500:
                        break
                    wait = max(wait, _retry_after(response, self._max_wait_s))
                if attempt + 1 < self._attempts:
                    logger.info("SAS token request to %s failed (%s), retrying", url, failure)
                    time.sleep(wait)
        raise CatalogError(f"could not get a SAS token ({failure})", where=url, fix=fix)

    def _parse(self, response: httpx.Response, url: str) -> tuple[str, datetime]:
        try:
            body = response.json()
            token = body["token"]
            expiry = datetime.fromisoformat(body["msft:expiry"])
            if not isinstance(token, str) or not token.lstrip("?"):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            # The body may hold a token: never quote it.
            raise CatalogError(
                "unexpected SAS token response: want JSON with 'token' and 'msft:expiry'",
                where=url,
                fix="check that token_url points at a Planetary Computer SAS endpoint",
            ) from None
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        logger.debug("got a SAS token from %s, valid until %s", url, expiry.isoformat())
        return token.lstrip("?"), expiry


def _retry_after(response: httpx.Response, cap: float) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "0")), cap)
    except ValueError:
        return 0.0
