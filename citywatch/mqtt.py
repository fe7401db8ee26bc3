"""Connection options shared by every MQTT client in the project (edge agent, gateway, simulators)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class MqttOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    keepalive_s: int = 30
    ca_file: str | None = None  # PEM CA the broker's certificate is checked against; None: the system's

    @classmethod
    def from_url(cls, url: str) -> MqttOptions:
        """``mqtt://user:pass@host:1883`` or ``mqtts://host:8883``."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=parts.username,
            password=parts.password,
            tls=tls,
        )

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
