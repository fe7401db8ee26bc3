"""Telemetry stores: SQLite (embedded default) and InfluxDB, behind one interface."""
