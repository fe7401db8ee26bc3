"""Watch a live broker: subscribe to ``citywatch/#``, feed the checker, send probes, stop when told.

The kit subscribes with MQTT 5 and "retain as published", so it sees each message's own retain flag
(MQTT 3.1.1 brokers clear it on live messages; the kit falls back to 3.1.1 and says what it cannot
check), and at QoS 1: a message published with QoS 0 arrives as QoS 0 (QoS 2 arrives as 1, which
the gateway takes the same way). Not at QoS 2: some brokers (amqtt) deliver at the subscription's QoS
whatever the publisher used, which would make every message look like QoS 2.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from citywatch.mqtt import MqttOptions
from citywatch.protocol.conformance import findings as rules
from citywatch.protocol.conformance.checker import Checker, CheckOptions
from citywatch.protocol.conformance.findings import Finding
from citywatch.protocol.conformance.judgement import Observation, about_watch
from citywatch.protocol.conformance.probes import probe_commands
from citywatch.protocol.conformance.report import EXIT_USAGE, Report
from citywatch.protocol.topics import EVERYTHING, Channel, Topic

CONNECT_TIMEOUT_S = 10.0
PROBE_AFTER_BIRTH_S = 1.0
# MQTT 5 "Unsupported protocol version", and the MQTT 3.1.1 CONNACK code a v3 broker answers with.
_UNSUPPORTED_PROTOCOL = {132, 1}


class BrokerUnavailable(Exception):
    """The broker could not be reached or refused the kit; the message names no credentials."""


@dataclass(frozen=True, slots=True)
class WatchPlan:
    mqtt: MqttOptions
    check: CheckOptions
    duration_s: float | None = None  # None (and no max_messages): until interrupted
    max_messages: int | None = None
    probe: bool = False


class _Session:
    """The kit's paho client on its own network thread; messages go to a queue the main thread reads."""

    def __init__(self, options: MqttOptions, protocol: mqtt.MQTTProtocolVersion) -> None:
        self.options = options
        self.protocol = protocol
        self.inbox: queue.Queue[Observation] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.lost = threading.Event()
        self.connack: Any = None
        self.suback: list[Any] = []
        self.closing = False
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"citywatch-check-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
            reconnect_on_failure=False,  # a gap would make the kit misjudge what follows it
        )
        if options.username:
            self.client.username_pw_set(options.username, options.password)
        if options.tls:
            self.client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    @property
    def retain_known(self) -> bool:
        return self.protocol == mqtt.MQTTv5

    def connect(self) -> None:
        try:
            if self.protocol == mqtt.MQTTv5:
                self.client.connect(
                    self.options.host, self.options.port, self.options.keepalive_s, clean_start=True
                )
            else:
                self.client.connect(self.options.host, self.options.port, self.options.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerUnavailable(
                f"cannot reach the broker at {self.options.url}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        self.client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not self.connected.is_set() and not self.lost.is_set() and time.monotonic() < deadline:
            self.connected.wait(0.05)

    def subscribe(self, topic: str) -> None:
        if self.protocol == mqtt.MQTTv5:
            self.client.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        else:
            self.client.subscribe(topic, qos=1)
        if not self.subscribed.wait(CONNECT_TIMEOUT_S):
            raise BrokerUnavailable(
                f"no answer from the broker at {self.options.url} to subscribing to {topic}"
            )
        refused = [code for code in self.suback if getattr(code, "is_failure", False)]
        if refused:
            raise BrokerUnavailable(
                f"the broker at {self.options.url} refused the subscription to {topic}: {refused[0]} "
                "(the kit needs to read the whole citywatch/ tree)"
            )

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.closing = True
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connack = reason
        if reason.is_failure:
            self.lost.set()
        else:
            self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.lost.set()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: list[Any], properties: Any
    ) -> None:
        self.suback = list(codes)
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        retain: bool | None = bool(message.retain)
        if not retain and not self.retain_known:
            retain = None  # MQTT 3.1.1: cleared on every live message, retained or not
        self.inbox.put(
            Observation(message.topic, bytes(message.payload), int(message.qos), retain, datetime.now(UTC))
        )


def open_session(options: MqttOptions) -> _Session:
    """Connected with MQTT 5, or with 3.1.1 where the broker speaks only that; BrokerUnavailable otherwise."""
    for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
        session = _Session(options, protocol)
        session.connect()
        if session.connected.is_set():
            return session
        session.close()
        code = session.connack
        if (
            code is not None
            and getattr(code, "value", None) in _UNSUPPORTED_PROTOCOL
            and protocol == mqtt.MQTTv5
        ):
            continue
        if code is not None:
            raise BrokerUnavailable(f"the broker at {options.url} refused the connection: {code}")
        if protocol == mqtt.MQTTv5:
            continue  # closed without a CONNACK: some MQTT 3.1.1 brokers answer a v5 CONNECT so
        raise BrokerUnavailable(
            f"the broker at {options.url} did not accept a connection within {CONNECT_TIMEOUT_S:.0f} s"
        )
    raise AssertionError("unreachable")


def watch(plan: WatchPlan, report: Report, *, say: Callable[[str], None]) -> int:
    """Run one watch; the exit status (0 conforms, 1 deviates, 2 the broker is unavailable or was lost)."""
    session = open_session(plan.mqtt)
    checker = Checker(plan.check, started_at=datetime.now(UTC))
    prober = _Prober(plan, session, checker) if plan.probe else None
    started = time.monotonic()
    lost = False
    try:
        session.subscribe(EVERYTHING)
        say(
            f"watching {checker.scope.describe()} on {plan.mqtt.url} (MQTT {'5' if session.retain_known else '3.1.1'})"
            + ("" if plan.duration_s or plan.max_messages else "; Ctrl-C to stop")
        )
        lost = _run(plan, session, checker, report, prober, started)
    except KeyboardInterrupt:
        # Ctrl-C: what has arrived is judged too.
        while not session.inbox.empty() and (
            plan.max_messages is None or checker.messages < plan.max_messages
        ):
            report.write(checker.observe(session.inbox.get_nowait()))
    finally:
        session.close()
    if prober is not None and not prober.sent:
        report.write([prober.never_sent()])
    report.write(checker.finish(datetime.now(UTC)))
    summary = report.summary(
        scope=checker.scope.describe(),
        duration_s=time.monotonic() - started,
        messages=checker.messages,
        devices=checker.devices,
        by_channel=dict(checker.by_channel),
    )
    report.write_summary(summary)
    if lost:
        say(f"lost the connection to the broker at {plan.mqtt.url}: the watch is incomplete")
        return EXIT_USAGE
    return summary.exit_status


class _Prober:
    """Sends the probes once the device is online, and a moment later: a device subscribes to cmd just
    after its birth (docs/protocol.md, *Connecting*), and a command published before that is lost."""

    def __init__(self, plan: WatchPlan, session: _Session, checker: Checker) -> None:
        site, device_id = plan.check.site, plan.check.device_id
        if site is None or device_id is None:
            raise ValueError("probes need a site and a device")
        self.device_id = device_id
        self.topic = str(Topic(site, device_id, Channel.CMD))
        self.timeout = timedelta(seconds=plan.check.ack_timeout_s)
        self.session = session
        self.checker = checker
        self.online_since: float | None = None
        self.sent = False

    @property
    def waiting(self) -> bool:
        """The device is online and the probes are about to go."""
        return not self.sent and self.online_since is not None

    def step(self) -> None:
        if self.sent:
            return
        if self.online_since is None:
            if self.checker.online(self.device_id):
                self.online_since = time.monotonic()
            return
        if time.monotonic() - self.online_since >= PROBE_AFTER_BIRTH_S:
            for probe in probe_commands(self.device_id, now=datetime.now(UTC), timeout=self.timeout):
                self.checker.probe_sent(probe)
                self.session.publish(self.topic, probe.command.to_json())
            self.sent = True

    def never_sent(self) -> Finding:
        return about_watch(
            rules.PROBE_NO_ACK,
            f"no probe sent: device {self.device_id} was not online (no birth seen) while the kit was watching",
            device_id=self.device_id,
        )


def _run(
    plan: WatchPlan,
    session: _Session,
    checker: Checker,
    report: Report,
    prober: _Prober | None,
    started: float,
) -> bool:
    """Judge messages until the plan's end (and the probes' answers or deadlines); True if the broker was lost."""
    while True:
        watching = not (
            (plan.duration_s is not None and time.monotonic() - started >= plan.duration_s)
            or (plan.max_messages is not None and checker.messages >= plan.max_messages)
        )
        if not watching and not checker.pending_probes and not (prober is not None and prober.waiting):
            return False
        if session.lost.is_set() and session.inbox.empty():
            return True
        try:
            observation = session.inbox.get(timeout=0.1)
        except queue.Empty:
            pass
        else:
            report.write(checker.observe(observation))  # after the end too, while probes wait for acks
        if prober is not None:
            prober.step()
        report.write(checker.overdue(datetime.now(UTC)))
