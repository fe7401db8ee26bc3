"""Run a device agent and apply the configs pushed to it: live where the agent can, else by a restart.

``LiveAgent`` builds the agent for the config's kind and answers config pushes through a
``ConfigGuard`` (signature, age, identity, schema, files: edge/uplink/config_push.py). An accepted
config whose changed fields are all live ones for its kind (edge/live_fields.py) goes to the agent's
``apply_live(config, changed)`` (the culvert agent takes new analyzer options and reporting between two
samples: its open event and trusted level stay; a camera agent swaps thresholds, zones and analyzer
settings in between two frames: edge/vision/camera_agent.py) and the ack says "applied live, no
restart (fields)". Otherwise the agent is restarted in this process on the new config and the ack says
"restart needed for <the fields that need it>". A restart that fails (the new camera cannot be
opened...) brings the last good config back. From a bundle, an accepted config (and the keys trusted
since) is kept in it for the next boot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from citywatch.protocol.messages import CommandMessage, ConfigMessage, TrustedKey
from edge.config import AgentConfig
from edge.installer.bundle import Boot
from edge.live_fields import restart_fields
from edge.uplink.config_push import ConfigAnswer, ConfigGuard

log = logging.getLogger(__name__)


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves that differ between two config dumps (lists compared whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        paths: list[str] = []
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                paths.append(path)
            else:
                paths += changed_paths(old[key], new[key], path)
        return paths
    return [] if old == new else [prefix]


def _summary(paths: list[str], limit: int = 6) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


class LiveAgent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        build: Callable[[AgentConfig], Any],
        boot: Boot | None = None,
    ) -> None:
        self.config = config
        self.boot = boot
        self._build = build
        self.guard = ConfigGuard(
            config,
            apply=self._apply,
            trusted_keys=boot.trusted_keys if boot else (),
            issued_at=boot.issued_at if boot else None,
            on_accepted=self._accepted,
        )
        self.agent: Any = None
        self.restarts = 0
        self._pending: AgentConfig | None = None
        self._pending_push: tuple[ConfigMessage, tuple[TrustedKey, ...]] | None = None
        self._wake = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> LiveAgent:
        self.agent = self._make(self.config)
        self.agent.start()
        return self

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None

    def run_until(self, stop: threading.Event) -> None:
        """Wait for ``stop``; meanwhile restart the agent on configs that cannot be applied live."""
        while not stop.is_set():
            if self._wake.wait(1.0):
                self._wake.clear()
                self.restart_pending()

    def _make(self, config: AgentConfig) -> Any:
        agent = self._build(config)
        uplink = getattr(agent, "uplink", None)
        if uplink is not None and hasattr(uplink, "set_config_handler"):
            uplink.set_config_handler(self.guard)
            uplink.intercept_commands(self._command)
        return agent

    def _command(self, command: CommandMessage) -> tuple[bool, str] | None:
        """``test_actuators`` (``citywatch device check --actuators``): hold the door, play the voice."""
        if command.command != "test_actuators":
            return None
        actuators = getattr(self.agent, "actuators", None)
        if actuators is None:
            return False, f"a {getattr(self.config, 'kind', '?')} device has no actuators to test"
        hold_s = min(float(command.args.get("hold_s", 1.0)), 5.0)
        actuators.hold_door("commissioning test")
        time.sleep(hold_s)  # the installer watches the door stay open
        actuators.release_door("commissioning test")
        actuators.voice_warning("commissioning test")
        door = actuators.door_open()
        state = "unknown (no door contact)" if door is None else ("open" if door else "closed")
        return True, f"door held {hold_s:g} s and released, voice warning played; door contact: {state}"

    def _apply(self, new: AgentConfig, message: ConfigMessage) -> ConfigAnswer:
        """From the uplink's network thread: live when the agent can; else a restart by ``run_until``."""
        changed = changed_paths(self.config.model_dump(mode="json"), new.model_dump(mode="json"))
        needs_restart = restart_fields(getattr(new, "kind", ""), changed)  # edge/live_fields.py
        apply_live = getattr(self.agent, "apply_live", None)
        # apply_live raises Rejected when the new settings do not fit: the guard answers, nothing changed.
        if not needs_restart and apply_live is not None and apply_live(new, changed):
            self.config = new
            self.agent.uplink.set_config_version(new.version)
            log.info("config %s applied live (%s)", new.version, _summary(changed))
            return ConfigAnswer(True, f"applied live, no restart ({_summary(changed)})", None, new.version)
        with self._lock:
            self._pending = new  # restarted by run_until once the guard has taken it (_accepted)
        if needs_restart:
            why = f"restart needed for {_summary(needs_restart)}"
        elif apply_live is None:
            why = "restart needed (this agent applies no change live)"
        else:
            why = "restart needed (the agent did not take it live)"
        log.info("config %s accepted; %s: restarting the agent", new.version, why)
        return ConfigAnswer(
            True,
            f"accepted; {why}: the agent restarts on it now (changed: {_summary(changed)})",
            None,
            new.version,
        )

    def _accepted(self, message: ConfigMessage, trusted_keys: tuple[TrustedKey, ...]) -> None:
        with self._lock:
            restart = self._pending is not None
            if restart:  # kept in the bundle once the agent runs on it
                self._pending_push = (message, trusted_keys)
        if restart:
            self._wake.set()
        elif self.boot is not None:
            self.boot.persist_push(message, trusted_keys)

    def restart_pending(self) -> bool:
        """Restart on the accepted config; on failure, back on the last good one. True: it runs the new."""
        with self._lock:
            new, self._pending = self._pending, None
            push, self._pending_push = self._pending_push, None
        if new is None:
            return False
        old = self.config
        log.info("restarting the %s agent on config %s", getattr(new, "kind", "?"), new.version)
        if self.agent is not None:
            self.agent.stop()
        try:
            self.agent = self._make(new)
            self.agent.start()
        except Exception as exc:
            log.error("config %s did not start (%s): back on config %s", new.version, exc, old.version)
            self.guard.current = old
            self.agent = self._make(old)
            self.agent.start()
            return False
        self.config = new
        self.restarts += 1
        if push is not None and self.boot is not None:
            self.boot.persist_push(*push)
        return True
