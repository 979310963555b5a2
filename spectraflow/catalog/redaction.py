"""Secrets masked out of text that may reach a log line, an error message or an output.

:func:`redact` scrubs signed URLs, logins in URLs, authorisation headers and bearer tokens.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

# Query parameters whose values are secret (Azure SAS, S3 presigned, CloudFront, OAuth), as a
# regex alternation.
_SECRET_PARAMS = (
    "sig|se|st|skoid|sktid|skt|ske|sks|skv|token|access_token|refresh_token|id_token|password"
    "|api_key|apikey|client_secret|subscription-key|X-Amz-Signature|X-Amz-Credential"
    "|X-Amz-Security-Token|Signature|Key-Pair-Id|Policy"
)
# A key starts a query parameter (or a token string): no word character right before it.
_PARAM_RE = re.compile(
    r"(?<![\w.~%-])(" + _SECRET_PARAMS + r")=[^&\s#\"'<>\\]*",
    re.IGNORECASE,
)
_USERINFO_RE = re.compile(r"(?<=://)[^\s/?#@\"'<>]+@")
_AUTH_HEADER_RE = re.compile(
    r"(authorization[\"']?\s*[:=]\s*[\"']?\s*[A-Za-z][\w-]*\s+)[^\s\"',}]+", re.IGNORECASE
)
_KEY_HEADER_RE = re.compile(
    r"((?:ocp-apim-subscription-key|x-amz-security-token)[\"']?\s*[:=]\s*[\"']?\s*)[^\s\"',}]+",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"(\bBearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every secret it may hold replaced by ``***``.

    Covers URL userinfo (``user:pass@`` → ``***@``), SAS and presigned query values (``sig``,
    ``se``, ``st``, ``skoid`` …, ``X-Amz-Signature``, ``X-Amz-Credential``,
    ``X-Amz-Security-Token``, CloudFront ``Signature``/``Key-Pair-Id``/``Policy``, ``token``,
    ``access_token`` …), ``Authorization`` and subscription-key headers, and bearer tokens.

    Parameters
    ----------
    text
        A log line, an error message, a URL.

    Returns
    -------
    str
        The text, secrets masked; redacting twice changes nothing.
    """
    text = _USERINFO_RE.sub("***@", text)
    text = _PARAM_RE.sub(lambda m: f"{m.group(1)}=***", text)
    text = _AUTH_HEADER_RE.sub(r"\1***", text)
    text = _KEY_HEADER_RE.sub(r"\1***", text)
    return _BEARER_RE.sub(r"\1***", text)
