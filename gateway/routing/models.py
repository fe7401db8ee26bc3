"""The routing table: departments, rules (event type + area -> department + SLA), default SLA, triage.

Loaded from YAML by ``gateway.routing.service.load_routing``, which reports every mistake
at once with its path (``rules[2].department: ...``).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from citywatch.protocol.messages import EventType, Severity
from citywatch.protocol.topics import ID_PATTERN
from gateway.events.lifecycle.sla import EscalationPolicy

WILDCARD = "*"
_DURATION_RE = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")
_AREA_PATTERN_RE = re.compile(r"^[a-z0-9_*?-]{1,64}$")


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``, ``"1h30m"``, or seconds as a number."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration: write e.g. 30m, 2h, 1d or 1h30m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)) and any(match.groups()):
        days, hours, minutes, secs = (int(group or 0) for group in match.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    else:
        raise ValueError(f"{value!r} is not a duration: write e.g. 30m, 2h, 1d or 1h30m")
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be longer than zero")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PayloadFormat(StrEnum):
    JSON = "json"  # the gateway's event JSON
    CAP = "cap"  # a CAP 1.2 alert (XML)


class Webhook(_Strict):
    url: AnyHttpUrl = Field(title="Endpoint URL", description="Where events are POSTed (Standard Webhooks).")
    secrets: list[str] = Field(
        min_length=1,
        title="Signing secrets",
        description="Standard Webhooks secrets ('whsec_' + base64). Every one signs each push, so a "
        "department can rotate: add the new secret, switch the receiver, then drop the old one.",
    )
    format: PayloadFormat = Field(default=PayloadFormat.JSON, title="Payload format")

    @field_validator("secrets")
    @classmethod
    def _standard_webhooks_secrets(cls, secrets: list[str]) -> list[str]:
        for position, secret in enumerate(secrets):
            where = f"secret #{position + 1}"
            if not secret.startswith("whsec_"):
                raise ValueError(f"{where} must start with 'whsec_' followed by base64 (Standard Webhooks)")
            try:
                key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            except binascii.Error:
                raise ValueError(f"{where}: the part after 'whsec_' is not valid base64") from None
            if len(key) < 24:
                raise ValueError(f"{where} is only {len(key)} bytes; use at least 24 random bytes")
        if len(set(secrets)) != len(secrets):
            raise ValueError("the same secret is listed twice")
        return secrets


class Department(_Strict):
    id: str = Field(pattern=ID_PATTERN, title="Department id", examples=["transport_bureau"])
    name: str = Field(min_length=1, max_length=200, title="Display name")
    webhook: Webhook | None = Field(
        default=None, title="Push endpoint", description="None: the department works from the console only."
    )


class SlaBySeverity(_Strict):
    """Time to resolve, per severity. A rule may give only some; the rest come from ``default_sla``."""

    critical: Duration | None = None
    warning: Duration | None = None
    notice: Duration | None = None
    info: Duration | None = None

    def for_severity(self, severity: Severity) -> timedelta | None:
        value: timedelta | None = getattr(self, severity.value)
        return value


class FullSla(SlaBySeverity):
    critical: Duration
    warning: Duration
    notice: Duration
    info: Duration


class Area(_Strict):
    """Where a rule applies. Glob patterns (``*``, ``?``): ``*`` matches anything, including unknown."""

    site: str = Field(default=WILDCARD, title="Site")
    grid: str = Field(default=WILDCARD, title="Grid (community cell)")
    town: str = Field(default=WILDCARD, title="Town / street office")

    @field_validator("site", "grid", "town")
    @classmethod
    def _glob(cls, value: str) -> str:
        if not _AREA_PATTERN_RE.match(value):
            raise ValueError(
                f"{value!r} is not an area pattern: use 1-64 of a-z, 0-9, '_', '-' and the wildcards '*' and '?'"
            )
        return value


def _expand_wildcard(value: Any) -> Any:
    return list(EventType) if value == WILDCARD else value


class Rule(_Strict):
    id: str = Field(pattern=ID_PATTERN, title="Rule id", description="Recorded with every routed event.")
    event_types: Annotated[list[EventType], BeforeValidator(_expand_wildcard)] = Field(
        title="Event types", description="The types this rule routes, or '*' for every type."
    )
    area: Area = Field(default_factory=Area, title="Area")
    department: str = Field(title="Department id")
    sla: SlaBySeverity = Field(default_factory=SlaBySeverity, title="SLA overrides")

    @field_validator("event_types")
    @classmethod
    def _not_empty(cls, value: list[EventType]) -> list[EventType]:
        if not value:
            raise ValueError("list at least one event type, or '*' for every type")
        return value

    @field_validator("department")
    @classmethod
    def _known_department(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("department_ids")
        if known is not None and value not in known:
            raise ValueError(
                f"unknown department {value!r}; departments are: {', '.join(sorted(known)) or 'none'}"
            )
        return value


class Triage(_Strict):
    queue: str = Field(default="triage", pattern=ID_PATTERN, title="Triage queue name")
    sla: Duration = Field(
        default=timedelta(minutes=30),
        title="Time to route by hand",
        description="How long an unmatched event may wait for a dispatcher before it escalates.",
    )


class Escalation(_Strict):
    yellow_at: float = Field(
        default=0.8, gt=0, lt=1, title="Yellow at", description="Fraction of the allowed time used."
    )
    urge_every: Duration = Field(default=timedelta(minutes=30), title="Urge again every")
    max_urges: int | None = Field(default=None, ge=0, title="Most urges", description="None: until resolved.")

    def policy(self) -> EscalationPolicy:
        return EscalationPolicy(
            yellow_at=self.yellow_at, urge_every=self.urge_every, max_urges=self.max_urges
        )


class RoutingTable(_Strict):
    version: Literal[1] = Field(default=1, title="Schema version")
    departments: list[Department] = Field(min_length=1, title="Departments")
    rules: list[Rule] = Field(default_factory=list, title="Rules", description="First match wins.")
    default_sla: FullSla = Field(title="Default SLA", description="Used where a rule gives none.")
    triage: Triage = Field(default_factory=Triage, title="Triage queue for unmatched events")
    escalation: Escalation = Field(default_factory=Escalation, title="Escalation schedule")

    @field_validator("departments")
    @classmethod
    def _unique_department_ids(cls, departments: list[Department]) -> list[Department]:
        _raise(duplicates_message([department.id for department in departments], what="department id"))
        return departments

    @field_validator("rules")
    @classmethod
    def _unique_reachable_rules(cls, rules: list[Rule]) -> list[Rule]:
        _raise(duplicates_message([rule.id for rule in rules], what="rule id"))
        shadowed = []
        for position, rule in enumerate(rules):
            cover = next(
                (
                    earlier
                    for earlier in rules[:position]
                    if earlier.area == Area() and set(rule.event_types) <= set(earlier.event_types)
                ),
                None,
            )
            if cover is not None:
                shadowed.append(
                    f"rule {rule.id!r} can never match: rule {cover.id!r} before it matches everything it does"
                )
        if shadowed:
            raise ValueError("; ".join(shadowed) + " (first match wins: put specific rules first)")
        return rules

    @model_validator(mode="after")
    def _rules_reference_departments(self) -> RoutingTable:
        # Normally caught per rule through the validation context; this covers direct model_validate().
        known = {department.id for department in self.departments}
        unknown = sorted({rule.department for rule in self.rules} - known)
        if unknown:
            raise ValueError(f"rules reference unknown departments: {', '.join(unknown)}")
        return self

    def department(self, department_id: str) -> Department:
        return next(department for department in self.departments if department.id == department_id)


def duplicates_message(ids: list[Any], *, what: str) -> str | None:
    """Which ids repeat and where, or None. Also run on the raw YAML so it is reported with other mistakes."""
    positions: dict[Any, list[int]] = {}
    for position, value in enumerate(ids):
        positions.setdefault(value, []).append(position)
    repeated = [
        f"{value!r} at positions {', '.join(map(str, where))}"
        for value, where in positions.items()
        if len(where) > 1
    ]
    return f"each {what} must be unique: {'; '.join(repeated)}" if repeated else None


def _raise(message: str | None) -> None:
    if message is not None:
        raise ValueError(message)
