"""``citywatch config push CONFIG``: the desk signs a config and the gateway publishes it, retained.

The config goes as the device runs it (``document.device_document``, the same as flashing it), signed
by every active key of the site, with the keys devices should trust and the hashes of the files it
names. The gateway relays it unchanged on the device's ``config`` topic and records it as the device's
desired version; with ``wait_s`` the desk waits for the device's ack in its audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from citywatch.protocol.messages import ConfigMessage
from edge.config import AgentConfig
from edge.installer.api import GatewayApi
from edge.installer.document import device_document, signed_message
from edge.installer.signing import SigningKey


@dataclass(frozen=True, slots=True)
class Pushed:
    device_id: str
    cmd_id: str
    config_version: str
    sent: dict[str, Any]
    ack: dict[str, Any] | None  # the device's answer in its audit (note: "ok: ..." or "not done (...)")

    @property
    def accepted(self) -> bool | None:
        if self.ack is None:
            return None
        return str(self.ack.get("note", "")).startswith("ok")


def request_body(message: ConfigMessage) -> dict[str, Any]:
    """The gateway's ``POST /devices/{id}/config`` body for a signed message."""
    body = message.model_dump(mode="json", exclude_none=True, include={"config", "config_version", "cmd_id"})
    signed = message.model_dump(mode="json", include={"issued_at", "trusted_keys", "files", "signatures"})
    return body | {key: value for key, value in signed.items() if value is not None}


def push(
    config: AgentConfig,
    keys: Sequence[SigningKey],
    api: GatewayApi,
    *,
    wait_s: float = 0.0,
) -> Pushed:
    """Raises ConfigError (a file the config names is missing) or ApiError (the gateway refused it)."""
    document = device_document(config)
    message = signed_message(document, keys)
    device_id = document.config.device.id
    sent = api.post(f"/devices/{device_id}/config", request_body(message))
    ack = wait_for_ack(api, device_id, message.cmd_id, wait_s) if wait_s > 0 else None
    return Pushed(device_id, message.cmd_id, document.version, sent, ack)


def wait_for_ack(api: GatewayApi, device_id: str, cmd_id: str, timeout_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while True:
        trail = api.get(f"/devices/{device_id}/audit?limit=100")
        for entry in reversed(trail):
            if entry.get("action") == "ack" and entry.get("cmd_id") == cmd_id:
                return dict(entry)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)
