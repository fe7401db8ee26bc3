"""Config pushes on ``config``: checked (signature, age, identity, schema, files), then applied.

The same version is already running: answered at once. Anything else goes to the handler. Two exist:

- ``validate_pushed_config``: validation only (an ``Uplink`` built without a runtime, tests);
- ``ConfigGuard``: what an agent started by ``run_agent`` uses. A device that trusts keys (booted from a
  bundle) refuses an unsigned config (``unsigned``), one whose signature does not verify
  (``bad_signature``), one signed by a key it does not trust (``unknown_key``), one issued before the
  config it runs (``stale``: a replay), one for another device (``wrong_device``), one the config model
  refuses (``invalid``, every mistake) and one naming a file it lacks or whose hash differs from the
  signed one (``missing_file``). Each refusal is logged and answered; the device keeps its config. An
  accepted config goes to ``apply`` (live, or by restarting the agent: edge/installer/live.py), and its
  ``trusted_keys`` become the device's trust: a config signed by the old key can bring the new one.

A device without trusted keys (run from a plain YAML file) accepts unsigned configs, and says so in
its log at start: run from a bundle in service.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from citywatch.protocol.messages import ConfigMessage, TrustedKey, config_version
from edge.config import AgentConfig, ConfigError, validate_config_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConfigAnswer:
    """The ack for a config push: accepted or not, why, and the version the device runs afterwards."""

    ok: bool
    message: str
    reason: str | None = None
    config_version: str | None = None


ConfigHandler = Callable[[ConfigMessage], "ConfigAnswer | tuple[bool, str]"]


def validate_pushed_config(message: ConfigMessage) -> tuple[bool, str]:
    """Validation only: against the device config model, saying what is wrong."""
    try:
        validate_config_dict(message.config, source="pushed config")
    except ConfigError as exc:
        return False, "; ".join(exc.problems)[:1000]
    return True, "valid"


def answer_config_push(
    message: ConfigMessage, *, running_version: str, handler: ConfigHandler
) -> ConfigAnswer:
    if isinstance(handler, ConfigGuard):
        return handler(message)  # it knows what it runs, and a same-version push may bring new keys
    if message.config_version == running_version:
        return ConfigAnswer(True, "already running this config", config_version=running_version)
    answer = handler(message)
    if isinstance(answer, ConfigAnswer):
        return answer
    ok, text = answer
    return ConfigAnswer(ok, text, None if ok else "invalid")


# Path fields that the agent writes, not reads: never bundled, never checked for existence.
OUTPUT_PATHS = frozenset({"outbox.path"})


def input_files(config: AgentConfig) -> dict[str, Path]:
    """Every file the config names for the agent to read (models, recordings, CA, password), by field path."""
    found: dict[str, Path] = {}

    def walk(value: object, path: str) -> None:
        if isinstance(value, Path):
            if path not in OUTPUT_PATHS and not path.endswith("_dir"):
                found[path] = value
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name, None), f"{path}.{name}" if path else name)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")

    walk(config, "")
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Rejected(Exception):
    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


# apply(new config, its message) -> the answer; raises Rejected when it cannot take it.
Apply = Callable[[AgentConfig, ConfigMessage], ConfigAnswer]
# on_accepted(message, trusted keys now): persist it (a bundle keeps it across reboots).
OnAccepted = Callable[[ConfigMessage, tuple[TrustedKey, ...]], None]


class ConfigGuard:
    """The config handler of a running agent: checks a push, hands it to ``apply``, remembers it."""

    def __init__(
        self,
        current: AgentConfig,
        *,
        apply: Apply,
        trusted_keys: Sequence[TrustedKey] = (),
        issued_at: datetime | None = None,
        base_dir: Path | None = None,
        on_accepted: OnAccepted | None = None,
    ) -> None:
        self.current = current
        self.trusted_keys: tuple[TrustedKey, ...] = tuple(trusted_keys)
        self.issued_at = issued_at
        self.base_dir = base_dir or Path.cwd()
        self._apply = apply
        self._on_accepted = on_accepted
        self._lock = threading.Lock()
        self.accepted = 0
        self.rejected = 0
        if not self.trusted_keys:
            log.warning(
                "no trusted config keys: pushed configs are accepted unsigned (run from a bundle in service: "
                "citywatch edge run --bundle DIR)"
            )

    def __call__(self, message: ConfigMessage) -> ConfigAnswer:
        with self._lock:  # QoS 1 may hand the same push twice; one at a time
            try:
                self._check_signature(message)
                if message.config_version == self.current.version == config_version(message.config):
                    return self._same_version(message)
                self._check_age(message)
                new = self._check(message)
                answer = self._apply(new, message)
            except Rejected as exc:
                self.rejected += 1
                log.warning(
                    "refused config %s (%s): %s; still running config %s",
                    message.config_version,
                    exc.reason,
                    exc.text,
                    self.current.version,
                )
                return ConfigAnswer(False, exc.text, exc.reason, self.current.version)
            if not answer.ok:
                self.rejected += 1
                return answer
            self.accepted += 1
            self.current = new
            if self.trusted_keys and message.issued_at is not None:
                self.issued_at = message.issued_at
            if self.trusted_keys and message.trusted_keys:
                self.trusted_keys = tuple(message.trusted_keys)
                log.info("trusted config keys now: %s", ", ".join(k.key_id for k in self.trusted_keys))
            if self._on_accepted is not None:
                self._on_accepted(message, self.trusted_keys)
            return answer

    def _same_version(self, message: ConfigMessage) -> ConfigAnswer:
        """The retained config at every connect, or a key rotation that keeps the config."""
        version = self.current.version
        newer = (
            message.issued_at is not None
            and self.issued_at is not None
            and message.issued_at > self.issued_at
        )
        offered = tuple(message.trusted_keys or ())
        if self.trusted_keys and newer and offered and offered != self.trusted_keys:
            self.trusted_keys = offered
            self.issued_at = message.issued_at
            if self._on_accepted is not None:
                self._on_accepted(message, self.trusted_keys)
            keys = ", ".join(k.key_id for k in self.trusted_keys)
            log.info("config %s again, with new trusted keys: %s", version, keys)
            return ConfigAnswer(True, f"already running this config; trusted keys now {keys}", None, version)
        return ConfigAnswer(True, "already running this config", None, version)

    def _check_signature(self, message: ConfigMessage) -> None:
        if not self.trusted_keys:
            return
        from edge.installer.signing import SignatureRejected, verify_config

        try:
            verify_config(message, self.trusted_keys)
        except SignatureRejected as exc:
            raise Rejected(exc.reason, exc.text) from None

    def _check_age(self, message: ConfigMessage) -> None:
        if not self.trusted_keys:
            return
        if message.issued_at is None:
            raise Rejected("stale", "a signed config must carry issued_at")
        if self.issued_at is not None and message.issued_at <= self.issued_at:
            raise Rejected(
                "stale",
                f"issued {message.issued_at.isoformat()}, not after the running config "
                f"({self.issued_at.isoformat()}): an old config sent again is not applied",
            )

    def _check(self, message: ConfigMessage) -> AgentConfig:
        try:
            new = validate_config_dict(message.config, source="pushed config")
        except ConfigError as exc:
            raise Rejected("invalid", "; ".join(exc.problems)[:1000]) from None
        running = self.current
        if (new.device.site, new.device.id) != (running.device.site, running.device.id):
            raise Rejected(
                "wrong_device",
                f"the config is for {new.device.site}/{new.device.id}, this is "
                f"{running.device.site}/{running.device.id}",
            )
        if getattr(new, "kind", None) != getattr(running, "kind", None):
            raise Rejected(
                "invalid",
                f"kind {getattr(new, 'kind', None)!r} cannot replace {getattr(running, 'kind', None)!r}: "
                "flash the device again",
            )
        self._check_files(new, message.files or {})
        return new

    def _check_files(self, config: AgentConfig, hashes: dict[str, str]) -> None:
        problems = []
        for field, path in input_files(config).items():
            on_disk = path if path.is_absolute() else self.base_dir / path
            if not on_disk.is_file():
                problems.append(f"{field}: {path} is not on the device (flash a bundle with it)")
                continue
            expected = hashes.get(path.as_posix())
            if expected is not None and sha256_file(on_disk) != expected:
                problems.append(
                    f"{field}: {path} on the device differs from the file the config was signed with "
                    "(flash the device again)"
                )
        if problems:
            raise Rejected("missing_file", "; ".join(problems)[:1000])
