"""What every edge agent shares: the agent for a config's kind, its uplink, its run loop.

Each kind's agent lives with the rest of its code (``edge/culvert/agent.py``, ``edge/vision/agent.py``).
``run_agent(config)`` picks the agent class for ``config.kind`` from ``AGENT_CLASSES`` (module:class
strings, imported on demand so a culvert device never imports the vision stack).
"""

from __future__ import annotations

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


def run_agent(config: AgentConfig) -> int:
    """Run until SIGTERM/SIGINT, then stop cleanly (flushing what the broker accepts)."""
    agent = build_agent(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("stopping")
        agent.stop()
    return 0


def rss_mb() -> float:
    """Resident memory of this process (Linux), MB."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError):
        return 0.0


def uplink_for(config: AgentConfig, on_command: Any = None) -> Uplink:
    return Uplink(
        MqttOptions.from_url(config.mqtt.url),
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
