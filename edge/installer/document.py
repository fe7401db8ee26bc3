"""A desk config as the device runs it, and the signed message that carries it (flash and push alike).

The files a config names are copied into the bundle, so the device's config names them there:
``files/<name>`` (models, recordings), ``mqtt/ca.crt``; the device logs in as ``mqtt.username`` (default:
its id) with the password in ``mqtt/password``; a user and password in the URL are dropped (flash
writes the device's own). ``flash`` and ``push`` both go through ``device_document``, so the same desk
file gives the same version either way, and the signed ``files`` hashes let the device check that a
pushed config's model is the one it has.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from citywatch.protocol.messages import ConfigMessage
from edge.config import AgentConfig, ConfigError, validate_config_dict
from edge.installer.bundle import CA_CERT, FILES_DIR, PASSWORD
from edge.installer.signing import SigningKey, sign_config
from edge.installer.yamlmap import split
from edge.uplink.config_push import input_files, sha256_file


@dataclass(frozen=True, slots=True)
class DeviceDocument:
    config: AgentConfig  # as the device runs it
    sources: dict[str, Path]  # bundle path -> the desk file copied there
    hashes: dict[str, str]  # bundle path -> SHA-256 (signed with the config)

    @property
    def version(self) -> str:
        return self.config.version


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    parts = split(path)
    node: Any = raw
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def device_document(config: AgentConfig) -> DeviceDocument:
    """Raises ``ConfigError`` when a named file is missing."""
    raw = config.model_dump(mode="json")
    sources: dict[str, Path] = {}
    missing = []
    for field_path, path in sorted(input_files(config).items()):
        if field_path == "mqtt.password_file":
            continue  # the bundle's own, made at flash time
        if not path.is_file():
            missing.append(f"{field_path}: {path} does not exist")
            continue
        if field_path == "mqtt.ca_file":
            target = CA_CERT
        else:
            target = f"{FILES_DIR}/{path.name}"
            number = 2
            while target in sources and sources[target].resolve() != path.resolve():
                target = f"{FILES_DIR}/{number}-{path.name}"
                number += 1
        sources[target] = path
        _set(raw, field_path, target)
    if missing:
        raise ConfigError(str(config.device.id), missing)
    url = urlsplit(config.mqtt.url)
    if url.username or url.password:
        host = (url.hostname or "") + (f":{url.port}" if url.port else "")
        raw["mqtt"]["url"] = urlunsplit(url._replace(netloc=host))
    raw["mqtt"]["username"] = config.mqtt.username or url.username or config.device.id
    raw["mqtt"]["password_file"] = PASSWORD
    document = validate_config_dict(raw, source=f"{config.device.id} (as bundled)")
    hashes = {target: sha256_file(path) for target, path in sources.items()}
    return DeviceDocument(document, sources, hashes)


def signed_message(
    document: DeviceDocument,
    keys: Sequence[SigningKey],
    *,
    issued_at: datetime | None = None,
    cmd_id: str | None = None,
) -> ConfigMessage:
    """The config, its version, issue time, the keys devices should trust, file hashes: signed."""
    now = datetime.now(UTC)
    message = ConfigMessage(
        cmd_id=cmd_id or f"cfg-{uuid.uuid4().hex[:16]}",
        ts=now,
        config_version=document.version,
        config=document.config.model_dump(mode="json"),
        issued_at=issued_at or now,
        trusted_keys=[key.trusted for key in keys],
        files=dict(sorted(document.hashes.items())),
    )
    return sign_config(message, keys)
