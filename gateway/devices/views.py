"""/devices routes: reads for every role; provisioning, area changes and broker accounts for installers."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from citywatch.protocol.topics import ID_PATTERN
from gateway.api.deps import ServicesDep, SessionDep
from gateway.api.responses import FORBIDDEN, UNREADABLE_BODY, conflict, not_found
from gateway.auth.deps import AnyCaller, InstallerCaller
from gateway.devices import service
from gateway.devices.models import (
    DeviceCreate,
    DeviceDetail,
    DeviceRead,
    DeviceUpdate,
    MqttCredential,
    RefusalRead,
)
from gateway.fields import Name
from gateway.settings import Settings

router = APIRouter(prefix="/devices", tags=["devices"])
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="The device id, as in its MQTT topics")]
NO_SUCH_DEVICE = not_found("No such device")


def _silent_after(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.DEVICE_OFFLINE_AFTER_S)


@router.get("", response_model=list[DeviceRead], summary="Provisioned devices with their presence")
def list_devices(
    _caller: AnyCaller,
    session: SessionDep,
    services: ServicesDep,
    site: Annotated[Annotated[str, Name(64)] | None, Query(description="Only devices of this site")] = None,
) -> list[DeviceRead]:
    silent_after = _silent_after(services.settings)
    return [
        service.to_read(d, silent_after=silent_after) for d in service.list_all(session=session, site=site)
    ]


@router.get(
    "/{device_id}",
    response_model=DeviceDetail,
    summary="One device, with the last messages refused from it",
    responses=NO_SUCH_DEVICE,
)
def get_device(
    device_id: DeviceId, _caller: AnyCaller, session: SessionDep, services: ServicesDep
) -> DeviceDetail:
    device = service.get(session=session, device_id=device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} is not provisioned")
    read = service.to_read(device, silent_after=_silent_after(services.settings))
    refusals = [RefusalRead.model_validate(refusal) for refusal in services.recent_refusals(device_id)]
    return DeviceDetail(**dict(read), refusals=refusals)


@router.post(
    "",
    response_model=DeviceRead,
    status_code=status.HTTP_201_CREATED,
    summary="Provision a device (its messages are refused until it is)",
    responses=UNREADABLE_BODY | FORBIDDEN | conflict("The device id is already registered"),
)
def create_device(
    device_in: DeviceCreate, _caller: InstallerCaller, session: SessionDep, services: ServicesDep
) -> DeviceRead:
    try:
        device = service.create(session=session, device_in=device_in)
        session.commit()
    except service.DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return service.to_read(device, silent_after=_silent_after(services.settings))


@router.patch(
    "/{device_id}",
    response_model=DeviceRead,
    summary="Change where a device is (site, grid, town, latitude/longitude, description)",
    responses=UNREADABLE_BODY
    | FORBIDDEN
    | NO_SUCH_DEVICE
    | conflict("latitude or longitude given alone, and the device's stored position lacks the other"),
)
def update_device(
    device_id: DeviceId,
    changes: DeviceUpdate,
    _caller: InstallerCaller,
    session: SessionDep,
    services: ServicesDep,
) -> DeviceRead:
    try:
        device = service.update_area(session=session, device_id=device_id, changes=changes)
        session.commit()
    except service.DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ValueError as exc:  # the change is valid, but not with what is stored
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if "site" in changes.model_fields_set:
        services.directory.forget(device_id)  # the ingest checks topics against the new site from now on
    return service.to_read(device, silent_after=_silent_after(services.settings))


@router.put(
    "/{device_id}/mqtt-credential",
    response_model=DeviceRead,
    summary="Set the device's broker account (user and password hash, as `citywatch config flash` made them)",
    description="The password itself never reaches the gateway: the hash goes into the broker's password "
    "file at the next `citywatch gateway broker-acl`. Audited (action mqtt_credential).",
    responses=UNREADABLE_BODY
    | FORBIDDEN
    | NO_SUCH_DEVICE
    | conflict("The MQTT user belongs to another device"),
)
def set_mqtt_credential(
    device_id: DeviceId,
    credential: MqttCredential,
    caller: InstallerCaller,
    session: SessionDep,
    services: ServicesDep,
) -> DeviceRead:
    try:
        device = service.set_credential(
            session=session,
            device_id=device_id,
            username=credential.username,
            password_hash=credential.password_hash,
            actor=caller.name,
            role=caller.role.value,
        )
        session.commit()
    except service.DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except service.DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return service.to_read(device, silent_after=_silent_after(services.settings))


@router.delete(
    "/{device_id}/mqtt-credential",
    response_model=DeviceRead,
    summary="Revoke the device's broker account (locked out after the next broker-acl and broker reload)",
    responses=FORBIDDEN | NO_SUCH_DEVICE,
)
def revoke_mqtt_credential(
    device_id: DeviceId, caller: InstallerCaller, session: SessionDep, services: ServicesDep
) -> DeviceRead:
    try:
        device = service.revoke_credential(
            session=session, device_id=device_id, actor=caller.name, role=caller.role.value
        )
        session.commit()
    except service.DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return service.to_read(device, silent_after=_silent_after(services.settings))
