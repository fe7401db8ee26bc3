"""/devices/{id}/cmd and /config: send a command or a configuration (installers and admins); the audit.

For integrators testing a device: what the gateway sends is the protocol's own message, and the
device's ``ack`` shows up in ``GET /devices/{id}/audit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy.orm import Session

from gateway.api.deps import ServicesDep, SessionDep
from gateway.api.responses import FORBIDDEN, UNREADABLE_BODY, unavailable
from gateway.auth.deps import AnyCaller, InstallerCaller
from gateway.db import utcnow
from gateway.devices import commands
from gateway.devices import service as devices_service
from gateway.devices.models import Device, DeviceAuditRead
from gateway.devices.views import NO_SUCH_DEVICE, DeviceId

router = APIRouter(prefix="/devices", tags=["devices"])

SEND_RESPONSES = (
    UNREADABLE_BODY
    | FORBIDDEN
    | NO_SUCH_DEVICE
    | unavailable("The gateway is not connected to the MQTT broker: nothing was sent")
)


def _device(session: Session, device_id: str) -> Device:
    device = devices_service.get(session=session, device_id=device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} is not provisioned")
    return device


def _sent(session: Session, send: Callable[[], commands.SentToDevice]) -> commands.SentToDevice:
    """Send, then commit its audit entry; 503 when there is no broker connection (nothing sent)."""
    try:
        sent = send()
    except commands.NotConnected as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "5"}
        ) from None
    session.commit()
    return sent


@router.post(
    "/{device_id}/cmd",
    response_model=commands.SentToDevice,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a command to a device (it expires; the device's answer appears in its audit)",
    responses=SEND_RESPONSES,
)
def send_command(
    device_id: DeviceId,
    body: commands.CommandRequest,
    caller: InstallerCaller,
    session: SessionDep,
    services: ServicesDep,
) -> commands.SentToDevice:
    device = _device(session, device_id)
    return _sent(
        session,
        lambda: commands.send_command(
            session=session,
            device=device,
            request=body,
            caller=caller,
            publish=services.publish_to_device,
            now=utcnow(),
            default_expiry_s=services.settings.COMMAND_EXPIRY_S,
        ),
    )


@router.post(
    "/{device_id}/config",
    response_model=commands.SentToDevice,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Push a configuration to a device (retained; its answer appears in its audit)",
    responses=SEND_RESPONSES,
)
def send_config(
    device_id: DeviceId,
    body: commands.ConfigRequest,
    caller: InstallerCaller,
    session: SessionDep,
    services: ServicesDep,
) -> commands.SentToDevice:
    device = _device(session, device_id)
    return _sent(
        session,
        lambda: commands.send_config(
            session=session,
            device=device,
            request=body,
            caller=caller,
            publish=services.publish_to_device,
            now=utcnow(),
        ),
    )


@router.get(
    "/{device_id}/audit",
    response_model=list[DeviceAuditRead],
    summary="A device's audit trail, oldest first: commands and configs sent, its acks, resets, type flags",
    responses=NO_SUCH_DEVICE,
)
def device_audit(
    device_id: DeviceId,
    _caller: AnyCaller,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="The latest this many entries")] = 100,
) -> list[DeviceAuditRead]:
    _device(session, device_id)
    trail = devices_service.audit_trail(session=session, device_id=device_id, limit=limit)
    return [DeviceAuditRead.model_validate(entry) for entry in trail]
