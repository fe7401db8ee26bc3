"""What a CAP 1.2 message is made from: a view of the event, the change being announced, options."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol, get_args

from citywatch.protocol.messages import EventType, Severity

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MEDIA_TYPE = "application/cap+xml"
# CAP 1.2 forbids whitespace, commas and the XML specials '&' '<' in identifier and sender.
CAP_TOKEN_PATTERN = r"^[^\s,&<]+$"  # CAP 1.2 <sender>, <identifier>: no spaces, commas, '&' or '<'
CapStatus = Literal["Actual", "Exercise", "System", "Test", "Draft"]
_CAP_TOKEN_RE = re.compile(CAP_TOKEN_PATTERN)


class CapChange(StrEnum):
    """What a message announces; decides its msgType."""

    RAISED = "raised"  # a new event -> Alert
    UPDATED = "updated"  # severity, state or details changed -> Update
    ENDED = "ended"  # the condition is over -> Cancel (response AllClear)
    FALSE_ALARM = "false_alarm"  # withdrawn as a false alarm -> Cancel

    @property
    def msg_type(self) -> str:
        return _MSG_TYPE[self]


_MSG_TYPE = {
    CapChange.RAISED: "Alert",
    CapChange.UPDATED: "Update",
    CapChange.ENDED: "Cancel",
    CapChange.FALSE_ALARM: "Cancel",
}


@dataclass(frozen=True, slots=True)
class TypeProfile:
    """How one citywatch event type reads in CAP."""

    categories: tuple[str, ...]
    event: str  # CAP <event>: the subject, for people
    response: str  # CAP <responseType> while the condition lasts
    instruction: str
    # <expires> = sent + this: how long a message stays true without a newer one (every change and every
    # repeat of the condition sends one; escalations too). Long enough to outlast a quiet spell, short
    # enough that a receiver which missed the Cancel drops it the same shift.
    valid_for: timedelta = timedelta(hours=6)


TYPE_PROFILES: Mapping[str, TypeProfile] = {
    EventType.WATER_LEVEL: TypeProfile(
        ("Met", "Transport"),
        "Road flooding at culvert",
        "Avoid",
        "Close the road section and clear the culvert.",
        valid_for=timedelta(hours=6),  # a flood lasts hours; repeats refresh it
    ),
    EventType.WATER_RISING_FAST: TypeProfile(
        ("Met", "Transport"),
        "Water rising fast at culvert",
        "Prepare",
        "Prepare to close the road section.",
        valid_for=timedelta(hours=2),  # a warning of what comes next: stale quickly
    ),
    EventType.SENSOR_FAULT: TypeProfile(
        ("Infra",),
        "Culvert sensor fault",
        "Assess",
        "Inspect the sensor; water levels there are not watched.",
        valid_for=timedelta(hours=24),  # stays until someone repairs it
    ),
    EventType.EBIKE_IN_ELEVATOR: TypeProfile(
        ("Fire", "Safety"),
        "E-bike in elevator",
        "Execute",
        "Remove the e-bike from the elevator (battery fire risk).",
        valid_for=timedelta(hours=1),  # a ride: minutes, not hours
    ),
    EventType.OBJECT_THROWN: TypeProfile(
        ("Safety",),
        "Object thrown from height",
        "Assess",
        "Check the area below the facade and identify the floor.",
        valid_for=timedelta(hours=2),
    ),
    EventType.ILLEGAL_PARKING: TypeProfile(
        ("Transport",),
        "Illegal parking",
        "Execute",
        "Have the vehicle moved; keep the fire lane clear.",
        valid_for=timedelta(hours=4),
    ),
    EventType.DEVICE_OFFLINE: TypeProfile(
        ("Infra",),
        "Monitoring device offline",
        "Assess",
        "Check the device's power and network.",
        valid_for=timedelta(hours=24),
    ),
    EventType.CONFIG_DRIFT: TypeProfile(
        ("Infra",),
        "Monitoring device runs an outdated configuration",
        "Assess",
        "Push the configuration again or visit the device (citywatch device check).",
        valid_for=timedelta(hours=24),
    ),
}
_UNKNOWN_PROFILE = TypeProfile(("Other",), "citywatch event", "Assess", "Assess the situation.")


def type_profile(event_type: str) -> TypeProfile:
    return TYPE_PROFILES.get(event_type, _UNKNOWN_PROFILE)


# CAP severity: Extreme is kept for extraordinary threats to life, which a single sensor cannot judge.
CAP_SEVERITY = {
    Severity.CRITICAL: "Severe",
    Severity.WARNING: "Moderate",
    Severity.NOTICE: "Minor",
    Severity.INFO: "Minor",
}
CAP_URGENCY = {
    Severity.CRITICAL: "Immediate",
    Severity.WARNING: "Immediate",
    Severity.NOTICE: "Expected",
    Severity.INFO: "Future",
}


def cap_certainty(confidence: float | None) -> str:
    """Sensors measure (Observed); vision detections are Likely or Possible by their confidence."""
    if confidence is None or confidence >= 0.9:
        return "Observed"
    if confidence > 0.5:
        return "Likely"
    return "Possible"


@dataclass(frozen=True, slots=True)
class Circle:
    latitude: float
    longitude: float
    radius_km: float = 0.05

    def __post_init__(self) -> None:
        if not -90 <= self.latitude <= 90 or not -180 <= self.longitude <= 180:
            raise ValueError(f"({self.latitude}, {self.longitude}) is not a WGS 84 latitude, longitude")
        if self.radius_km < 0:
            raise ValueError("radius_km must be 0 or more")

    def __str__(self) -> str:
        return f"{self.latitude:.6f},{self.longitude:.6f} {self.radius_km:g}"


@dataclass(frozen=True, slots=True)
class CapResource:
    """One CAP <resource>: a piece of evidence a receiver can fetch (the URI needs a bearer token)."""

    description: str  # <resourceDesc>
    mime_type: str
    uri: str
    size: int | None = None  # bytes, when known
    digest: str | None = None  # CAP 1.2: SHA-1 of the file, hex

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 0:
            raise ValueError("a resource size is 0 or more bytes")
        if self.digest is not None and not _SHA1_RE.match(self.digest):
            raise ValueError(f"a CAP <digest> is a SHA-1 in hex (40 digits), got {self.digest!r}")


_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class CapEventView:
    """The event as CAP needs it; the gateway builds this from its event row."""

    event_id: str
    event_uid: str  # random, from the event row: identifiers stay unique when the database is rebuilt
    event_type: str
    severity: Severity
    state: str  # the lifecycle state, for the description
    device_id: str
    site: str
    started_at: datetime
    updated_at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    count: int = 1  # device reports merged into the event
    grid: str | None = None
    town: str | None = None
    area_description: str | None = None  # e.g. "Xinqiao Rd culvert, north lane"
    circle: Circle | None = None
    department: str | None = None
    condition_active: bool = True  # False once the device reports it over (the work item may stay open)
    resources: Sequence[CapResource] = ()  # the event's evidence known when the message is made


class StoredEvent(Protocol):
    """The attributes of the gateway's event row that a CAP message uses."""

    id: int
    uid: str
    device_id: str
    site: str
    type: str
    severity: str
    confidence: float
    details: dict[str, Any]
    revisions: int
    started_at: datetime
    updated_at: datetime
    cleared_at: datetime | None


def view_of(
    event: StoredEvent,
    *,
    state: str,
    department: str | None = None,
    grid: str | None = None,
    town: str | None = None,
    area_description: str | None = None,
    circle: Circle | None = None,
    resources: Sequence[CapResource] = (),
) -> CapEventView:
    """A ``CapEventView`` of a stored event (``gateway.events.models.Event``)."""
    return CapEventView(
        event_id=str(event.id),
        event_uid=event.uid,
        event_type=event.type,
        severity=Severity(event.severity),
        state=state,
        device_id=event.device_id,
        site=event.site,
        started_at=event.started_at,
        updated_at=event.updated_at,
        details=dict(event.details),
        confidence=event.confidence,
        count=event.revisions,
        grid=grid,
        town=town,
        area_description=area_description,
        circle=circle,
        department=department,
        condition_active=event.cleared_at is None,
        resources=tuple(resources),
    )


def cap_change(*, chain_open: bool, state: str) -> CapChange:
    """Which change a message announces, from the event's lifecycle state.

    The alert follows the work item, not the device's condition: a cleared condition is an Update
    (the work may go on), closing the item ends the alert, cancelling it is a false alarm. A chain
    ends with its Cancel: an event that comes back to life after one (the condition returned after
    the item was closed) starts a new chain with an Alert, never an Update of a cancelled alert.
    """
    if state == "cancelled":
        return CapChange.FALSE_ALARM
    if state == "closed":
        return CapChange.ENDED
    return CapChange.UPDATED if chain_open else CapChange.RAISED


@dataclass(frozen=True, slots=True)
class CapHistory:
    """An event's earlier messages, oldest first, as (msgType, reference) pairs."""

    messages: Sequence[tuple[str, CapReference]] = ()

    @property
    def open_chain(self) -> list[CapReference]:
        """The messages since the last Cancel: what an Update or Cancel refers to."""
        return self._chains()[1]

    @property
    def last_closed_chain(self) -> list[CapReference]:
        """The chain the last Cancel ended: what a new chain's Alert refers to."""
        return self._chains()[0]

    def _chains(self) -> tuple[list[CapReference], list[CapReference]]:
        closed: list[CapReference] = []
        current: list[CapReference] = []
        for msg_type, reference in self.messages:
            current.append(reference)
            if msg_type == "Cancel":
                closed, current = current, []
        return closed, current

    def next_message(self, *, state: str) -> tuple[CapChange, list[CapReference]]:
        """What the next message announces and which earlier messages it lists in <references>.

        A Cancel for an event with no open chain (cancelled again) refers to the chain already ended.
        """
        change = cap_change(chain_open=bool(self.open_chain), state=state)
        if change is CapChange.RAISED:
            return change, self.last_closed_chain
        return change, self.open_chain or self.last_closed_chain


@dataclass(frozen=True, slots=True)
class CapOptions:
    sender: str = "citywatch@example.org"  # CAP wants a globally unique sender, e.g. an email or domain
    sender_name: str = "citywatch gateway"
    web_base_url: str = "http://127.0.0.1:8080"  # <web> links to {web_base_url}/events/{event_id}
    status: CapStatus = "Actual"  # "Exercise" or "Test" for drills and the demo
    scope: str = "Restricted"  # dispatch traffic, not a public warning
    restriction: str = "For the district dispatch centre and the responsible departments."
    language: str = "en-US"
    contact: str = ""  # <contact>: who answers questions about an alert; empty: the sender
    validity: Mapping[str, timedelta] = field(default_factory=dict)  # per event type, over TYPE_PROFILES
    circle_radius_km: float = 0.1  # the <circle> around a device with coordinates: the street it watches

    def __post_init__(self) -> None:
        if not _CAP_TOKEN_RE.match(self.sender):
            raise ValueError(f"CAP sender {self.sender!r} must not contain spaces, commas, '&' or '<'")
        if self.status not in get_args(CapStatus):
            raise ValueError(
                f"CAP status {self.status!r} is not one of Actual, Exercise, System, Test, Draft"
            )
        if self.scope not in {"Public", "Restricted"}:
            raise ValueError(
                "scope must be Public or Restricted (Private needs addresses, which we do not keep)"
            )
        for event_type, valid_for in self.validity.items():
            if valid_for <= timedelta(0):
                raise ValueError(f"CAP validity of {event_type!r} must be positive, got {valid_for}")
        if self.circle_radius_km < 0:
            raise ValueError("circle_radius_km must be 0 or more")

    def valid_for(self, event_type: str) -> timedelta:
        """How long a message about ``event_type`` stays valid (its <expires> after <sent>)."""
        return self.validity.get(event_type) or type_profile(event_type).valid_for

    @property
    def contact_or_sender(self) -> str:
        return self.contact or self.sender


def cap_time(value: datetime) -> str:
    """CAP's dateTime: whole seconds, in UTC written "-00:00" (CAP 1.2 3.3.2: never "Z", and "+00:00"
    is not how the standard spells UTC either)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: CAP times need a time zone")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")


@dataclass(frozen=True, slots=True)
class CapReference:
    """One earlier message, as CAP's <references> lists it."""

    sender: str
    identifier: str
    sent: datetime

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{cap_time(self.sent)}"


@dataclass(frozen=True, slots=True)
class CapMessage:
    identifier: str
    sender: str
    sent: datetime
    msg_type: str
    headline: str
    xml: bytes

    @property
    def reference(self) -> CapReference:
        return CapReference(sender=self.sender, identifier=self.identifier, sent=self.sent)


def is_cap_token(value: str) -> bool:
    return bool(_CAP_TOKEN_RE.match(value))
