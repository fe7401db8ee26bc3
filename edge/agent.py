"""What every edge agent shares: the agent for a config's kind, its uplink, its run loop.

Each kind's agent lives with the rest of its code (``edge/culvert/agent.py``, ``edge/vision/agent.py``).
``run_agent(config)`` picks the agent class for ``config.kind`` from ``AGENT_CLASSES`` (module:class
strings, imported on demand so a culvert device never imports the vision stack).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import signal
import threading
from typing import Any, Protocol

from citywatch.mqtt import MqttOptions
from citywatch.protocol.messages import DeviceType
from edge.config import AgentConfig
from edge.uplink import Uplink
from edge.uplink.pump import ReceiptOptions

log = logging.getLogger(__name__)

AGENT_CLASSES: dict[str, str] = {
    "culvert": "edge.culvert.agent:CulvertAgent",
    "elevator": "edge.vision.agent:ElevatorAgent",
    "facade": "edge.facade.agent:FacadeAgent",
    "street": "edge.street.agent:StreetAgent",
}


class RunnableAgent(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> None: ...


def build_agent(config: AgentConfig, **kwargs: Any) -> RunnableAgent:
    kind = getattr(config, "kind", None)
    if kind not in AGENT_CLASSES:
        raise ValueError(f"no agent for device kind {kind!r}; known: {', '.join(AGENT_CLASSES)}")
    module_name, _, class_name = AGENT_CLASSES[kind].partition(":")
    agent_class = getattr(importlib.import_module(module_name), class_name)
    agent: RunnableAgent = agent_class(config, **kwargs)
    return agent


def run_agent(config: AgentConfig, *, boot: Any = None) -> int:
    """Run until SIGTERM/SIGINT, then stop cleanly (flushing what the broker accepts).

    Pushed configs are applied while it runs (live, or by restarting the agent: edge/installer/live.py);
    ``boot`` (edge.installer.bundle.Boot) is the bundle it started from: its trusted keys and state."""
    from edge.installer.live import LiveAgent

    live = LiveAgent(config, build=build_agent, boot=boot)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    live.start()
    try:
        live.run_until(stop)
    finally:
        log.info("stopping")
        live.stop()
    return 0


def rss_mb() -> float:
    """Resident memory of this process (Linux), MB."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError):
        return 0.0


def mqtt_options(config: AgentConfig) -> MqttOptions:
    """The broker URL, with the device's user, its password (read from ``password_file``) and CA."""
    options = MqttOptions.from_url(config.mqtt.url)
    section = config.mqtt
    if section.username is not None:
        password = section.password_file.read_text().strip() if section.password_file else None
        options = dataclasses.replace(options, username=section.username, password=password)
    if section.ca_file is not None:
        options = dataclasses.replace(options, ca_file=str(section.ca_file))
    return options


def uplink_for(config: AgentConfig, on_command: Any = None) -> Uplink:
    return Uplink(
        mqtt_options(config),
        config.device.site,
        config.device.id,
        DeviceType(getattr(config, "kind", "culvert")),
        config.version,
        config.outbox.path,
        on_command,
        max_messages=config.outbox.max_messages,
        fsync=config.outbox.fsync,
        reconnect_min_s=config.mqtt.reconnect_min_s,
        reconnect_max_s=config.mqtt.reconnect_max_s,
        receipts=(
            ReceiptOptions(resend_after_s=config.outbox.resend_after_s)
            if config.outbox.keep_until == "receipt"
            else None
        ),
    )
