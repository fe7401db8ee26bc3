"""Gateway settings from the environment (prefix ``CITYWATCH_``), with defaults for a laptop run."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from citywatch.protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES
from citywatch.protocol.messages import MAX_EVIDENCE_CHUNK_BYTES, MAX_EVIDENCE_PARTS, EventType
from gateway.cap.models import CAP_TOKEN_PATTERN, CapStatus


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYWATCH_", extra="forbid")

    MQTT_URL: str = Field(
        default="mqtt://127.0.0.1:1883", title="MQTT broker", description="mqtt://host:port or mqtts://..."
    )
    MQTT_CLIENT_ID: str = Field(
        default="citywatch-gateway",
        min_length=1,
        max_length=64,
        title="MQTT client id",
        description="Stable across restarts: the broker keeps this persistent session's queue.",
    )
    MQTT_SHARE_GROUP: str = Field(
        default="",
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]*$",
        title="MQTT shared-subscription group",
        description="Empty: this gateway takes every device message. A name (e.g. 'gateways'): the gateways "
        "that give the same name share one subscription, $share/<name>/citywatch/#, and the broker hands "
        "each message to one of them. Each gateway still needs its own MQTT_CLIENT_ID.",
    )
    SHARE_GROUP_ORDER_WAIT_S: float = Field(
        default=60.0,
        ge=0.0,
        le=3600.0,
        title="Wait for an event's beginning (share group)",
        description="With MQTT_SHARE_GROUP, an event's update or end handled before its new (still queued "
        "at, or being stored by, another gateway of the group) waits unacknowledged this long before it is "
        "refused as unknown_event. Longer than a gateway takes to restart: a killed gateway's queue waits "
        "in its broker session until it is back.",
    )
    DATA_DIR: Path = Field(
        default=Path("./var"), title="Data directory", description="SQLite files live here."
    )
    DB_URL: str = Field(
        default="",
        title="Database URL",
        description="SQLAlchemy URL for devices/events/outbox; empty = sqlite:///<DATA_DIR>/citywatch.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    HTTP_HOST: str = Field(default="127.0.0.1", title="API host")
    HTTP_PORT: int = Field(default=8080, ge=0, le=65535, title="API port", description="0 = any free port.")
    DISPATCH_URL: str = Field(
        default="",
        title="Dispatch centre webhook URL",
        description="Where events are pushed (Standard Webhooks); empty = no push.",
    )
    DISPATCH_SECRET: str = Field(
        default="",
        title="Dispatch webhook secret",
        description="Standard Webhooks secret, 'whsec_' + base64; required when DISPATCH_URL is set.",
    )
    DISPATCH_RETRY_MAX_S: float = Field(
        default=60.0,
        gt=0,
        title="Longest retry delay",
        description="Cap of the exponential backoff, seconds.",
    )
    DISPATCH_LEASE_S: float = Field(
        default=30.0,
        ge=3,
        le=3600,
        title="Dispatch claim, seconds",
        description="A gateway claims the notifications it sends for this long (several gateways share "
        "one outbox); a killed gateway's claims run out after it, then another gateway sends them. Each "
        "request's timeout is at most a third of it.",
    )
    TELEMETRY_STORE: Literal["sqlite", "influx"] = Field(
        default="sqlite",
        title="Telemetry store",
        description="sqlite (embedded default) or influx (InfluxDB 2.x, with an on-disk spill).",
    )
    INFLUX_URL: str = Field(default="http://127.0.0.1:8086", title="InfluxDB URL")
    INFLUX_TOKEN: str = Field(default="", title="InfluxDB API token")
    INFLUX_ORG: str = Field(default="citywatch", title="InfluxDB organisation")
    INFLUX_BUCKET: str = Field(default="telemetry", title="InfluxDB bucket")
    INFLUX_BATCH_SIZE: int = Field(default=5000, ge=1, title="Points per InfluxDB write request")
    INFLUX_SPILL_MAX_MB: int = Field(
        default=5000,
        ge=0,
        title="Largest telemetry spill, MB",
        description="While InfluxDB is away telemetry waits on disk up to this size (about 100 bytes a "
        "point); beyond it new telemetry is dropped and counted in /health, so an outage cannot fill the "
        "disk the event database needs. 0: no limit.",
    )
    MAX_PAYLOAD_BYTES: int = Field(
        default=DEFAULT_MAX_PAYLOAD_BYTES, gt=0, title="Largest accepted MQTT payload, bytes"
    )
    CLOCK_SKEW_S: float = Field(
        default=300.0,
        gt=0,
        title="Allowed device clock lead, seconds",
        description="A message whose timestamp is further ahead of the gateway's clock is refused (reason "
        "clock) and its device listed in /health. Past times are accepted back to 2020 (outbox replays, "
        "wills). Simulations that fast-forward device time (the demo) need a larger value.",
    )
    DEVICE_OFFLINE_AFTER_S: float = Field(
        default=600.0,
        gt=0,
        title="Silence before a device counts as offline",
        description="A device not heard from for this long (a will included) is reported 'silent' and "
        "gets a device_offline event, which ends when it is heard from again.",
    )
    CONFIG_DRIFT_AFTER_S: float = Field(
        default=900.0,
        gt=0,
        title="Config drift after, seconds",
        description="A device still reporting another config version this long after one was pushed to it "
        "(refused, never received, or fallen back to its last good one) gets a config_drift event, which "
        "ends when it reports the pushed version.",
    )
    MQTT_CA_FILE: str | None = Field(
        default=None,
        title="Broker CA certificate",
        description="PEM file the broker's certificate is checked against with an mqtts:// MQTT_URL "
        "(default: the system's CAs). User and password go in the URL: mqtts://gateway:PASSWORD@host:8883.",
    )
    COMMAND_EXPIRY_S: int = Field(
        default=300,
        ge=1,
        le=86_400,
        title="Command expiry, seconds",
        description="A cmd sent through the API carries expires = now + this (unless the request says "
        "otherwise); a device does not run it later and acks it as expired.",
    )
    SQLITE_BUSY_TIMEOUT_S: float = Field(
        default=30.0,
        gt=0,
        title="SQLite lock wait",
        description="How long a SQLite write waits for a lock before failing; ingest then retries the batch.",
    )
    INGEST_MAX_BATCH: int = Field(
        default=1000,
        ge=1,
        title="Largest ingest batch",
        description="Messages stored per transaction; keep <= the broker's max_inflight_messages.",
    )
    RECEIPT_INTERVAL_S: float = Field(
        default=1.0,
        gt=0,
        le=60,
        title="Receipt interval, seconds",
        description="At most one receipt per device this often: it lists every numbered message of the "
        "device stored since the last one (docs/protocol.md, Delivery receipts). Keep it well under the "
        "devices' resend_after_s.",
    )
    REFUSAL_FEEDBACK_INTERVAL_S: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        title="Refusal feedback interval, seconds",
        description="At most one refusal message per device this often, on its own refusal topic, saying "
        "what was refused and why and how many refusals since the last one were not reported "
        "(docs/protocol.md, Refusal feedback). 0: no refusal messages.",
    )
    REFUSAL_FEEDBACK_MAX_PER_S: float = Field(
        default=50.0,
        gt=0,
        title="Refusal messages per second, all devices",
        description="Bound on refusal messages in total, so that refused input from many (or invented) "
        "device ids cannot make the gateway flood the broker; beyond it devices hear later.",
    )
    BROKER_SESSION_LOST_DEGRADED_S: float = Field(
        default=600.0,
        ge=0,
        title="Degraded after a lost broker session, seconds",
        description="When the broker comes back without the gateway's persistent session (it restarted "
        "before saving it), /health says degraded for this long.",
    )
    EVIDENCE_MAX_BYTES: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        le=MAX_EVIDENCE_PARTS * MAX_EVIDENCE_CHUNK_BYTES,
        title="Largest evidence item, bytes",
        description="An evidence item (a clip, a photo) declaring more is refused (evidence_too_large), "
        "part by part, and never stored.",
    )
    EVIDENCE_PARTIAL_MAX_AGE_H: float = Field(
        default=72.0,
        gt=0,
        title="Partial evidence kept, hours",
        description="An evidence item still missing parts this long after its latest part came is dropped "
        "(logged). Its device has forgotten the parts already receipted, so keep this longer than the "
        "longest network outage you expect in the middle of sending an item.",
    )

    ROUTING_FILE: Path | None = Field(
        default=None,
        title="Routing table",
        description="YAML: departments, their webhooks, rules and SLAs (docs/routing.md). None: every event "
        "goes to one department pushed to DISPATCH_URL.",
    )
    SUPPRESSION_WINDOW_S: float = Field(
        default=600.0,
        ge=0,
        title="Suppression window, seconds",
        description="A condition raised again this soon after its event finished re-opens that event "
        "instead of a new one.",
    )
    ESCALATION_INTERVAL_S: float = Field(
        default=30.0,
        gt=0,
        title="Escalation check interval, seconds",
        description="How often overdue events are looked for.",
    )
    TIMEZONE: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        title="District time zone",
        description="IANA zone name, e.g. Asia/Shanghai: the console shows times in it, and governance counts "
        "events per local calendar day (and reporting periods start at local midnight). Times are stored "
        "and sent in UTC whatever this says.",
    )

    HEALTH_INGEST_QUEUE_MAX: int = Field(
        default=5000,
        ge=1,
        title="Ingest backlog for degraded",
        description="/health says degraded while this many received messages wait for the writer.",
    )
    HEALTH_INGEST_STALLED_S: float = Field(
        default=10.0,
        gt=0,
        title="Ingest stall for degraded, seconds",
        description="/health says degraded while the writer has spent this long on one batch (the "
        "database hangs or keeps refusing writes).",
    )
    HEALTH_DISPATCH_PENDING_MAX_S: float = Field(
        default=30.0,
        gt=0,
        title="Undelivered notification age for degraded, seconds",
        description="/health says degraded while a notification for an enabled endpoint (or one the "
        "gateway disabled after a 410) has waited longer than this.",
    )

    PUBLIC_URL: str = Field(
        default="",
        title="Public API address",
        description="Where people reach this gateway, e.g. https://citywatch.district.example; CAP <web> "
        "links point here. Empty: http://HTTP_HOST:HTTP_PORT.",
    )
    CAP_SENDER: str = Field(
        default="citywatch@example.org",
        pattern=CAP_TOKEN_PATTERN,
        title="CAP sender",
        description="Globally unique CAP <sender>, e.g. the operator's domain or mailbox (no spaces, commas, "
        "'&' or '<').",
    )
    CAP_SENDER_NAME: str = Field(default="citywatch gateway", min_length=1, title="CAP sender name")
    CAP_STATUS: CapStatus = Field(
        default="Actual",
        title="CAP status",
        description="Actual in service; Exercise or Test for drills, so receivers do not act on them.",
    )
    CAP_CONTACT: str = Field(
        default="",
        max_length=200,
        title="CAP contact",
        description="CAP <contact>: who answers questions about an alert, e.g. the duty desk's phone or "
        "mailbox. Empty: the CAP sender.",
    )
    CAP_VALIDITY_S: dict[EventType, float] = Field(
        default_factory=dict,
        title="CAP validity per event type, seconds",
        description="CAP <expires> = <sent> + this, per event type, as JSON, e.g. "
        '{"water_level": 21600}; types left out keep the built-in validity (docs/cap.md).',
    )

    @field_validator("CAP_VALIDITY_S")
    @classmethod
    def _validity_is_positive(cls, value: dict[EventType, float]) -> dict[EventType, float]:
        for event_type, seconds in value.items():
            if not seconds > 0 or seconds == float("inf"):
                raise ValueError(f"CAP validity of {event_type.value} must be a positive number of seconds")
        return value

    @field_validator("TIMEZONE")
    @classmethod
    def _timezone_is_known(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):  # ValueError: a path-like name such as "../x"
            near = sorted(z for z in available_timezones() if z.lower() == value.strip().lower())
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(
                f"unknown time zone {value!r}{hint}: give an IANA zone name such as 'Asia/Shanghai' or 'UTC'"
            ) from None
        return value

    @field_validator("DISPATCH_SECRET")
    @classmethod
    def _secret_is_standard_webhooks(cls, value: str) -> str:
        if value and not value.startswith("whsec_"):
            raise ValueError("DISPATCH_SECRET must look like 'whsec_<base64>' (Standard Webhooks secret)")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.DB_URL:
            self.DB_URL = f"sqlite:///{self.DATA_DIR / 'citywatch.db'}"
        if self.MQTT_SHARE_GROUP and self.DB_URL.startswith("sqlite"):
            # The gateways of a group share one outbox and one event table: SQLite is one process's.
            raise ValueError(
                "CITYWATCH_MQTT_SHARE_GROUP needs a database all the group's gateways share: set "
                "CITYWATCH_DB_URL to PostgreSQL (postgresql+psycopg://user@host/db), not SQLite"
            )
        if self.DISPATCH_URL and not self.DISPATCH_SECRET:
            raise ValueError(
                "CITYWATCH_DISPATCH_URL is set but CITYWATCH_DISPATCH_SECRET is empty: "
                "webhooks must be signed (generate one with `citywatch sim dispatch-centre --new-secret`)"
            )
        return self

    @property
    def public_url(self) -> str:
        return (self.PUBLIC_URL or f"http://{self.HTTP_HOST}:{self.HTTP_PORT}").rstrip("/")

    @property
    def zone(self) -> ZoneInfo:
        """The district's time zone (TIMEZONE, validated)."""
        return ZoneInfo(self.TIMEZONE)

    @property
    def telemetry_db_path(self) -> Path:
        return self.DATA_DIR / "telemetry.db"

    @property
    def snapshot_dir(self) -> Path:
        """Evidence JPEGs, one ``<snapshot_id>.jpg`` each: the ingest writes them, the API serves them."""
        return self.DATA_DIR / "snapshots"

    @property
    def evidence_dir(self) -> Path:
        """Evidence items, ``<device_id>/<evidence_id>.<mp4|jpg>``: the ingest writes them, the API serves them."""
        return self.DATA_DIR / "evidence"

    @property
    def influx_spill_dir(self) -> Path:
        """Where points wait, fsynced, while InfluxDB is unreachable."""
        return self.DATA_DIR / "influx-spill"


def settings_reference(width: int = 100) -> str:
    """Every setting with its default and meaning, for ``citywatch gateway --help``."""
    lines = ["settings (environment variables):"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "(empty)" if default in ("", None) else str(default)
        lines.append(f"  {Settings.model_config.get('env_prefix', '')}{name} (default: {shown})")
        meaning = ": ".join(part for part in (field.title, field.description) if part)
        lines.extend(textwrap.wrap(meaning, width=width, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)
