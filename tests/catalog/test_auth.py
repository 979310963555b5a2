from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from spectraflow.catalog.auth import (
    Credentials,
    check_credentials,
    find_credentials,
    require_credentials,
    scheme_for_href,
)
from spectraflow.catalog.redaction import redact
from spectraflow.errors import AuthError

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
EARTH_SEARCH_HREF = (
    "https://e84-earth-search-sentinel-data.s3.us-west-2.amazonaws.com/"
    "sentinel-2-c1-l2a/47/X/ML/2024/4/S2B_T47XML_20240419T095549_L2A/B02.tif"
)

ED_PASSWORD = "ed-Pa55w0rd!"
DLR_PASSWORD = "dlr-s3cr3t#"
ED_TOKEN = "eyJ0eXAiOiJKV1QiLCJvcmlnaW4iOiJFYXJ0aGRhdGEgTG9naW4ifQ.payload.signature"


# --- redaction of credentials -----------------------------------------------------------------


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
