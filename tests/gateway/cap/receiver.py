"""A CAP department's webhook receiver, built on the recipes docs/cap.md gives receivers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.paths import PROJECT_ROOT
from tests.support.webhooks import RecordingReceiver

CAP_DOC = PROJECT_ROOT / "docs" / "cap.md"
Recipe = Callable[[bytes, dict[str, str], str], Any]


def recipes() -> dict[str, Recipe]:
    """Each ``verify_cap_push`` of docs/cap.md, by the name of its ``<!-- recipe: ... -->`` marker,
    executed exactly as written there."""
    found = re.findall(r"<!-- recipe: ([^>]+?) -->\n```python\n(.*?)```", CAP_DOC.read_text(), flags=re.S)
    assert found, f"no recipes in {CAP_DOC}"
    loaded = {}
    for name, code in found:
        namespace: dict[str, Any] = {}
        exec(compile(code, f"{CAP_DOC}:{name}", "exec"), namespace)
        loaded[name] = namespace["verify_cap_push"]
    return loaded


def cap_receiver(*, secret: str, recipe: Recipe) -> RecordingReceiver:
    """Verifies every push with ``recipe``: kept (204) when it passes, refused (401) when it raises
    ``WebhookVerificationError``; any other exception is a broken recipe and fails the request."""

    def accept(raw: bytes, headers: dict[str, str]) -> bool:
        try:
            recipe(raw, headers, secret)
        except WebhookVerificationError:
            return False
        return True

    return RecordingReceiver(accept=accept, path="/cap")
