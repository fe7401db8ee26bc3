"""The demo's moving parts, started in one process and stopped in reverse order."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from citywatch.broker.embedded import start_broker
from citywatch.polling import wait_until
from edge.clock import ScaledClock
from edge.culvert.agent import CulvertAgent
from gateway.auth.service import create_token
from gateway.devices import service as devices_service
from gateway.dispatch import service as dispatch_service
from gateway.events import service as events_service
from gateway.runner import GatewayApp
from gateway.settings import Settings
from simulators.dispatch_centre import DispatchCentreSimulator, new_secret
from simulators.water_fleet import WaterFleetOptions, device_config

log = logging.getLogger("citywatch.demo")
SITE = "riverside"


@dataclass(frozen=True, slots=True)
class DemoDevice:
    """A simulated culvert as the registry knows it: where it is (CAP <area>) and how deep it floods."""

    id: str
    peak_cm: float
    description: str
    grid: str
    town: str
    latitude: float
    longitude: float


DEMO_DEVICES = (
    # One critical flood, one warning-level flood, one that stays shallow.
    DemoDevice(
        "culvert-riverside-1", 32.0, "Riverside Rd culvert, east lane", "g-12", "xinqiao", 31.0612, 121.3187
    ),
    DemoDevice(
        "culvert-riverside-2", 18.0, "Riverside Rd culvert, west lane", "g-12", "xinqiao", 31.0598, 121.3121
    ),
    DemoDevice("culvert-hillside-1", 6.0, "Hillside Ave culvert", "g-07", "xinqiao", 31.0703, 121.3260),
)


def provision_demo_devices(session: Session) -> None:
    for device in DEMO_DEVICES:
        devices_service.provision(
            session=session,
            device_id=device.id,
            site=SITE,
            device_type="culvert",
            grid=device.grid,
            town=device.town,
            latitude=device.latitude,
            longitude=device.longitude,
            description=device.description,
        )


def start_demo_culverts(*, mqtt_url: str, outbox_dir: Path, speed: float) -> list[CulvertAgent]:
    """The demo's culverts: real edge agents on simulated sensors, a storm one simulated minute in."""
    clock = ScaledClock(speed=speed)
    fleet = WaterFleetOptions(
        site=SITE, mqtt_url=mqtt_url, scenario="storm", start_after_s=60.0, speed=speed, outbox_dir=outbox_dir
    )
    return [
        CulvertAgent(
            device_config(replace(fleet, peak_cm=device.peak_cm), device.id, index), clock=clock
        ).start()
        for index, device in enumerate(DEMO_DEVICES)
    ]


# The culverts' clocks run fast-forward, ahead of the gateway's: a year's lead is 6 days of demo at 60x.
FAST_FORWARD_CLOCK_SKEW_S = 366 * 86_400.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float | None = None
    speed: float = 60.0
    http_port: int = 8080
    data_dir: str = "var/demo"
    broker: str = "auto"
    interval_s: float = 2.0


@dataclass
class DemoStatus:
    elapsed_s: float
    telemetry_stored: int
    events_raised: int
    events_delivered: int
    webhooks_delivered: int
    duplicates_at_dispatch: int
    refused: dict[str, int]
    first_delivery_after_s: float | None


def _free_or_any(port: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            log.warning("port %d is taken: the API will listen on a free port instead", port)
            return 0
    return port


@contextlib.contextmanager
def _stop_on_signal() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(options: DemoOptions) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API poll drowns the live log
    data_dir = Path(options.data_dir)
    if data_dir.exists():
        shutil.rmtree(data_dir)  # a demo always starts from an empty database and empty outboxes
    data_dir.mkdir(parents=True)
    started = time.monotonic()

    broker = start_broker(data_dir=data_dir / "broker", kind=options.broker)  # type: ignore[arg-type]
    log.info("broker: %s on %s", broker.name, broker.url)
    dispatch_centre = DispatchCentreSimulator(secret=new_secret()).start()
    settings = Settings(
        MQTT_URL=broker.url,
        DATA_DIR=data_dir / "gateway",
        HTTP_PORT=_free_or_any(options.http_port),
        DISPATCH_URL=dispatch_centre.url,
        DISPATCH_SECRET=dispatch_centre.secret,
        DISPATCH_RETRY_MAX_S=5.0,
        CAP_STATUS="Exercise",  # simulated floods: a CAP receiver must not act on them
        CLOCK_SKEW_S=FAST_FORWARD_CLOCK_SKEW_S,
    )
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    gateway = GatewayApp(settings)
    agents: list[CulvertAgent] = []
    status = None
    try:
        gateway.start()
        api_token = _admin_token(gateway)
        console_logins = _console_logins(gateway)
        with gateway.session_factory() as session, session.begin():
            provision_demo_devices(session)
        agents = start_demo_culverts(
            mqtt_url=broker.url, outbox_dir=data_dir / "devices", speed=options.speed
        )
        print(
            f"citywatch demo: console {gateway.url}/  |  API {gateway.url}/docs  |  "
            f"dispatch centre {dispatch_centre.base_url}  |  broker {broker.name} {broker.url}  |  "
            f"{len(agents)} culverts at {options.speed:g}x speed",
            flush=True,
        )
        print(
            f"  console login (paste the token; this demo's database only): dispatcher {console_logins['dispatcher']}"
            f"  |  viewer {console_logins['viewer']}",
            flush=True,
        )
        print(f"  API admin token (this demo's database only): Authorization: Bearer {api_token}", flush=True)
        if not broker.keeps_persistent_sessions:
            print(
                "  (embedded broker: install mosquitto for delivery guarantees across restarts)", flush=True
            )
        with _stop_on_signal() as stop:
            deadline = None if options.duration_s is None else started + options.duration_s
            while not stop.is_set():
                wait = options.interval_s
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                try:
                    stop.wait(wait)
                except KeyboardInterrupt:
                    break
                status = _status(gateway, dispatch_centre, started)
                print(_status_line(status, gateway, agents, api_token), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for agent in agents:
            agent.stop()
        wait_until(lambda: gateway.ingest.queue_depth == 0, timeout_s=5.0)  # what arrived is stored
        wait_until(lambda: _pending_deliveries(gateway) == 0, timeout_s=5.0, interval_s=0.1)
        status = _status(gateway, dispatch_centre, started)
        gateway.stop()
        dispatch_centre.stop()
        broker.stop()
    summary = {
        "telemetry_stored": status.telemetry_stored,
        "events_raised": status.events_raised,
        "events_delivered": status.events_delivered,
        "webhooks_delivered": status.webhooks_delivered,
        "duplicates_at_dispatch": status.duplicates_at_dispatch,
        "refused": sum(status.refused.values()),
        "first_delivery_after_s": status.first_delivery_after_s,
        "elapsed_s": round(status.elapsed_s, 1),
        "broker": broker.name,
        "api": gateway.url,
        "console": f"{gateway.url}/",
    }
    print(json.dumps(summary), flush=True)
    return 0 if status.events_delivered > 0 or options.duration_s is None else 1


def _status(gateway: GatewayApp, dispatch_centre: DispatchCentreSimulator, started: float) -> DemoStatus:
    with gateway.read_session_factory() as session:
        events_raised = events_service.count(session=session)
    received = dispatch_centre.received()
    delivered_events = {hook.event.get("id") for hook in received}
    first = min((hook.received_at for hook in received), default=None)
    wall_started = time.time() - (time.monotonic() - started)
    return DemoStatus(
        elapsed_s=time.monotonic() - started,
        telemetry_stored=gateway.store.count(),
        events_raised=events_raised,
        events_delivered=len(delivered_events),
        webhooks_delivered=len(received),
        duplicates_at_dispatch=dispatch_centre.duplicates,
        refused=dict(gateway.stats.snapshot().get("refused", {})),
        first_delivery_after_s=None if first is None else round(first - wall_started, 2),
    )


def _admin_token(gateway: GatewayApp) -> str:
    """Every API route needs a token; the demo makes one for whoever looks at its API."""
    with gateway.session_factory() as session, session.begin():
        return create_token(session, name="demo", role="admin").token


def _console_logins(gateway: GatewayApp) -> dict[str, str]:
    """Tokens to log in to the console with: a dispatcher who acts on events, a viewer who only looks."""
    with gateway.session_factory() as session, session.begin():
        return {
            role: create_token(session, name=f"demo-{role}", role=role).token
            for role in ("dispatcher", "viewer")
        }


def _status_line(status: DemoStatus, gateway: GatewayApp, agents: list[CulvertAgent], api_token: str) -> str:
    levels = " ".join(f"{a.device_id.split('-', 1)[1]}={_level(a)}" for a in agents)
    latest = _latest_event(gateway, api_token)
    return (
        f"[{status.elapsed_s:5.1f}s] telemetry={status.telemetry_stored} events={status.events_raised} "
        f"delivered={status.events_delivered} webhooks={status.webhooks_delivered} | {levels}"
        + (f" | latest: {latest}" if latest else "")
    )


def _level(agent: CulvertAgent) -> str:
    level = agent.analyzer.level_cm
    return "--" if level is None else f"{level:.1f}cm"


def _latest_event(gateway: GatewayApp, api_token: str) -> str | None:
    """Read through the public API, as a dispatcher's screen would."""
    try:
        response = httpx.get(
            f"{gateway.url}/events",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {api_token}"},
            timeout=2.0,
        )
        items: list[dict[str, Any]] = response.json().get("items", []) if response.status_code == 200 else []
    except httpx.HTTPError:
        return None
    if not items:
        return None
    event = items[0]
    return f"{event.get('type')} {event.get('severity')} at {event.get('device_id')} ({event.get('state') or event.get('status')})"


def _pending_deliveries(gateway: GatewayApp) -> int:
    with gateway.read_session_factory() as session:
        return dispatch_service.counts_by_status(session=session).get("pending", 0)
