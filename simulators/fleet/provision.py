"""Provision the fleet at a gateway through its REST API (``POST /devices``, an installer or admin token).

A gateway refuses messages from devices it does not know; the bench and tests, which hold the
gateway's database, call the devices service directly instead (``citywatch/bench/fleet.py``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from simulators.fleet.fleet import FleetDevice


def provision_via_api(
    api_url: str, token: str, devices: Sequence[FleetDevice], *, workers: int = 8
) -> dict[str, int]:
    """Register every device; already registered ones (409) count as such. Raises on any other answer."""

    def one(device: FleetDevice) -> str:
        body = json.dumps({"id": device.device_id, "site": device.site, "device_type": device.device_type})
        request = urllib.request.Request(
            api_url.rstrip("/") + "/devices",
            data=body.encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30):
                return "created"
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                return "existing"
            raise RuntimeError(
                f"POST /devices {device.device_id}: HTTP {exc.code} {exc.read()[:200]!r}"
            ) from None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(one, devices))
    return {"created": outcomes.count("created"), "existing": outcomes.count("existing")}


def devices_jsonl(devices: Sequence[FleetDevice]) -> str:
    """One JSON object a line, the body ``POST /devices`` takes: for scripts and other tools."""
    return "".join(
        json.dumps({"id": d.device_id, "site": d.site, "device_type": d.device_type}) + "\n" for d in devices
    )
