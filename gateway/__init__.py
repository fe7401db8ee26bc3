"""Gateway: ingest -> telemetry store, events, devices, dispatch, API."""
