"""Config pushes on ``config``: the same version is already running; anything else goes to the handler,
by default a validation against the device config model that says what is wrong."""

from __future__ import annotations

from collections.abc import Callable

from citywatch.protocol.messages import ConfigMessage
from edge.config import ConfigError, validate_config_dict

ConfigHandler = Callable[[ConfigMessage], "tuple[bool, str]"]


def validate_pushed_config(message: ConfigMessage) -> tuple[bool, str]:
    """Default config handler: validate against the device config model and say why not."""
    try:
        validate_config_dict(message.config, source="pushed config")
    except ConfigError as exc:
        return False, "; ".join(exc.problems)[:1000]
    return True, "valid"


def answer_config_push(
    message: ConfigMessage, *, running_version: str, handler: ConfigHandler
) -> tuple[bool, str]:
    if message.config_version == running_version:
        return True, "already running this config"
    return handler(message)
