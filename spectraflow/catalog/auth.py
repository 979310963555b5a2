"""Credentials for the data providers.

Three providers need more than an anonymous HTTP GET to hand out data:

- ``earthdata`` (NASA): env ``EARTHDATA_TOKEN`` (sent as ``Authorization: Bearer …``), else the
  netrc line ``machine urs.earthdata.nasa.gov`` (HTTP basic, to the login host).
- ``dlr`` (DLR EOC): the netrc line ``machine download.geoservice.dlr.de`` (HTTP basic).
- ``planetary-computer``: nothing needed; blob hrefs get a SAS token
  (:class:`~spectraflow.catalog.signing.SasSigner`), whose endpoint takes an optional
  subscription key from env ``PC_SDK_SUBSCRIPTION_KEY``.

When both ``EARTHDATA_TOKEN`` and a netrc entry exist, the token wins: an environment variable is
the more deliberate, more local choice (a CI job, a container), as with most tools that read both.
The netrc file is ``$NETRC`` when set, else ``~/.netrc``.

Readers call :func:`check_credentials` once before a download starts (a missing login fails fast,
with the exact setup steps) and :func:`require_credentials` right before each remote read.
:class:`Credentials` hides secrets in its ``repr``, and errors name only the provider and the
file, never a secret.
"""

from __future__ import annotations

import base64
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from spectraflow.errors import AuthError, ConfigError

__all__ = [
    "AuthScheme",
    "Credentials",
    "check_credentials",
    "find_credentials",
    "require_credentials",
    "scheme_for_href",
]

logger = logging.getLogger(__name__)

AuthScheme = Literal["earthdata", "dlr", "planetary-computer"]

_SCHEMES: tuple[str, ...] = get_args(AuthScheme)

_EARTHDATA_LOGIN_HOST = "urs.earthdata.nasa.gov"
_DLR_HOST = "download.geoservice.dlr.de"
_EARTHDATA_TOKEN_ENV = "EARTHDATA_TOKEN"

BLOB_SUFFIX = ".blob.core.windows.net"
"""Host suffix of Azure blob storage, where Planetary Computer data lives."""
PC_KEY_ENV = "PC_SDK_SUBSCRIPTION_KEY"
"""Environment variable with the optional Planetary Computer subscription key."""

# Hosts whose downloads need an Earthdata login. S3 buckets of LP DAAC that need temporary
# credentials (obtained with an Earthdata login) count too; public buckets do not.
_EARTHDATA_HOST_SUFFIXES = (".earthdatacloud.nasa.gov",)
_EARTHDATA_HOSTS = frozenset({"opendap.earthdata.nasa.gov"})
_EARTHDATA_S3_BUCKETS = frozenset({"lp-prod-protected"})

# Netrc machine per scheme that logs in with one.
_NETRC_MACHINE: dict[str, str] = {"earthdata": _EARTHDATA_LOGIN_HOST, "dlr": _DLR_HOST}

_DEFAULT_PROVIDER: dict[str, str] = {
    "earthdata": "NASA Earthdata (LP DAAC)",
    "dlr": "DLR EOC geoservice",
    "planetary-computer": "Microsoft Planetary Computer",
}


@dataclass(frozen=True, repr=False)
class Credentials:
    """A login for one provider; its ``repr`` shows where it came from, never the secret.

    Parameters
    ----------
    scheme
        The provider's auth scheme.
    username, password
        HTTP basic login (from a netrc file).
    token
        Earthdata bearer token, or the Planetary Computer subscription key.
    source
        Where the credentials were found: a netrc path or an environment variable name.
    """

    scheme: AuthScheme
    username: str | None = None
    password: str | None = None
    token: str | None = None
    source: str = ""

    def __repr__(self) -> str:
        return f"Credentials(scheme={self.scheme!r}, source={self.source!r})"

    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate a request to the provider's data host.

        Returns
        -------
        dict of str to str
            ``Authorization: Bearer …`` for a token, ``Authorization: Basic …`` for a login, or
            nothing. Planetary Computer reads are authorised by the SAS token in the URL; its
            subscription key goes only to the token endpoint (see
            :class:`~spectraflow.catalog.signing.SasSigner`).

        Notes
        -----
        Earthdata's data hosts redirect a basic-auth client to ``urs.earthdata.nasa.gov`` and
        then to a presigned S3 URL: send the basic header to the login host only, and never
        forward ``Authorization`` to another host on a redirect (S3 rejects it).
        """
        if self.scheme == "planetary-computer":
            return {}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode('ascii')}"}
        return {}


def scheme_for_href(href: str) -> AuthScheme | None:
    """The auth scheme a download of ``href`` needs, judged by its host.

    Parameters
    ----------
    href
        A URL or a local path.

    Returns
    -------
    AuthScheme or None
        ``"earthdata"`` for ``*.earthdatacloud.nasa.gov`` (and LP DAAC's protected S3 bucket),
        ``"dlr"`` for ``download.geoservice.dlr.de``, ``"planetary-computer"`` for
        ``*.blob.core.windows.net``; None for local paths, ``file://``, public S3 and other hosts.
    """
    parts = urlsplit(href.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme == "s3":
        return "earthdata" if host in _EARTHDATA_S3_BUCKETS else None
    if scheme not in ("http", "https") or not host:
        return None
    if host in _EARTHDATA_HOSTS or host.endswith(_EARTHDATA_HOST_SUFFIXES):
        return "earthdata"
    if host == _DLR_HOST:
        return "dlr"
    if host.endswith(BLOB_SUFFIX):
        return "planetary-computer"
    return None


def find_credentials(
    scheme: AuthScheme,
    *,
    netrc_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """Look up the credentials for ``scheme`` in the environment and the netrc file.

    Parameters
    ----------
    scheme
        The provider's auth scheme.
    netrc_path
        The netrc file; default ``$NETRC``, else ``~/.netrc``. A missing file means no login.
    environ
        The environment to read; default :data:`os.environ`.

    Returns
    -------
    Credentials or None
        None when nothing is configured.

    Raises
    ------
    AuthError
        The netrc file cannot be read or parsed, or its entry lacks a login or password; the
        error names the file and line, never its contents.
    """
    _check_scheme(scheme)
    env = os.environ if environ is None else environ
    if scheme == "planetary-computer":
        key = env.get(PC_KEY_ENV, "").strip()
        return Credentials(scheme, token=key, source=PC_KEY_ENV) if key else None
    if scheme == "earthdata":
        token = env.get(_EARTHDATA_TOKEN_ENV, "").strip()
        if token:
            return Credentials(scheme, token=token, source=_EARTHDATA_TOKEN_ENV)
    path = _netrc_file(netrc_path, env)
    entry = _read_netrc(path, _NETRC_MACHINE[scheme])
    if entry is None:
        return None
    username, password = entry
    return Credentials(scheme, username=username, password=password, source=_display(path))


def require_credentials(
    scheme: AuthScheme,
    *,
    provider: str,
    netrc_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """The credentials for ``scheme``, or an :class:`AuthError` that says how to set them up.

    Parameters
    ----------
    scheme
        The provider's auth scheme.
    provider
        The provider's name, for the error message.
    netrc_path, environ
        As in :func:`find_credentials`.

    Returns
    -------
    Credentials
        For ``"planetary-computer"`` always credentials (anonymous signing works): ``token`` is
        the subscription key, or None.

    Raises
    ------
    AuthError
        No credentials are configured, or the netrc file is malformed.
    """
    found = find_credentials(scheme, netrc_path=netrc_path, environ=environ)
    if found is not None:
        return found
    if scheme == "planetary-computer":
        return Credentials(scheme, source="anonymous")
    env = os.environ if environ is None else environ
    path = _display(_netrc_file(netrc_path, env))
    machine = _NETRC_MACHINE[scheme]
    netrc_step = (
        f"add the line 'machine {machine} login <username> password <password>' "
        f"to {path} and make it private (chmod 600 {path})"
    )
    if scheme == "earthdata":
        looked = f"{_EARTHDATA_TOKEN_ENV} or {path}"
        fix = (
            f"set the environment variable {_EARTHDATA_TOKEN_ENV} to an Earthdata Login token "
            f"(Earthdata Login profile → Generate Token), or {netrc_step}; "
            f"no account yet? register at https://{_EARTHDATA_LOGIN_HOST}/users/new"
        )
    else:
        looked = path
        fix = f"{netrc_step}; no account yet? register at https://geoservice.dlr.de/"
    raise AuthError(f"no credentials for {provider} in {looked}", where=provider, fix=fix)


def check_credentials(
    hrefs: Iterable[str],
    *,
    provider: str | None = None,
    netrc_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Fail fast, before any download, when an href needs a login that is not configured.

    Parameters
    ----------
    hrefs
        The hrefs about to be read (a single string counts as one href).
    provider
        The provider's name for error messages; default a name per scheme.
    netrc_path, environ
        As in :func:`find_credentials`.

    Raises
    ------
    AuthError
        For the first scheme among ``hrefs`` whose login is missing.
    """
    if isinstance(hrefs, str):
        hrefs = [hrefs]
    seen: set[str] = set()
    for href in hrefs:
        scheme = scheme_for_href(href)
        # Planetary Computer signs anonymously: nothing to require.
        if scheme is None or scheme == "planetary-computer" or scheme in seen:
            continue
        seen.add(scheme)
        require_credentials(
            scheme,
            provider=provider or _DEFAULT_PROVIDER[scheme],
            netrc_path=netrc_path,
            environ=environ,
        )


def _check_scheme(scheme: str) -> None:
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"unknown auth scheme {scheme!r}", where="scheme", fix=f"use one of {list(_SCHEMES)}"
        )


def _netrc_file(netrc_path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    if netrc_path is not None:
        return Path(netrc_path).expanduser()
    if env.get("NETRC"):
        return Path(env["NETRC"]).expanduser()
    home = Path.home()
    # Windows tools (curl among them) also read ~/_netrc.
    if os.name == "nt" and not (home / ".netrc").exists() and (home / "_netrc").exists():
        return home / "_netrc"
    return home / ".netrc"


def _display(path: Path) -> str:
    """The path as users write it, ``~`` for the home directory."""
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


def _read_netrc(path: Path, machine: str) -> tuple[str, str] | None:
    """The (login, password) for ``machine`` in ``path``, or None when it has none."""
    if not path.is_file():
        return None
    fix = f"each entry reads 'machine {machine} login <username> password <password>'"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthError(
            f"cannot read the netrc file ({type(exc).__name__})",
            where=_display(path),
            fix="make the file readable by your user, as UTF-8 text",
        ) from None
    try:
        entries = _parse_netrc(text)
    except _NetrcSyntaxError as exc:
        # Name the line, never quote it: it may hold a password.
        raise AuthError(
            f"malformed netrc file ({exc.problem})",
            where=f"{_display(path)}, line {exc.lineno}",
            fix=fix,
        ) from None
    entry = entries.get(machine, entries.get(""))
    if entry is None:
        return None
    login, password = entry
    if not login or not password:
        raise AuthError(
            f"netrc entry for machine {machine} lacks a login or password",
            where=_display(path),
            fix=fix,
        )
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("netrc file %s is readable by others: chmod 600 it", _display(path))
    return login, password


class _NetrcSyntaxError(Exception):
    def __init__(self, problem: str, lineno: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.lineno = lineno


def _parse_netrc(text: str) -> dict[str, tuple[str, str]]:
    """Machine → (login, password) of a netrc text; the ``default`` entry under ``""``.

    The stdlib parser miscounts lines after comments and quotes the offending token in its
    error, so this small parser follows the same grammar (curl's and the stdlib's: ``machine``,
    ``default``, ``login``/``user``, ``password``, ``account``, ``macdef``, ``#`` comments,
    double quotes with backslash escapes) and reports exact line numbers.
    """
    entries: dict[str, tuple[str, str]] = {}
    name: str | None = None
    fields: dict[str, str] = {}

    def close() -> None:
        # The first entry for a machine wins, as in curl.
        if name is not None and name not in entries:
            entries[name] = (fields.get("login", ""), fields.get("password", ""))

    expect: str | None = None  # keyword waiting for its value
    expect_line = 0
    in_macro = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if in_macro:
            in_macro = bool(line.strip())  # a macro body ends at an empty line
            continue
        for token in _netrc_tokens(line, lineno):
            if expect is not None:
                if expect == "machine":
                    close()
                    name, fields = token, {}
                elif expect == "macdef":
                    in_macro = True
                else:
                    fields["login" if expect == "user" else expect] = token
                expect = None
                if in_macro:
                    break
                continue
            if token.startswith("#"):
                break
            if token == "default":
                close()
                name, fields = "", {}
            elif token in ("machine", "macdef") or (
                token in ("login", "user", "password", "account") and name is not None
            ):
                expect, expect_line = token, lineno
            else:
                raise _NetrcSyntaxError("unexpected word", lineno)
    if expect is not None:
        raise _NetrcSyntaxError(f"'{expect}' without a value", expect_line)
    close()
    return entries


def _netrc_tokens(line: str, lineno: int) -> Iterator[str]:
    """Whitespace-separated words of one netrc line; double quotes and backslashes escape."""
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        quoted = line[i] == '"'
        i += quoted
        word: list[str] = []
        while i < n and (line[i] != '"' if quoted else not line[i].isspace()):
            if line[i] == "\\" and i + 1 < n:
                i += 1
            word.append(line[i])
            i += 1
        if quoted:
            if i >= n:
                raise _NetrcSyntaxError("unterminated quote", lineno)
            i += 1
        yield "".join(word)
