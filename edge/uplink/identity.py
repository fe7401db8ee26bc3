"""Who an uplink speaks for: the device's topics, and the state it announces as birth and will."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from citywatch.protocol.messages import DeviceType, StateMessage
from citywatch.protocol.topics import Channel, Topic


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    site: str
    device_id: str
    device_type: DeviceType
    config_version: str
    firmware_version: str

    def topic(self, channel: Channel) -> str:
        return str(Topic(self.site, self.device_id, channel))

    def state(self, status: Literal["online", "offline"], session: int) -> bytes:
        return StateMessage(
            device_id=self.device_id,
            ts=datetime.now(UTC),
            status=status,
            session=session,
            device_type=self.device_type,
            firmware_version=self.firmware_version,
            config_version=self.config_version,
        ).to_json()
