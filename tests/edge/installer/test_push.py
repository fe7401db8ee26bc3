"""Signed config pushes to a running agent through a real Mosquitto: applied live, or refused with the
reason while the agent keeps its last good config; key rotation without re-flashing; kept for a reboot."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import AckMessage, ConfigMessage, EventMessage, StateMessage, config_version
from citywatch.protocol.topics import Channel, Topic
from edge.agent import build_agent
from edge.config import load_config
from edge.installer import keys
from edge.installer.bundle import load_bundle
from edge.installer.document import device_document, signed_message
from edge.installer.flash import flash
from edge.installer.live import LiveAgent
from edge.installer.signing import SigningKey, sign_config
from tests.edge.installer.helpers import DEVICE, SITE, desk_config, site_keys
from tests.support.mqtt import Collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow
CONFIG_TOPIC = str(Topic(SITE, DEVICE, Channel.CONFIG))


@dataclass
class Desk:
    root: Path
    config: Path
    broker_url: str

    def keys(self) -> list[SigningKey]:
        return keys.signing_keys(SITE, self.root / "keys")

    def message(
        self, *, notice_cm: float = 15.0, signers: list[SigningKey] | None = None, **mqtt: Any
    ) -> ConfigMessage:
        desk_config(self.config, self.broker_url, notice_cm=notice_cm, **mqtt)
        return signed_message(device_document(load_config(self.config)), signers or self.keys())


@pytest.fixture
def running(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Desk, LiveAgent]]:
    """The agent, started after the collector subscribed (it hears the first report)."""
    site_keys(tmp_path / "keys")
    desk = Desk(tmp_path, tmp_path / "desk" / "c1.yaml", mosquitto.url)
    desk_config(desk.config, mosquitto.url)
    card = tmp_path / "card"
    flash(desk.config, card, desk.keys())
    boot = load_bundle(card)
    monkeypatch.chdir(card)  # as `citywatch edge run --bundle` does: the config names its files there
    live = LiveAgent(boot.config, build=build_agent, boot=boot).start()
    stop = threading.Event()
    restarts = threading.Thread(target=live.run_until, args=(stop,), daemon=True)  # run_agent's main loop
    restarts.start()
    try:
        yield desk, live
    finally:
        stop.set()
        restarts.join(10)
        live.stop()


def _push(collector: Collector, message: ConfigMessage) -> AckMessage:
    collector.publish(CONFIG_TOPIC, message.to_json(), retain=True)
    acks = lambda: [a for a in collector.of(AckMessage) if a.cmd_id == message.cmd_id]  # noqa: E731
    wait_until(acks, timeout_s=20, what=f"the ack of {message.cmd_id}")
    return acks()[-1]


def _floods(collector: Collector) -> list[EventMessage]:
    return [e for e in collector.of(EventMessage) if e.type == "water_level"]


def test_a_signed_push_changes_a_threshold_live(
    running: tuple[Desk, LiveAgent], collector: Collector, tmp_path: Path
) -> None:
    desk, live = running
    agent, flashed = live.agent, live.config.version
    wait_until(lambda: collector.of(StateMessage), what="the birth")
    wait_until(lambda: len(collector.on(Channel.TELEMETRY)) >= 2, what="the first report and health")
    time.sleep(0.5)  # ten samples at 0.05 s
    assert _floods(collector) == [], "12 cm is below the flashed notice threshold (15 cm)"

    lower = desk.message(notice_cm=10.0)
    ack = _push(collector, lower)
    assert ack.ok and ack.config_version == lower.config_version != flashed
    assert ack.message.startswith("applied live, no restart (culvert.thresholds.notice_cm)")
    wait_until(lambda: _floods(collector), timeout_s=10, what="a flood event under the pushed threshold")
    flood = _floods(collector)[0]
    assert flood.phase == "new" and flood.details["threshold_cm"] == 10.0
    assert live.agent is agent and live.restarts == 0, "the same agent, not restarted"
    births = [s for s in collector.of(StateMessage) if s.status == "online"]
    assert len(births) == 1, "no reconnect either"
    assert live.agent.uplink.device.config_version == lower.config_version  # the next birth says it
    # Kept for the next boot.
    reboot = load_bundle(Path.cwd())
    assert reboot.from_push and reboot.config.version == lower.config_version


def test_refused_pushes_keep_the_last_good_config(
    running: tuple[Desk, LiveAgent], collector: Collector, tmp_path: Path
) -> None:
    desk, live = running
    wait_until(lambda: collector.of(StateMessage), what="the birth")
    good = desk.message(notice_cm=10.0)
    assert _push(collector, good).ok
    stranger = keys.init("elsewhere", tmp_path / "other-keys")
    altered = good.model_copy(
        update={
            "cmd_id": "cfg-altered",
            "issued_at": datetime.now(UTC) + timedelta(seconds=1),
            "config": {**good.config, "culvert": {**good.config["culvert"], "mount_height_mm": 1500}},
        }
    )
    culvert = {
        **good.config["culvert"],
        "thresholds": {**good.config["culvert"]["thresholds"], "notice_cm": 25.0},
    }
    invalid = sign_config(  # signed by the site's key, but the model refuses it: notice not below warning
        good.model_copy(
            update={
                "cmd_id": "cfg-invalid",
                "issued_at": datetime.now(UTC),
                "config": {**good.config, "culvert": culvert},
                "config_version": config_version({**good.config, "culvert": culvert}),
            }
        ),
        desk.keys(),
    )
    assert good.issued_at is not None
    earlier = good.issued_at - timedelta(hours=1)  # a config of another version, issued before the good one
    older = sign_config(
        good.model_copy(update={"cmd_id": "cfg-old", "config_version": "0123456789ab", "issued_at": earlier}),
        desk.keys(),
    )
    cases = {
        "bad_signature": altered,
        "unknown_key": desk.message(notice_cm=12.0, signers=[stranger]),
        "invalid": invalid,
        "unsigned": desk.message(notice_cm=12.0).model_copy(update={"signatures": None}),
        "stale": older,
    }
    for reason, message in cases.items():
        ack = _push(collector, message)
        assert (ack.ok, ack.reason) == (False, reason), ack
        assert ack.config_version == good.config_version, "it says what it still runs"
    assert (
        "notice_cm (25.0) < warning_cm (20.0)"
        in next(a for a in collector.of(AckMessage) if a.reason == "invalid").message
    )
    assert "it trusts" in next(a for a in collector.of(AckMessage) if a.reason == "unknown_key").message
    assert live.config.version == good.config_version and live.restarts == 0
    assert live.guard.rejected == len(cases)
    # Still on the good config: the flood (12 cm, over notice 10 cm) is still open, raised once.
    floods = _floods(collector)
    assert floods and {f.event_id for f in floods} == {floods[0].event_id} and floods[-1].phase != "end"
    assert load_bundle(Path.cwd()).config.version == good.config_version, "a reboot comes back on it"


def test_keys_rotate_without_reflashing(running: tuple[Desk, LiveAgent], collector: Collector) -> None:
    desk, live = running
    wait_until(lambda: collector.of(StateMessage), what="the birth")
    (old,) = desk.keys()
    new = keys.rotate(SITE, desk.root / "keys")
    both = desk.message()  # the flashed config again, signed by both keys and trusting both
    assert {s.key_id for s in both.signatures or []} == {old.key_id, new.key_id}
    assert both.config_version == live.config.version
    ack = _push(collector, both)
    assert ack.ok and ack.message.startswith("already running this config; trusted keys now")
    assert {k.key_id for k in live.guard.trusted_keys} == {old.key_id, new.key_id}
    keys.retire(SITE, old.key_id, desk.root / "keys")
    only_new = desk.message(notice_cm=12.0)
    assert _push(collector, only_new).ok
    assert [k.key_id for k in live.guard.trusted_keys] == [new.key_id], "the old key is no longer trusted"
    by_old = desk.message(notice_cm=13.0, signers=[old])
    ack = _push(collector, by_old)
    assert (ack.ok, ack.reason) == (False, "unknown_key")
    reboot = load_bundle(Path.cwd())
    assert [k.key_id for k in reboot.trusted_keys] == [new.key_id], "the trust survives a reboot"


def test_a_push_that_cannot_apply_live_restarts_the_agent(
    running: tuple[Desk, LiveAgent], collector: Collector
) -> None:
    desk, live = running
    wait_until(lambda: collector.of(StateMessage), what="the birth")
    first_agent = live.agent
    message = desk.message(keepalive_s=20)
    ack = _push(collector, message)
    assert ack.ok and "restart needed" in ack.message and "mqtt.keepalive_s" in ack.message
    wait_until(lambda: live.restarts == 1, what="the restart")
    assert live.agent is not first_agent
    births = lambda: [s for s in collector.of(StateMessage) if s.status == "online"]  # noqa: E731
    wait_until(
        lambda: births()[-1].config_version == message.config_version, what="a birth with the new version"
    )
    assert births()[-1].session > births()[0].session
    assert load_bundle(Path.cwd()).config.version == message.config_version
