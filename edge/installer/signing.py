"""Ed25519 signatures over configurations (``ConfigMessage.signed_payload()``), made and checked.

A device trusts a list of public keys (``TrustedKey``); a configuration carries one signature per desk
key that signed it. It is accepted when one signature by a trusted key verifies. Two keys sign while a
site rotates its key: devices that trust only the old key accept the config through the old signature
and, from the config's ``trusted_keys``, learn the new one.

``cryptography`` is imported when a key is used, not at import: an agent that never sees a signed
config does not load it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from citywatch.protocol.messages import ConfigMessage, ConfigSignature, TrustedKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class SignatureRejected(Exception):
    """Why a configuration's signatures do not make it trusted; ``reason`` goes into the ack."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


def key_id(public_raw: bytes) -> str:
    """16 hex digits of the raw public key's SHA-256: names a key in signatures and trust lists."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def trusted_key(public_raw: bytes) -> TrustedKey:
    return TrustedKey(key_id=key_id(public_raw), public_key=base64.b64encode(public_raw).decode())


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private Ed25519 key of the desk, with its id."""

    private: Ed25519PrivateKey

    @property
    def public_raw(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    @property
    def trusted(self) -> TrustedKey:
        return trusted_key(self.public_raw)

    def sign(self, payload: bytes) -> ConfigSignature:
        value = base64.b64encode(self.private.sign(payload)).decode()
        return ConfigSignature(key_id=self.key_id, value=value)


def sign_config(message: ConfigMessage, keys: Sequence[SigningKey]) -> ConfigMessage:
    """The message with one signature per key over its signed payload (any previous ones dropped)."""
    if not keys:
        raise ValueError("no signing key: run `citywatch keys init --site SITE` first")
    payload = message.model_copy(update={"signatures": None}).signed_payload()
    return message.model_copy(update={"signatures": [key.sign(payload) for key in keys]})


def verify_config(message: ConfigMessage, trusted: Sequence[TrustedKey]) -> str:
    """The id of the trusted key whose signature verifies; raises ``SignatureRejected`` otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not message.signatures:
        raise SignatureRejected(
            "unsigned", "the config is not signed: this device accepts configs signed by its site key only"
        )
    by_id = {key.key_id: key for key in trusted}
    payload = message.signed_payload()
    failed: list[str] = []
    for signature in message.signatures:
        key = by_id.get(signature.key_id)
        if key is None:
            continue
        try:
            public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key, validate=True))
            public.verify(base64.b64decode(signature.value, validate=True), payload)
        except (InvalidSignature, ValueError, binascii.Error):
            failed.append(signature.key_id)
            continue
        return signature.key_id
    if failed:
        raise SignatureRejected(
            "bad_signature",
            f"the signature by key {', '.join(failed)} does not match the config: it was altered after "
            "signing (or signed wrongly); push it again from the desk",
        )
    signed_by = ", ".join(s.key_id for s in message.signatures)
    trusts = ", ".join(by_id) or "no key"
    raise SignatureRejected(
        "unknown_key",
        f"signed by key {signed_by}, which this device does not trust (it trusts {trusts}): sign with the "
        "site's current key, or push a config signed by a trusted key that lists the new one",
    )
