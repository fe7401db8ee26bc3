"""RS-232 ultrasonic ranger (MaxBotix-style): prints ``R1234\\r`` continuously, distance in millimetres."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)
_READING = re.compile(rb"R(\d{3,4})")


def parse_reading(line: bytes) -> int | None:
    """``b'R1234'`` -> 1234; anything else (noise, partial line) -> None."""
    match = _READING.fullmatch(line.strip())
    return int(match.group(1)) if match else None


class SerialRanger:
    def __init__(self, port: Any) -> None:
        self.port = port  # a pyserial Serial (or anything with read_until/close)

    @classmethod
    def open(cls, url: str, *, baudrate: int = 9600, timeout_s: float = 1.0) -> SerialRanger:
        import serial

        # serial_for_url also accepts loop:// and socket:// (tests, remote sensors).
        return cls(serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s))

    def read(self, ts: datetime, count: int) -> list[float | None]:
        readings: list[float | None] = []
        for _ in range(count):
            line = self.port.read_until(b"\r", size=16)
            if not line:  # timeout: the sensor is silent, don't wait for the rest of the burst
                readings.extend([None] * (count - len(readings)))
                break
            value = parse_reading(line)
            if value is None:
                log.debug("unparsable ranger output %r", line)
            readings.append(value)
        return readings

    def close(self) -> None:
        self.port.close()
