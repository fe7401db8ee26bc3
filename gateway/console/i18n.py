"""The console's words: one JSON file per language in ``i18n/``, chosen by the browser's Accept-Language.

A key missing from a language falls back to English (tests keep the files complete), and one missing
from both (a value another part of the gateway added since, e.g. a new audit action) to its own name;
texts take ``str.format`` fields (``{count}``).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

LANGUAGES = ("en", "zh")
DEFAULT = "en"
_RANGE = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$|^\*$")


@functools.cache
def texts(language: str) -> dict[str, str]:
    data = json.loads(
        resources.files("gateway.console").joinpath("i18n", f"{language}.json").read_text("utf-8")
    )
    assert isinstance(data, dict)
    return {str(key): str(value) for key, value in data.items()}


def negotiate(accept_language: str | None) -> str:
    """The best of LANGUAGES for an Accept-Language header (RFC 9110: ranges with q-values), else English.

    ``zh``, ``zh-CN``, ``zh-Hans-CN`` and ``zh-TW`` all get the Chinese texts (one Chinese file).
    """
    best, best_q = DEFAULT, 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not _RANGE.match(tag):
            continue
        q = 1.0
        match = re.search(r"q\s*=\s*([01](?:\.\d{0,3})?)", params)
        if match:
            q = float(match.group(1))
        primary = tag.split("-")[0].lower()
        language = DEFAULT if primary == "*" else primary
        # Earlier ranges win ties (strictly greater): the browser lists its preferences in order.
        if language in LANGUAGES and q > best_q:
            best, best_q = language, q
    return best


@dataclass(frozen=True, slots=True)
class Translator:
    language: str

    def __call__(self, key: str, **fields: Any) -> str:
        text = texts(self.language).get(key) or texts(DEFAULT).get(key)
        if text is None:  # a value added elsewhere (a new audit action, a new detail): shown as it is named
            return key.partition(".")[2].replace("_", " ") or key
        return text.format(**fields) if fields else text

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.language == "zh" else "en"
