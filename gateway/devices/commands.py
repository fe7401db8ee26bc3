"""Commands and configuration pushes sent to a device through the API, and the device's answers.

The gateway builds the protocol message itself (a ``CommandMessage`` that expires, or the retained
``ConfigMessage``), so what reaches the device is valid by the same models the devices use; it publishes
it on the ingest's MQTT session and audits it with the caller's token name and role. The device's
``ack`` is audited when it arrives. Notes never carry argument or configuration values: a pushed
configuration holds the device's broker URL, and the device audit is readable by every role.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from citywatch.protocol.messages import (
    CMD_ID_PATTERN,
    NAME_PATTERN,
    AckMessage,
    CommandMessage,
    ConfigMessage,
    ConfigSignature,
    FilePath,
    Sha256,
    Timestamp,
    TrustedKey,
)
from citywatch.protocol.messages import config_version as protocol_config_version
from citywatch.protocol.topics import Channel, Topic
from gateway.auth.models import Principal
from gateway.devices import service as devices_service
from gateway.devices.models import Device, DeviceAudit
from gateway.fields import JsonInteger, Name
from gateway.redaction import redact_text

# (topic, payload, retain) -> False when the gateway is not connected to the broker: nothing was sent.
DevicePublish = Callable[[str, bytes, bool], bool]
MAX_EXPIRY_S = 86_400


CmdId = Annotated[
    str | None,
    Field(
        pattern=CMD_ID_PATTERN,
        title="Command id",
        description="Echoed in the device's ack; unique per device. Default: a fresh one.",
    ),
]


class _SentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _encodable(self) -> Self:
        """JSON can carry lone surrogates ("\\ud800"); UTF-8, and so MQTT, cannot."""
        try:
            json.dumps(self.model_dump(), ensure_ascii=False, default=str).encode()
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (a lone surrogate cannot be sent)") from None
        return self


class CommandRequest(_SentBody):
    """A command for one device; the gateway adds its id, time and expiry."""

    command: str = Field(
        pattern=NAME_PATTERN,
        title="Command",
        description="ping, report_now, release_door (elevator); a device answers an unknown command with "
        "ok false, reason unknown_command.",
        examples=["report_now"],
    )
    args: dict[str, Any] = Field(
        default_factory=dict, max_length=32, title="Arguments", description="Command arguments."
    )
    expires_in_s: Annotated[int, JsonInteger(ge=1, le=MAX_EXPIRY_S)] | None = Field(
        default=None,
        title="Expires in, seconds",
        description="The device does not run the command after this (it acks ok false, reason expired). "
        "Default CITYWATCH_COMMAND_EXPIRY_S.",
    )
    cmd_id: CmdId = None


class ConfigRequest(_SentBody):
    """The desired configuration of one device, published retained on its ``config`` topic.

    Signed (what ``citywatch config push`` sends): ``issued_at``, ``trusted_keys``, ``files`` and
    ``signatures`` are relayed unchanged; the gateway holds no key, signs and checks nothing: the device
    judges (a device booted from a bundle refuses a config without a valid signature by a key it trusts).
    """

    config: dict[str, Any] = Field(
        title="Configuration",
        description="In the schema of the device's YAML file (firmware_configs/schema/); the device "
        "validates it and answers every mistake in its ack (ok false, reason invalid).",
    )
    config_version: Annotated[str, Name(64, min_length=1)] | None = Field(
        default=None,
        title="Config version",
        description="Default: the protocol's version of config (12 hex digits of the SHA-256 of its canonical "
        "JSON), the one a device reports for it when it is complete (defaults filled in, as `citywatch "
        "config push` sends it).",
    )
    cmd_id: CmdId = None
    issued_at: Timestamp | None = Field(
        default=None, title="Issued at", description="Signed configs: ISO 8601 with a UTC offset."
    )
    trusted_keys: list[TrustedKey] | None = Field(
        default=None, max_length=16, title="Trusted keys", description="Signed configs."
    )
    files: dict[FilePath, Sha256] | None = Field(
        default=None, max_length=64, title="File hashes", description="Signed configs."
    )
    signatures: list[ConfigSignature] | None = Field(
        default=None, max_length=8, title="Signatures", description="Ed25519, by the site's desk keys."
    )


class SentToDevice(BaseModel):
    """What the gateway published; the device's answer appears in GET /devices/{id}/audit (action ack)."""

    device_id: str
    channel: Literal["cmd", "config"]
    topic: str
    cmd_id: str = Field(description="The device's ack carries it.")
    ts: datetime = Field(description="When the gateway sent it.")
    expires: datetime | None = Field(description="cmd: the device does not run it after this; config: null.")
    config_version: str | None = Field(description="config: the version sent; cmd: null.")
    retained: bool = Field(description="config is retained: a device that is away gets it when it connects.")


class NotConnected(RuntimeError):
    """The gateway has no MQTT connection: nothing was sent."""


def new_cmd_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def send_command(
    *,
    session: Session,
    device: Device,
    request: CommandRequest,
    caller: Principal,
    publish: DevicePublish,
    now: datetime,
    default_expiry_s: int,
) -> SentToDevice:
    """Publish ``request`` to the device's ``cmd`` topic and audit it (raises ``NotConnected``)."""
    expires = now + timedelta(seconds=request.expires_in_s or default_expiry_s)
    message = CommandMessage(
        cmd_id=request.cmd_id or new_cmd_id("cmd"),
        ts=now,
        command=request.command,
        args=request.args,
        expires=expires,
    )
    arguments = f"args: {', '.join(sorted(request.args))}" if request.args else "no args"
    note = f"{message.command} ({arguments}), expires {expires.isoformat()}"
    return _send(session=session, device=device, caller=caller, publish=publish, message=message, note=note)


def send_config(
    *,
    session: Session,
    device: Device,
    request: ConfigRequest,
    caller: Principal,
    publish: DevicePublish,
    now: datetime,
) -> SentToDevice:
    """Publish the configuration retained on the device's ``config`` topic and audit it."""
    message = ConfigMessage(
        cmd_id=request.cmd_id or new_cmd_id("cfg"),
        ts=now,
        config_version=request.config_version or protocol_config_version(request.config),
        config=request.config,
        issued_at=request.issued_at,
        trusted_keys=request.trusted_keys,
        files=request.files,
        signatures=request.signatures,
    )
    sections = ", ".join(sorted(request.config)) or "empty"
    signed = (
        f"signed by {', '.join(s.key_id for s in request.signatures)}" if request.signatures else "unsigned"
    )
    note = f"config {message.config_version} (sections: {sections}), {signed}, retained"
    # Desired before it is sent: the device's answer can reach the ingest before this request ends, and
    # its version is taken as the desired one only when it answers the desired cmd_id.
    previous = (device.desired_config_version, device.desired_config_cmd_id, device.desired_config_at)
    device.desired_config_version, device.desired_config_cmd_id = message.config_version, message.cmd_id
    device.desired_config_at = now
    session.commit()
    try:
        return _send(
            session=session, device=device, caller=caller, publish=publish, message=message, note=note
        )
    except NotConnected:
        device.desired_config_version, device.desired_config_cmd_id, device.desired_config_at = previous
        session.commit()
        raise


def _send(
    *,
    session: Session,
    device: Device,
    caller: Principal,
    publish: DevicePublish,
    message: CommandMessage | ConfigMessage,
    note: str,
) -> SentToDevice:
    """Publish (a configuration retained), then audit with the caller; raises ``NotConnected``."""
    if isinstance(message, ConfigMessage):
        channel, expires, version = Channel.CONFIG, None, message.config_version
    else:
        channel, expires, version = Channel.CMD, message.expires, None
    retained = channel is Channel.CONFIG
    topic = str(Topic(site=device.site, device_id=device.id, channel=channel))
    if not publish(topic, message.to_json(), retained):
        raise NotConnected(
            "the gateway is not connected to the MQTT broker: nothing was sent; try again later"
        )
    devices_service.audit(
        session=session,
        device_id=device.id,
        action=channel.value,
        actor=caller.name,
        role=caller.role.value,
        cmd_id=message.cmd_id,
        at=message.ts,
        note=note,
    )
    return SentToDevice(
        device_id=device.id,
        channel="config" if retained else "cmd",
        topic=topic,
        cmd_id=message.cmd_id,
        ts=message.ts,
        expires=expires,
        config_version=version,
        retained=retained,
    )


def record_ack(*, session: Session, device_id: str, ack: AckMessage, at: datetime) -> bool:
    """Audit a device's answer once (QoS 1 repeats it; a retained config is answered at every connect).

    A config ack naming the version the device runs updates its reported version every time; the
    accepted answer to the desired push also names the desired version as the device counts it (a
    config sent without its defaults is one the device fills in: its version is the device's)."""
    if ack.config_version is not None:
        device = session.get(Device, device_id)
        if device is not None:
            devices_service.report_config_version(device=device, version=ack.config_version, at=at)
            if ack.ok and ack.cmd_id == device.desired_config_cmd_id:
                device.desired_config_version = ack.config_version
    answered = session.scalar(
        select(DeviceAudit.id)
        .where(
            DeviceAudit.device_id == device_id, DeviceAudit.action == "ack", DeviceAudit.cmd_id == ack.cmd_id
        )
        .limit(1)
    )
    if answered is not None:
        return False
    outcome = "ok" if ack.ok else f"not done ({ack.reason})" if ack.reason else "not done"
    devices_service.audit(
        session=session,
        device_id=device_id,
        action="ack",
        actor=device_id,
        cmd_id=ack.cmd_id,
        at=at,
        # The device's own words may quote what it was sent (a broker URL in a refused config).
        note=redact_text(f"{outcome}: {ack.message}" if ack.message else outcome),
    )
    return True
