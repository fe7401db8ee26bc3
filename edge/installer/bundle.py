"""The bundle a device boots from: its format, its verification, and what the device keeps in it.

```
manifest.json   format, device, config version, and the SHA-256 and size of every file below
config.json     the signed config: ConfigMessage without its signatures (config, version, issue time,
                trusted keys, hashes of the files it names)
config.sig      the detached signatures: {"signatures": [...]} over config.json's signed payload
files/...       the files the config names (models, recordings), paths in config.json point here
mqtt/ca.crt     the broker's CA certificate (when the config names one)
mqtt/password   the device's MQTT password (mode 0600; its user is mqtt.username in the config)
pushed/         written by the device: the last config accepted over MQTT, and the keys it trusts now
```

``manifest.json`` is written last when flashing, so a bundle without it is an interrupted flash.
Paths inside the config are relative to the bundle directory (``citywatch edge run --bundle`` runs
there). ``load_bundle`` checks everything before the agent starts and says what is wrong.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from citywatch.protocol.messages import ConfigMessage, ConfigSignature, TrustedKey, config_version
from edge.config import AgentConfig, ConfigError, validate_config_dict
from edge.uplink.config_push import sha256_file

log = logging.getLogger(__name__)

FORMAT: Literal["citywatch-bundle/1"] = "citywatch-bundle/1"
MANIFEST = "manifest.json"
CONFIG = "config.json"
SIGNATURE = "config.sig"
PASSWORD = "mqtt/password"
CA_CERT = "mqtt/ca.crt"
FILES_DIR = "files"
PUSHED_CONFIG = "pushed/config.json"
PUSHED_TRUST = "pushed/trust.json"


class BundleError(Exception):
    """Why a bundle cannot be booted (or flashed), every problem listed."""

    def __init__(self, directory: Path, problems: list[str]) -> None:
        super().__init__(f"{directory}: {'; '.join(problems)}")
        self.directory = directory
        self.problems = problems

    def render(self) -> str:
        return f"{self.directory}: the bundle is not usable:\n" + "\n".join(f"  - {p}" for p in self.problems)


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["citywatch-bundle/1"] = FORMAT
    device_id: str
    site: str
    kind: str
    config_version: str
    issued_at: datetime
    flashed_at: datetime
    files: dict[str, FileEntry] = Field(description="Every file of the bundle but the manifest.")


class Signatures(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signatures: list[ConfigSignature] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Boot:
    """What a device boots with: the config to run, and the state that judges later pushes."""

    directory: Path
    config: AgentConfig
    message: ConfigMessage
    trusted_keys: tuple[TrustedKey, ...]
    from_push: bool

    @property
    def issued_at(self) -> datetime | None:
        return self.message.issued_at

    def persist_push(
        self, message: ConfigMessage, trusted_keys: tuple[TrustedKey, ...] | list[TrustedKey]
    ) -> None:
        """Keep an accepted push (and the keys trusted now) so that a reboot comes back on it."""
        write_atomic(self.directory / PUSHED_CONFIG, message.to_json())
        keys = [key.model_dump() for key in trusted_keys]
        write_atomic(self.directory / PUSHED_TRUST, json.dumps({"trusted_keys": keys}, indent=2).encode())


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write to a temporary file beside it, fsync, rename over it: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (FAT on a card) cannot fsync a directory
    finally:
        os.close(fd)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    if not path.is_file():
        raise BundleError(
            directory,
            [
                f"no {MANIFEST}: not a bundle, or its flash was interrupted; flash it again (citywatch config flash)"
            ],
        )
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise BundleError(directory, [f"{MANIFEST} is damaged: {exc.errors()[0]['msg']}"]) from None


def check_files(directory: Path, manifest: Manifest) -> list[str]:
    """Every file the manifest lists is there, with its size and hash."""
    problems = []
    for name, entry in sorted(manifest.files.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != entry.bytes:
            problems.append(f"{name} has {path.stat().st_size} bytes, the manifest says {entry.bytes}")
        elif sha256_file(path) != entry.sha256:
            problems.append(f"{name} does not match its checksum (damaged or altered)")
    return problems


def read_signed_config(directory: Path) -> ConfigMessage:
    """config.json with the signatures of config.sig."""
    try:
        message = ConfigMessage.model_validate_json((directory / CONFIG).read_bytes())
        signatures = Signatures.model_validate_json((directory / SIGNATURE).read_bytes())
    except (OSError, ValidationError) as exc:
        raise BundleError(directory, [f"{CONFIG} or {SIGNATURE} cannot be read: {exc}"]) from None
    return message.model_copy(update={"signatures": signatures.signatures})


def load_bundle(directory: Path) -> Boot:
    """Verify a bundle (checksums, signature, config, files) and pick the config to boot.

    The flashed config is checked against its own trusted keys; a config pushed later (``pushed/``) is
    booted instead when it verifies against the keys trusted since and is newer. Raises ``BundleError``.
    """
    from edge.installer.signing import SignatureRejected, verify_config

    directory = directory.resolve()
    manifest = read_manifest(directory)
    problems = check_files(directory, manifest)
    if problems:
        raise BundleError(directory, problems)
    message = read_signed_config(directory)
    trusted = tuple(message.trusted_keys or ())
    if not trusted:
        raise BundleError(directory, [f"{CONFIG} names no trusted key: flash it again"])
    try:
        verify_config(message, trusted)
    except SignatureRejected as exc:
        raise BundleError(directory, [f"{SIGNATURE}: {exc.text}"]) from None
    config = _config_of(directory, message, source=CONFIG)
    if (config.device.id, config.device.site, config.version) != (
        manifest.device_id,
        manifest.site,
        manifest.config_version,
    ):
        raise BundleError(directory, [f"{MANIFEST} and {CONFIG} name different devices or versions"])
    boot = Boot(directory, config, message, trusted, from_push=False)
    pushed = _pushed(boot)
    return pushed or boot


def _config_of(directory: Path, message: ConfigMessage, *, source: str) -> AgentConfig:
    # Only the flashed one: a device of another firmware may normalize a pushed config differently.
    if source == CONFIG and config_version(message.config) != message.config_version:
        raise BundleError(directory, [f"{source}: config_version does not match the config"])
    try:
        config = validate_config_dict(message.config, source=source)
    except ConfigError as exc:
        raise BundleError(directory, exc.problems) from None
    problems = []
    for name, expected in (message.files or {}).items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} (named by the config) is missing")
        elif sha256_file(path) != expected:
            problems.append(f"{name} differs from the file the config was signed with")
    if problems:
        raise BundleError(directory, problems)
    return config


def _pushed(flashed: Boot) -> Boot | None:
    """The config accepted over MQTT since the flash, when it still verifies; None: boot the flashed one."""
    from edge.installer.signing import SignatureRejected, verify_config

    directory = flashed.directory
    if not (directory / PUSHED_CONFIG).is_file():
        return None
    try:
        message = ConfigMessage.model_validate_json((directory / PUSHED_CONFIG).read_bytes())
        trust_raw = json.loads((directory / PUSHED_TRUST).read_bytes())
        trusted = tuple(TrustedKey.model_validate(key) for key in trust_raw["trusted_keys"])
        verify_config(message, trusted)
        config = _config_of(directory, message, source=PUSHED_CONFIG)
    except (OSError, ValueError, KeyError, TypeError, SignatureRejected, BundleError) as exc:
        log.error("ignored the pushed config in %s (%s): booting the flashed config", directory, exc)
        return None
    flashed_at = flashed.issued_at
    if message.issued_at is None or (flashed_at is not None and message.issued_at <= flashed_at):
        log.warning(
            "the pushed config in %s is older than the flashed one: booting the flashed config", directory
        )
        return None
    if (config.device.id, config.device.site) != (flashed.config.device.id, flashed.config.device.site):
        log.error("the pushed config in %s is for another device: booting the flashed config", directory)
        return None
    return Boot(directory, config, message, trusted, from_push=True)
