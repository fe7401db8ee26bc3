"""Pick the telemetry store named in the settings."""

from __future__ import annotations

from gateway.settings import Settings
from gateway.telemetry.base import TelemetryStore


def make_telemetry_store(settings: Settings) -> TelemetryStore:
    if settings.TELEMETRY_STORE == "sqlite":
        from gateway.telemetry.sqlite import SqliteTelemetryStore

        return SqliteTelemetryStore(settings.telemetry_db_path, busy_timeout_s=settings.SQLITE_BUSY_TIMEOUT_S)
    if settings.TELEMETRY_STORE == "influx":
        from gateway.telemetry.influx import InfluxOptions, InfluxTelemetryStore

        return InfluxTelemetryStore(
            InfluxOptions(
                url=settings.INFLUX_URL,
                token=settings.INFLUX_TOKEN,
                org=settings.INFLUX_ORG,
                bucket=settings.INFLUX_BUCKET,
                spill_dir=settings.influx_spill_dir,
                batch_size=settings.INFLUX_BATCH_SIZE,
                spill_max_bytes=settings.INFLUX_SPILL_MAX_MB * 1_000_000,
            )
        )
    raise ValueError(f"unknown telemetry store {settings.TELEMETRY_STORE!r}")
