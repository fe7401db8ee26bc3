"""The site's config signing keys, on the installer's desk: ``citywatch keys init|rotate|retire|list``.

```
KEYS_DIR/<site>/<key_id>.key   the private Ed25519 key (PKCS#8 PEM, mode 0600, the folder 0700)
KEYS_DIR/<site>/<key_id>.pub   its public half, base64 (what devices trust)
KEYS_DIR/<site>/retired/       keys no longer used
```

``KEYS_DIR`` is ``--keys-dir``, else ``$SIGNING_KEYS_DIR``, else ``~/.config/citywatch/keys``. The
private half never leaves this folder: bundles and pushes carry public keys and signatures only.

Rotation without re-flashing: ``rotate`` adds a key; every config is then signed by both and lists both
as trusted, so devices that trust the old key accept it and learn the new one. Once every device has
acknowledged such a config, ``retire`` the old key: configs are signed by the new key alone and list it
alone, and devices stop trusting the old one with the next config they accept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from citywatch.protocol.messages import TrustedKey
from edge.installer.signing import SigningKey

DEFAULT_DIR = Path("~/.config/citywatch/keys")


class KeyringError(Exception):
    """A keyring operation that cannot be done, said plainly."""


def keys_dir(given: Path | None = None) -> Path:
    if given is not None:
        return given
    return Path(os.environ.get("SIGNING_KEYS_DIR") or DEFAULT_DIR).expanduser()


def _site_dir(root: Path, site: str) -> Path:
    return root / site


def _new_key(site_dir: Path) -> SigningKey:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    site_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(site_dir, 0o700)
    key = SigningKey(Ed25519PrivateKey.generate())
    pem = key.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    private_path = site_dir / f"{key.key_id}.key"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    (site_dir / f"{key.key_id}.pub").write_text(base64.b64encode(key.public_raw).decode() + "\n")
    return key


def init(site: str, root: Path) -> SigningKey:
    """The site's first key; refuses when it has one (rotate instead)."""
    existing = signing_keys(site, root, required=False)
    if existing:
        ids = ", ".join(k.key_id for k in existing)
        raise KeyringError(
            f"site {site!r} already has key {ids} in {root / site}: use `citywatch keys rotate`"
        )
    return _new_key(_site_dir(root, site))


def rotate(site: str, root: Path) -> SigningKey:
    """A new key beside the current ones: configs are signed by all of them until the old is retired."""
    if not signing_keys(site, root, required=False):
        raise KeyringError(
            f"site {site!r} has no key in {root / site}: run `citywatch keys init --site {site}`"
        )
    return _new_key(_site_dir(root, site))


def retire(site: str, key_id: str, root: Path) -> None:
    keys = signing_keys(site, root)
    if key_id not in {k.key_id for k in keys}:
        raise KeyringError(f"site {site!r} has no active key {key_id}: {', '.join(k.key_id for k in keys)}")
    if len(keys) == 1:
        raise KeyringError(
            f"{key_id} is the site's only key: rotate first, push to every device, then retire"
        )
    retired = _site_dir(root, site) / "retired"
    retired.mkdir(mode=0o700, exist_ok=True)
    for suffix in (".key", ".pub"):
        shutil.move(_site_dir(root, site) / f"{key_id}{suffix}", retired / f"{key_id}{suffix}")


def signing_keys(site: str, root: Path, *, required: bool = True) -> list[SigningKey]:
    """The site's active keys, oldest first."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    site_dir = _site_dir(root, site)
    paths = (
        sorted(site_dir.glob("*.key"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        if site_dir.is_dir()
        else []
    )
    keys = []
    for path in paths:
        if path.stat().st_mode & 0o077:
            raise KeyringError(
                f"{path} can be read by others (mode {oct(path.stat().st_mode & 0o777)}): chmod 600 it"
            )
        private = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyringError(f"{path} is not an Ed25519 key")
        keys.append(SigningKey(private))
    if required and not keys:
        raise KeyringError(
            f"no signing key for site {site!r} in {site_dir}: run `citywatch keys init --site {site}`"
        )
    return keys


def trusted_keys(keys: list[SigningKey]) -> list[TrustedKey]:
    return [key.trusted for key in keys]
