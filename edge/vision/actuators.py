"""Actuators: the door-hold relay and the voice prompt, plus the optional door-state input.

``LoggingActuators`` works everywhere (development, the simulator, the evaluation). ``GpioActuators``
drives a relay and pulses a voice-module trigger on a Raspberry Pi through gpiozero (the ``gpio``
extra), imported only when that implementation is chosen.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from edge.vision.config import ActuatorConfig

log = logging.getLogger(__name__)


class Actuators(Protocol):
    def hold_door(self, reason: str) -> None: ...
    def release_door(self, reason: str) -> None: ...
    def voice_warning(self, reason: str) -> None: ...
    def door_open(self) -> bool | None: ...
    def close(self) -> None: ...


class LoggingActuators:
    """Logs every command and remembers them (``history``) so a test or the evaluation can read them."""

    def __init__(self) -> None:
        self.history: list[tuple[str, str]] = []
        self.door_held = False

    def hold_door(self, reason: str) -> None:
        self.door_held = True
        self.history.append(("hold_door", reason))
        log.info("door hold ON (%s)", reason)

    def release_door(self, reason: str) -> None:
        self.door_held = False
        self.history.append(("release_door", reason))
        log.info("door hold OFF (%s)", reason)

    def voice_warning(self, reason: str) -> None:
        self.history.append(("voice_warning", reason))
        log.info("voice warning: e-bikes are not allowed in the elevator (%s)", reason)

    def door_open(self) -> bool | None:
        return None

    def close(self) -> None:
        if self.door_held:
            self.release_door("shutdown")


class GpioActuators:
    """Relay on ``door_hold_pin`` (active high), a pulse on ``voice_pin``, door contact on ``door_open_pin``."""

    def __init__(self, config: ActuatorConfig) -> None:
        try:
            import gpiozero
        except ImportError as exc:
            raise RuntimeError("actuators kind 'gpio' needs gpiozero: pip install 'citywatch[gpio]'") from exc
        self._config = config
        self._relay: Any = (
            gpiozero.OutputDevice(config.door_hold_pin, initial_value=False)
            if config.door_hold_pin is not None
            else None
        )
        self._voice: Any = (
            gpiozero.OutputDevice(config.voice_pin, initial_value=False)
            if config.voice_pin is not None
            else None
        )
        self._door: Any = (
            gpiozero.DigitalInputDevice(config.door_open_pin, pull_up=True)
            if config.door_open_pin is not None
            else None
        )

    def hold_door(self, reason: str) -> None:
        log.info("door hold ON (%s)", reason)
        if self._relay is not None:
            self._relay.on()

    def release_door(self, reason: str) -> None:
        log.info("door hold OFF (%s)", reason)
        if self._relay is not None:
            self._relay.off()

    def voice_warning(self, reason: str) -> None:
        log.info("voice warning (%s)", reason)
        if self._voice is not None:
            self._voice.on()
            # Release the trigger later without blocking the frame loop.
            threading.Timer(self._config.voice_pulse_s, self._voice.off).start()

    def door_open(self) -> bool | None:
        return bool(self._door.value) if self._door is not None else None

    def close(self) -> None:
        for device in (self._relay, self._voice, self._door):
            if device is not None:
                device.close()


def make_actuators(config: ActuatorConfig) -> Actuators:
    return GpioActuators(config) if config.kind == "gpio" else LoggingActuators()
