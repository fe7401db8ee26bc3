"""What counts as a secret, and how it is shown: the one place every answer, audit note and log line
that names a URL or quotes an error goes through.

- A URL keeps its scheme, host, port and path. Its password becomes ``***`` (``mqtt://gw:***@broker``;
  a lone user name may itself be a token, so it is masked too), and so does the value of every query or
  fragment parameter whose name says secret (``token``, ``key``, ``secret``, ``password``, ``sig``,
  ``auth``, ``credential``...).
- Free text (an error message, a note) gets the same for every URL in it, and each known secret value
  (a signing secret, an API token) is replaced wherever it appears.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# Parameter names that carry credentials, matched anywhere in the name (api_key, access_token, X-Amz-Signature).
SECRET_NAME = re.compile(r"token|key|secret|pass|pwd|sig|auth|credential|session|code", re.IGNORECASE)
_PARAMETER = re.compile(r"(?P<name>[^=&;#]*)=(?P<value>[^&;#]*)")
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
# Shorter strings would mask ordinary words; every secret this project issues is far longer.
MIN_SECRET_LENGTH = 6


def redact_url(url: str) -> str:
    """``url`` without its password and secret parameters; ``***`` if it cannot even be parsed."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port, which would otherwise pass through
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else f"{MASK}@{host}"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            _redact_parameters(parts.query),
            _redact_parameters(parts.fragment),
        )
    )


def redact_text(text: str, *, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL in it redacted and each of ``secrets`` replaced by ``***``."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group()), text)


def _redact_parameters(query: str) -> str:
    return _PARAMETER.sub(
        lambda match: f"{match['name']}={MASK}" if SECRET_NAME.search(match["name"]) else match.group(), query
    )
