"""Topic tree: ``citywatch/v1/{site}/{device_id}/{channel}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

ROOT = "citywatch"
VERSION_SEGMENT = "v1"
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
_OTHER_VERSION = re.compile(r"v[0-9]+\Z")


class Channel(StrEnum):
    """Per-device channels. Direction, QoS and retain flags are in docs/protocol.md."""

    STATE = "state"  # device -> gateway, retained: birth (online) and will (offline)
    TELEMETRY = "telemetry"  # device -> gateway
    EVENT = "event"  # device -> gateway
    SNAPSHOT = "snapshot"  # device -> gateway: evidence image for an event
    EVIDENCE = "evidence"  # device -> gateway: one part of an event's evidence item (clip, photo...)
    ACK = "ack"  # device -> gateway: answer to a cmd or config
    CMD = "cmd"  # gateway -> device
    CONFIG = "config"  # gateway -> device, retained: desired configuration
    RECEIPT = "receipt"  # gateway -> device: which numbered messages are stored (end-to-end delivery)
    REFUSAL = "refusal"  # gateway -> device: what the gateway refused of this device's input, and why


DEVICE_TO_GATEWAY = frozenset(
    {Channel.STATE, Channel.TELEMETRY, Channel.EVENT, Channel.SNAPSHOT, Channel.EVIDENCE, Channel.ACK}
)
# Not ``ack`` for refusals: ``ack`` is device input, a refusal published there would be refused again.
GATEWAY_TO_DEVICE = frozenset({Channel.CMD, Channel.CONFIG, Channel.RECEIPT, Channel.REFUSAL})
# What the gateway subscribes to: every version, channel and shape under the root, so that what breaks
# the contract is refused by reason (wrong_version, bad_topic) rather than never seen.
EVERYTHING = f"{ROOT}/#"


class TopicError(ValueError):
    """A topic that is not part of the contract."""


class TopicVersionError(TopicError):
    """A citywatch topic of another version (``citywatch/v2/...``): refused as ``wrong_version``."""


def validate_id(value: str, *, what: str) -> str:
    if not _ID_RE.match(value):
        raise TopicError(
            f"{what} {value!r} is not valid: use 1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    device_id: str
    channel: Channel

    def __post_init__(self) -> None:
        validate_id(self.site, what="site")
        validate_id(self.device_id, what="device_id")

    def __str__(self) -> str:
        return f"{ROOT}/{VERSION_SEGMENT}/{self.site}/{self.device_id}/{self.channel.value}"

    @classmethod
    def parse(cls, topic: str) -> Topic:
        parts = topic.split("/")
        # The version first: another version may shape the rest of its tree differently.
        if (
            len(parts) >= 2
            and parts[0] == ROOT
            and parts[1] != VERSION_SEGMENT
            and _OTHER_VERSION.match(parts[1])
        ):
            raise TopicVersionError(
                f"topic version {parts[1]!r} is not supported (this gateway speaks {VERSION_SEGMENT})"
            )
        if len(parts) != 5 or parts[0] != ROOT or parts[1] != VERSION_SEGMENT:
            raise TopicError(f"topic {topic!r} is not citywatch/v1/<site>/<device_id>/<channel>")
        try:
            channel = Channel(parts[4])
        except ValueError:
            raise TopicError(f"unknown channel {parts[4]!r} in topic {topic!r}") from None
        return cls(site=parts[2], device_id=parts[3], channel=channel)


def gateway_to_device(topic: str) -> bool:
    """A v1 topic the gateway publishes on (``cmd``, ``config``, ...): not input for the gateway."""
    parts = topic.split("/")
    return (
        len(parts) == 5 and parts[0] == ROOT and parts[1] == VERSION_SEGMENT and parts[4] in GATEWAY_TO_DEVICE
    )


def subscription(channel: Channel | None = None, *, site: str = "+", device_id: str = "+") -> str:
    """Wildcard filter, e.g. all events from every device: ``citywatch/v1/+/+/event``."""
    last = channel.value if channel is not None else "+"
    return f"{ROOT}/{VERSION_SEGMENT}/{site}/{device_id}/{last}"
