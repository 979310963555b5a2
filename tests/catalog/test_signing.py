from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spectraflow.catalog.redaction import redact
from spectraflow.catalog.signing import SasSigner, unsigned
from spectraflow.errors import AuthError, CatalogError

# Real hrefs from ../shared/real-data (Planetary Computer items).
PC_HREF = (
    "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/47/X/ML/2024/04/19/"
    "S2B_MSIL2A_20240419T095549_N0510_R122_T47XML_20240419T123458.SAFE/GRANULE/"
    "L2A_T47XML_A037185_20240419T095549/IMG_DATA/R10m/T47XML_20240419T095549_B02_10m.tif"
)
PC_HREF_2 = PC_HREF.replace("B02_10m", "B03_10m")


def sas_token(n: int, *, start: datetime, expiry: datetime) -> str:
    """A token in the shape the Planetary Computer hands out, distinct per ``n``."""
    fmt = "%Y-%m-%dT%H%%3A%M%%3A%SZ"
    return (
        f"st={start.strftime(fmt)}&se={expiry.strftime(fmt)}&sp=rl&sv=2021-06-08&sr=c"
        "&skoid=c85c15d6-d1ae-42d4-af60-e2ca0f81359b&sktid=72f988bf-86f1-41af-91ab-2d7cd011db47"
        f"&skt={start.strftime(fmt)}&ske={expiry.strftime(fmt)}&sks=b&skv=2021-06-08"
        f"&sig=SeCrEtSiG{n}xyz%2Bab%3D"
    )


# --- a loopback Planetary Computer token endpoint ---------------------------------------------


@dataclass
class TokenServer:
    url: str
    # An hour from now, as the real endpoint answers; tests that move time inject a clock.
    expiry: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    )
    required_key: str | None = None
    fail_next: int = 0
    body: bytes | None = None  # overrides the JSON answer
    paths: list[str] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        return len(self.paths)


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    state = TokenServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.paths.append(self.path)
                state.keys.append(self.headers.get("Ocp-Apim-Subscription-Key"))
                n = len(state.paths)
                failing = state.fail_next > 0
                state.fail_next -= int(failing)
            if failing:
                self._answer(503, b'{"message": "service unavailable"}')
                return
            if state.required_key and state.keys[-1] != state.required_key:
                self._answer(401, b'{"message": "invalid subscription key"}')
                return
            if not self.path.startswith("/api/sas/v1/token/"):
                self._answer(404, b"{}")
                return
            token = sas_token(n, start=state.expiry - timedelta(hours=1), expiry=state.expiry)
            state.tokens.append(token)
            body = (
                state.body
                or json.dumps(
                    {"msft:expiry": state.expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": token}
                ).encode()
            )
            self._answer(200, body)

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/sas/v1/token"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback requests must not be sent to a proxy configured on the machine.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY", raising=False)


# --- SasSigner --------------------------------------------------------------------------------


def test_sign_appends_the_token(token_server: TokenServer) -> None:
    signer = SasSigner(token_url=token_server.url)
    signed = signer.sign(PC_HREF)
    assert signed == f"{PC_HREF}?{token_server.tokens[0]}"
    assert token_server.paths == ["/api/sas/v1/token/sentinel2l2a01/sentinel2-l2"]
    assert token_server.keys == [None]
    assert unsigned(signed) == PC_HREF


def test_token_reused_until_it_nears_expiry(token_server: TokenServer) -> None:
    clock = Clock(token_server.expiry - timedelta(hours=1))
    signer = SasSigner(token_url=token_server.url, clock=clock, refresh_margin_s=300)
    first = signer.sign(PC_HREF)
    # Same container, another blob, later but still outside the refresh margin: cached.
    clock.now = token_server.expiry - timedelta(seconds=301)
    second = signer.sign(PC_HREF_2)
    assert token_server.count == 1
    assert first.split("?")[1] == second.split("?")[1]
    # Inside the margin: a new token.
    clock.now = token_server.expiry - timedelta(seconds=299)
    token_server.expiry += timedelta(hours=1)
    third = signer.sign(PC_HREF)
    assert token_server.count == 2
    assert third == f"{PC_HREF}?{token_server.tokens[1]}"
    assert third != first


def test_other_container_gets_its_own_token(token_server: TokenServer) -> None:
    signer = SasSigner(token_url=token_server.url)
    signer.sign(PC_HREF)
    other = "https://landsateuwest.blob.core.windows.net/landsat-c2/level-2/x_SR_B4.TIF"
    signed = signer.sign(other)
    assert token_server.paths[1] == "/api/sas/v1/token/landsateuwest/landsat-c2"
    assert signed.endswith(token_server.tokens[1])


def test_invalidate_refetches(token_server: TokenServer) -> None:
    signer = SasSigner(token_url=token_server.url)
    first = signer.sign(PC_HREF)
    signer.invalidate(first)  # a reader got 403 with the signed href
    second = signer.sign(PC_HREF)
    assert token_server.count == 2
    assert second != first
    assert second.endswith(token_server.tokens[1])


def test_already_signed_href_is_resigned(token_server: TokenServer) -> None:
    signer = SasSigner(token_url=token_server.url)
    stale = f"{PC_HREF}?{sas_token(99, start=datetime(2020, 1, 1), expiry=datetime(2020, 1, 2))}"
    signed = signer.sign(stale)
    assert signed == f"{PC_HREF}?{token_server.tokens[0]}"
    assert signed.count("sig=") == 1
    assert signer.sign(signed) == signed


@pytest.mark.parametrize(
    "href",
    [
        "https://data.lpdaac.earthdatacloud.nasa.gov/lp-prod-protected/EMITL2ARFL.001/x/x.nc",
        "https://e84-earth-search-sentinel-data.s3.us-west-2.amazonaws.com/x/B02.tif",
        "/data/scenes/T47XML_B02.tif",
        "file:///data/scenes/T47XML_B02.tif",
        "s3://sentinel-cogs/sentinel-s2-l2a-cogs/x.tif",
        "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-2-l2a",
        "https://blob.core.windows.net.evil.example/c/x.tif",
    ],
)
def test_non_blob_hrefs_unchanged(token_server: TokenServer, href: str) -> None:
    signer = SasSigner(token_url=token_server.url)
    assert signer.sign(href) == href
    signer.invalidate(href)
    assert token_server.count == 0


def test_subscription_key_sent_from_env(
    token_server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_server.required_key = "pc-key-123"
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", "pc-key-123")
    signer = SasSigner(token_url=token_server.url)
    assert "pc-key-123" not in repr(signer)
    assert signer.sign(PC_HREF).endswith(token_server.tokens[0])
    assert token_server.keys == ["pc-key-123"]


def test_refused_subscription_key_is_auth_error(token_server: TokenServer) -> None:
    token_server.required_key = "right-key"
    signer = SasSigner(token_url=token_server.url, subscription_key="wrong-key-456")
    with pytest.raises(AuthError, match="HTTP 401") as info:
        signer.sign(PC_HREF)
    assert "wrong-key-456" not in str(info.value)
    assert "PC_SDK_SUBSCRIPTION_KEY" in str(info.value)
    assert token_server.count == 1  # no retry on a refusal


def test_503_then_success(token_server: TokenServer) -> None:
    token_server.fail_next = 1
    signer = SasSigner(token_url=token_server.url)
    signed = signer.sign(PC_HREF)
    assert token_server.count == 2
    assert signed == f"{PC_HREF}?{token_server.tokens[0]}"


def test_persistent_503_is_catalog_error(token_server: TokenServer) -> None:
    token_server.fail_next = 100
    signer = SasSigner(token_url=token_server.url)
    with pytest.raises(CatalogError, match="HTTP 503") as info:
        signer.sign(PC_HREF)
    assert token_server.count == SasSigner._attempts
    assert f"{token_server.url}/sentinel2l2a01/sentinel2-l2" in str(info.value)


def test_unreachable_token_url_is_catalog_error_without_token(
    token_server: TokenServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="spectraflow")
    good = SasSigner(token_url=token_server.url)
    good.sign(PC_HREF)
    token = token_server.tokens[0]
    # A port nobody listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead_url = f"http://127.0.0.1:{port}/api/sas/v1/token"
    signer = SasSigner(token_url=dead_url)
    with pytest.raises(CatalogError) as info:
        signer.sign(f"{PC_HREF}?{token}")
    message = str(info.value)
    assert dead_url in message
    assert "sig=" not in message and "SeCrEtSiG" not in message
    assert "SeCrEtSiG" not in caplog.text
    assert "sig=" not in caplog.text


def test_bad_token_response_does_not_quote_body(token_server: TokenServer) -> None:
    token_server.body = b'{"token": "st=x&sig=LeakedSig%3D"}'  # no msft:expiry
    with pytest.raises(CatalogError, match="msft:expiry") as info:
        SasSigner(token_url=token_server.url).sign(PC_HREF)
    assert "LeakedSig" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_concurrent_signing_fetches_once(token_server: TokenServer) -> None:
    signer = SasSigner(token_url=token_server.url)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        results.append(signer.sign(PC_HREF))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert token_server.count == 1
    assert set(results) == {f"{PC_HREF}?{token_server.tokens[0]}"}


# --- unsigned / redact signed URLs ------------------------------------------------------------

S3_PRESIGNED = (
    "https://lp-prod-protected.s3.us-west-2.amazonaws.com/EMITL2ARFL.001/x/x.nc"
    "?A-userid=jdoe&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=ASIAXYZSECRETCRED%2F20240612%2Fus-west-2%2Fs3%2Faws4_request"
    "&X-Amz-Date=20240612T170000Z&X-Amz-Expires=3600"
    "&X-Amz-Security-Token=FwoGZXIvYXdzSECRETSESSION%2F%2F%2Fwire"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=0123abcdSECRETSIGNATURE"
)
CLOUDFRONT = (
    "https://d1234.cloudfront.net/enmap/x.tif?Expires=1718211600"
    "&Signature=SECRETcfSig~abc__&Key-Pair-Id=SECRETKPID"
)


def test_unsigned_strips_signatures_only() -> None:
    pc_signed = f"{PC_HREF}?{sas_token(1, start=datetime(2024, 1, 1), expiry=datetime(2024, 1, 2))}"
    assert unsigned(pc_signed) == PC_HREF
    assert unsigned(S3_PRESIGNED) == S3_PRESIGNED.split("?")[0]
    assert unsigned(CLOUDFRONT) == CLOUDFRONT.split("?")[0]
    plain = "https://geoservice.dlr.de/eoc/ogc/stac/v1/search?collections=ENMAP_HSI_L2A&limit=10"
    assert unsigned(plain) == plain
    assert unsigned(PC_HREF) == PC_HREF


def test_redact_pc_sas_url() -> None:
    token = sas_token(7, start=datetime(2024, 6, 12, 17), expiry=datetime(2024, 6, 12, 18))
    line = f"GET {PC_HREF}?{token} -> 403"
    out = redact(line)
    assert "SeCrEtSiG" not in out
    assert "c85c15d6" not in out and "72f988bf" not in out
    for param in ("sig", "se", "st", "skoid", "sktid", "skt", "ske", "sks", "skv"):
        assert f"&{param}=***" in out or f"?{param}=***" in out
    assert out.startswith(f"GET {PC_HREF}?st=***")
    assert "sp=rl" in out and "sr=c" in out and out.endswith(" -> 403")
    assert redact(out) == out


def test_redact_s3_presigned_and_cloudfront() -> None:
    out = redact(f"download failed: {S3_PRESIGNED}")
    for secret in ("ASIAXYZSECRETCRED", "SECRETSESSION", "SECRETSIGNATURE"):
        assert secret not in out
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in out and "X-Amz-Expires=3600" in out
    assert "lp-prod-protected.s3.us-west-2.amazonaws.com/EMITL2ARFL.001/x/x.nc" in out
    cf = redact(CLOUDFRONT)
    assert "SECRETcfSig" not in cf and "SECRETKPID" not in cf
    assert "Expires=1718211600" in cf
