"""``citywatch config flash CONFIG --to DIR``: a complete, signed bundle, written atomically and read back.

Writing: every file is staged in ``DIR/.staging-*`` and fsynced; then the old manifest goes (a device
sees no bundle rather than half of two), each file is renamed into place, what the old bundle had and
the new one lacks is removed (its ``pushed/`` config too: the flash is the newer word), and the new
``manifest.json`` is renamed in last. It works on a mounted card, where the folder itself cannot be
replaced. Then the bundle is read back from disk and verified as the device will (checksums,
signature, config, files). A folder holding another device's bundle is refused without ``force``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from citywatch.broker.auth import hash_password, new_password
from edge.config import load_config
from edge.installer.bundle import (
    CA_CERT,
    CONFIG,
    MANIFEST,
    PASSWORD,
    PUSHED_CONFIG,
    PUSHED_TRUST,
    SIGNATURE,
    BundleError,
    FileEntry,
    Manifest,
    Signatures,
    fsync_dir,
    load_bundle,
    read_manifest,
    write_atomic,
)
from edge.installer.document import device_document, signed_message
from edge.installer.signing import SigningKey
from edge.uplink.config_push import sha256_file


class FlashRefused(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Flashed:
    directory: Path
    manifest: Manifest
    username: str
    password_hash: str  # what the broker's password file needs (the password itself is in the bundle only)
    key_ids: tuple[str, ...]


def flash(config_path: Path, target: Path, keys: Sequence[SigningKey], *, force: bool = False) -> Flashed:
    """Raises ConfigError (the config), FlashRefused (another device's bundle), BundleError (read-back)."""
    config = load_config(config_path)
    document = device_document(config)
    message = signed_message(document, keys, cmd_id=f"flash-{uuid.uuid4().hex[:16]}")
    device = document.config.device
    old = _existing(target, device.site, device.id, force=force)
    password = new_password()
    username = document.config.mqtt.username or device.id
    signatures = message.signatures or []
    contents: dict[str, bytes | Path] = {
        CONFIG: message.model_copy(update={"signatures": None}).to_json(),
        SIGNATURE: Signatures(signatures=signatures).model_dump_json(indent=2).encode(),
        PASSWORD: (password + "\n").encode(),
        **dict(document.sources),
    }
    target.mkdir(parents=True, exist_ok=True)
    staging = target / f".staging-{uuid.uuid4().hex[:8]}"
    try:
        files = {
            name: _stage(staging / name, data, secret=name == PASSWORD) for name, data in contents.items()
        }
        manifest = Manifest(
            device_id=device.id,
            site=device.site,
            kind=str(getattr(document.config, "kind", "")),
            config_version=document.version,
            issued_at=message.issued_at or datetime.now(UTC),
            flashed_at=datetime.now(UTC),
            files=files,
        )
        _commit(target, staging, files, old)
        write_atomic(target / MANIFEST, manifest.model_dump_json(indent=2).encode())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _read_back(target, manifest)
    return Flashed(target, manifest, username, hash_password(password), tuple(s.key_id for s in signatures))


def _existing(target: Path, site: str, device_id: str, *, force: bool) -> Manifest | None:
    if not (target / MANIFEST).is_file():
        return None
    try:
        manifest = read_manifest(target)
    except BundleError:
        if force:
            return None
        raise FlashRefused(f"{target} holds a damaged bundle: give --force to overwrite it") from None
    if (manifest.site, manifest.device_id) != (site, device_id) and not force:
        raise FlashRefused(
            f"{target} holds the bundle of {manifest.site}/{manifest.device_id}, not {site}/{device_id}: "
            "another device's card? give --force to overwrite it"
        )
    return manifest


def _stage(path: Path, data: bytes | Path, *, secret: bool) -> FileEntry:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, Path):
        shutil.copyfile(data, path)
    else:
        path.write_bytes(data)
    os.chmod(path, 0o600 if secret else 0o644)
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    return FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)


def _commit(target: Path, staging: Path, files: dict[str, FileEntry], old: Manifest | None) -> None:
    (target / MANIFEST).unlink(missing_ok=True)  # from here until the end: no bundle, not a mixed one
    fsync_dir(target)
    for name in files:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, destination)
        fsync_dir(destination.parent)
    stale = set(old.files) - set(files) if old else set()
    for name in sorted(stale | {PUSHED_CONFIG, PUSHED_TRUST}):
        (target / name).unlink(missing_ok=True)


def _read_back(target: Path, manifest: Manifest) -> None:
    """As the device will: checksums, signature, config, files; and the manifest is the one written."""
    on_disk = read_manifest(target)
    if on_disk != manifest:
        raise BundleError(target, ["the manifest read back differs from the one written"])
    boot = load_bundle(target)
    if boot.config.version != manifest.config_version:
        raise BundleError(target, ["the config read back is not the one written"])
    if (target / CA_CERT).exists() and CA_CERT not in manifest.files:
        raise BundleError(target, [f"{CA_CERT} is not in the manifest"])
