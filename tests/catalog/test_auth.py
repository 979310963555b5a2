from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from spectraflow.catalog.auth import (
    Credentials,
    SasSigner,
    check_credentials,
    find_credentials,
    redact,
    require_credentials,
    scheme_for_href,
    unsigned,
)
from spectraflow.errors import AuthError, CatalogError

# Real hrefs from ../shared/real-data (EMIT UMM-G, DLR item, Planetary Computer items).
EMIT_HREF = (
    "https://data.lpdaac.earthdatacloud.nasa.gov/lp-prod-protected/EMITL2ARFL.001/"
    "EMIT_L2A_RFL_001_20230316T045133_2307503_005/EMIT_L2A_RFL_001_20230316T045133_2307503_005.nc"
)
EMIT_S3 = (
    "s3://lp-prod-protected/EMITL2ARFL.001/EMIT_L2A_RFL_001_20230316T045133_2307503_005/"
    "EMIT_L2A_RFL_001_20230316T045133_2307503_005.nc"
)
DLR_HREF = (
    "https://download.geoservice.dlr.de/ENMAP/files/L2A/2024/06/30/DT0000080454/01/"
    "ENMAP01-____L2A-DT0000080454_20240630T082045Z_001_V010402_20240701T122237Z-"
    "SPECTRAL_IMAGE_COG.TIF"
)
PC_HREF = (
    "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/47/X/ML/2024/04/19/"
    "S2B_MSIL2A_20240419T095549_N0510_R122_T47XML_20240419T123458.SAFE/GRANULE/"
    "L2A_T47XML_A037185_20240419T095549/IMG_DATA/R10m/T47XML_20240419T095549_B02_10m.tif"
)
PC_HREF_2 = PC_HREF.replace("B02_10m", "B03_10m")
EARTH_SEARCH_HREF = (
    "https://e84-earth-search-sentinel-data.s3.us-west-2.amazonaws.com/"
    "sentinel-2-c1-l2a/47/X/ML/2024/4/S2B_T47XML_20240419T095549_L2A/B02.tif"
)

ED_PASSWORD = "ed-Pa55w0rd!"
DLR_PASSWORD = "dlr-s3cr3t#"
ED_TOKEN = "eyJ0eXAiOiJKV1QiLCJvcmlnaW4iOiJFYXJ0aGRhdGEgTG9naW4ifQ.payload.signature"


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
        EMIT_HREF,
        EARTH_SEARCH_HREF,
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


# --- unsigned / redact ------------------------------------------------------------------------

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


def test_redact_userinfo_and_headers() -> None:
    assert redact("https://user:secret@host/x") == "https://***@host/x"
    assert redact("see https://ghp_tok3n@github.com/a/b.git and a@b.org") == (
        "see https://***@github.com/a/b.git and a@b.org"
    )
    creds = Credentials("earthdata", token=ED_TOKEN, source="EARTHDATA_TOKEN")
    out = redact(f"request headers: {creds.headers()}")
    assert ED_TOKEN not in out and "Bearer ***" in out
    basic = Credentials("dlr", username="jdoe", password=DLR_PASSWORD).headers()
    out = redact(f"headers={basic}")
    assert basic["Authorization"].split()[1] not in out and "Basic ***" in out
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact("Ocp-Apim-Subscription-Key: k123") == "Ocp-Apim-Subscription-Key: ***"
    assert (
        redact("https://example.com/a?token=abc&page=2") == "https://example.com/a?token=***&page=2"
    )
    plain = "searched https://cmr.earthdata.nasa.gov/stac/LPCLOUD/search?limit=100 in 2.1 s"
    assert redact(plain) == plain


# --- credentials ------------------------------------------------------------------------------


@pytest.fixture
def netrc_file(tmp_path: Path) -> Path:
    path = tmp_path / "netrc"
    path.write_text(
        f"machine urs.earthdata.nasa.gov login jdoe password {ED_PASSWORD}\n"
        "machine download.geoservice.dlr.de\n"
        f"  login enmapuser\n  password {DLR_PASSWORD}\n"
    )
    path.chmod(0o600)
    return path


def test_find_earthdata_and_dlr_in_netrc(netrc_file: Path) -> None:
    ed = find_credentials("earthdata", netrc_path=netrc_file, environ={})
    assert ed is not None
    assert (ed.username, ed.password, ed.token) == ("jdoe", ED_PASSWORD, None)
    assert ed.source == str(netrc_file)
    expected = base64.b64encode(f"jdoe:{ED_PASSWORD}".encode()).decode()
    assert ed.headers() == {"Authorization": f"Basic {expected}"}
    dlr = find_credentials("dlr", netrc_path=netrc_file, environ={})
    assert dlr is not None and (dlr.username, dlr.password) == ("enmapuser", DLR_PASSWORD)


def test_netrc_env_var_is_the_default(netrc_file: Path) -> None:
    dlr = find_credentials("dlr", environ={"NETRC": str(netrc_file)})
    assert dlr is not None and dlr.username == "enmapuser"


def test_earthdata_token_env_wins_over_netrc(netrc_file: Path) -> None:
    ed = find_credentials(
        "earthdata", netrc_path=netrc_file, environ={"EARTHDATA_TOKEN": f" {ED_TOKEN}\n"}
    )
    assert ed is not None
    assert (ed.token, ed.username, ed.source) == (ED_TOKEN, None, "EARTHDATA_TOKEN")
    assert ed.headers() == {"Authorization": f"Bearer {ED_TOKEN}"}


def test_repr_hides_secrets(netrc_file: Path) -> None:
    for creds in (
        find_credentials("earthdata", netrc_path=netrc_file, environ={}),
        find_credentials("earthdata", environ={"EARTHDATA_TOKEN": ED_TOKEN}),
        find_credentials("dlr", netrc_path=netrc_file, environ={}),
    ):
        assert creds is not None
        for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
            assert ED_PASSWORD not in text and DLR_PASSWORD not in text and ED_TOKEN not in text
            assert "scheme=" in text and "source=" in text


def test_missing_earthdata_credentials(tmp_path: Path) -> None:
    missing = tmp_path / "no-netrc"
    assert find_credentials("earthdata", netrc_path=missing, environ={}) is None
    with pytest.raises(AuthError) as info:
        require_credentials("earthdata", provider="NASA CMR-STAC", netrc_path=missing, environ={})
    err = info.value
    assert isinstance(err, PermissionError)
    assert err.where == "NASA CMR-STAC"
    assert err.what.startswith("no credentials for NASA CMR-STAC")
    assert err.fix is not None
    assert "machine urs.earthdata.nasa.gov login <username> password <password>" in err.fix
    assert "EARTHDATA_TOKEN" in err.fix
    assert "https://urs.earthdata.nasa.gov/users/new" in err.fix
    assert str(missing) in err.fix and "chmod 600" in err.fix


def test_missing_dlr_credentials_do_not_leak_other_secrets(tmp_path: Path) -> None:
    path = tmp_path / "netrc"
    path.write_text(f"machine urs.earthdata.nasa.gov login jdoe password {ED_PASSWORD}\n")
    path.chmod(0o600)
    env = {"EARTHDATA_TOKEN": ED_TOKEN}
    with pytest.raises(AuthError) as info:
        require_credentials("dlr", provider="DLR EOC", netrc_path=path, environ=env)
    text = str(info.value)
    assert "DLR EOC" in text
    assert "machine download.geoservice.dlr.de login <username> password <password>" in text
    assert "https://geoservice.dlr.de/" in text
    assert ED_PASSWORD not in text and ED_TOKEN not in text


def test_malformed_netrc_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "netrc"
    path.write_text(
        f"machine download.geoservice.dlr.de login enmapuser password {DLR_PASSWORD}\n"
        "# a comment\n"
        "hunter2-NotAKeyword machine x\n"
    )
    path.chmod(0o600)
    with pytest.raises(AuthError) as info:
        find_credentials("dlr", netrc_path=path, environ={})
    text = str(info.value)
    assert f"{path}, line 3" in text
    assert "hunter2" not in text and DLR_PASSWORD not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_netrc_grammar(tmp_path: Path) -> None:
    path = tmp_path / "netrc"
    path.write_text(
        "# spectraflow test netrc\n"
        "macdef init\n"
        "  cd /pub\n"
        "  machine not.a.machine login nobody password nothing\n"
        "\n"
        'machine download.geoservice.dlr.de login "enmap user" password "p#ss \\"q\\" w"\n'
        "machine download.geoservice.dlr.de login second password ignored\n"
        "default login anon password anon@example.org\n"
    )
    path.chmod(0o600)
    dlr = find_credentials("dlr", netrc_path=path, environ={})
    assert dlr is not None and (dlr.username, dlr.password) == ("enmap user", 'p#ss "q" w')
    # No machine line for Earthdata: the default entry applies, as in curl.
    ed = find_credentials("earthdata", netrc_path=path, environ={})
    assert ed is not None and ed.username == "anon"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("machine a login b password\n", 1),
        ("\n\nlogin b password c\n", 3),
        ('machine a login b password "unterminated\n', 1),
    ],
)
def test_netrc_errors_report_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "netrc"
    path.write_text(text)
    with pytest.raises(AuthError, match=f"line {line}"):
        find_credentials("dlr", netrc_path=path, environ={})


def test_netrc_entry_without_password(tmp_path: Path) -> None:
    path = tmp_path / "netrc"
    path.write_text("machine urs.earthdata.nasa.gov login jdoe\n")
    path.chmod(0o600)
    with pytest.raises(AuthError, match="lacks a login or password"):
        find_credentials("earthdata", netrc_path=path, environ={})


def test_world_readable_netrc_warns(netrc_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    netrc_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="spectraflow"):
        assert find_credentials("dlr", netrc_path=netrc_file, environ={}) is not None
    assert "chmod 600" in caplog.text
    assert DLR_PASSWORD not in caplog.text


def test_planetary_computer_never_required(tmp_path: Path) -> None:
    anon = require_credentials(
        "planetary-computer", provider="Planetary Computer", netrc_path=tmp_path / "x", environ={}
    )
    assert anon.token is None and anon.source == "anonymous"
    keyed = require_credentials(
        "planetary-computer",
        provider="Planetary Computer",
        environ={"PC_SDK_SUBSCRIPTION_KEY": "pc-key-789"},
    )
    assert keyed.token == "pc-key-789" and keyed.source == "PC_SDK_SUBSCRIPTION_KEY"
    assert "pc-key-789" not in repr(keyed)
    # The key goes to the token endpoint only, never to blob storage.
    assert keyed.headers() == {}


@pytest.mark.parametrize(
    ("href", "scheme"),
    [
        (EMIT_HREF, "earthdata"),
        ("HTTPS://DATA.LPDAAC.EARTHDATACLOUD.NASA.GOV/lp-prod-protected/x.nc", "earthdata"),
        ("https://data.lpdaac.earthdatacloud.nasa.gov:443/lp-prod-protected/x.nc", "earthdata"),
        ("https://data.ornldaac.earthdatacloud.nasa.gov/protected/x.nc", "earthdata"),
        (EMIT_S3, "earthdata"),
        (DLR_HREF, "dlr"),
        (PC_HREF, "planetary-computer"),
        (f"{PC_HREF}?st=x&sig=y", "planetary-computer"),
        (EARTH_SEARCH_HREF, None),
        ("s3://sentinel-cogs/sentinel-s2-l2a-cogs/x.tif", None),
        ("/data/x.nc", None),
        ("relative/x.nc", None),
        ("file:///data/x.nc", None),
        ("C:\\data\\x.nc", None),
        ("https://geoservice.dlr.de/eoc/ogc/stac/v1/search", None),
        ("https://earthdatacloud.nasa.gov.evil.example/x.nc", None),
    ],
)
def test_scheme_for_href(href: str, scheme: str | None) -> None:
    assert scheme_for_href(href) == scheme


def test_check_credentials_local_and_public_need_nothing(tmp_path: Path) -> None:
    hrefs = [
        str(tmp_path / "x.nc"),
        "file:///data/x.nc",
        "s3://sentinel-cogs/x.tif",
        EARTH_SEARCH_HREF,
        PC_HREF,
    ]
    assert check_credentials(hrefs, netrc_path=tmp_path / "none", environ={}) is None


def test_check_credentials_raises_for_lpdaac_without_login(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="NASA Earthdata") as info:
        check_credentials(
            iter([str(tmp_path / "x.nc"), EMIT_HREF]), netrc_path=tmp_path / "none", environ={}
        )
    assert "machine urs.earthdata.nasa.gov" in str(info.value)
    with pytest.raises(AuthError, match="DLR"):
        check_credentials(DLR_HREF, netrc_path=tmp_path / "none", environ={})
    with pytest.raises(AuthError, match="my provider"):
        check_credentials(
            [EMIT_S3], provider="my provider", netrc_path=tmp_path / "none", environ={}
        )


def test_check_credentials_passes_with_logins(netrc_file: Path) -> None:
    check_credentials([EMIT_HREF, EMIT_HREF, DLR_HREF, PC_HREF], netrc_path=netrc_file, environ={})
    # The token alone is enough for Earthdata; DLR still needs its netrc line.
    check_credentials(
        [EMIT_HREF], netrc_path=netrc_file.parent / "none", environ={"EARTHDATA_TOKEN": ED_TOKEN}
    )
    with pytest.raises(AuthError, match="DLR"):
        check_credentials(
            [EMIT_HREF, DLR_HREF],
            netrc_path=netrc_file.parent / "none",
            environ={"EARTHDATA_TOKEN": ED_TOKEN},
        )
