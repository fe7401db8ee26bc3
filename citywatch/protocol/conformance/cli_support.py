"""``citywatch protocol check`` behind its options: the broker URL and credentials, the plan, the exit status.

Credentials are never printed: the broker is named by ``MqttOptions.url`` (scheme, host, port).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import TextIO
from urllib.parse import urlsplit

from pydantic import ValidationError

from citywatch.mqtt import MqttOptions
from citywatch.protocol.conformance.checker import CheckOptions
from citywatch.protocol.conformance.findings import RULES
from citywatch.protocol.conformance.report import EXIT_CONFORMS, EXIT_USAGE, Report
from citywatch.protocol.conformance.watch import BrokerUnavailable, WatchPlan, watch
from citywatch.protocol.topics import TopicError, validate_id


class UsageError(ValueError):
    """Options that cannot work; the message says which and why."""


def run_check(args: argparse.Namespace, *, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    if args.list_rules:
        for rule in RULES:
            out.write(f"{rule.id:<28} {rule.level.value:<7} {rule.summary}\n")
        return EXIT_CONFORMS
    try:
        plan = build_plan(args, environ)
    except UsageError as exc:
        err.write(f"citywatch protocol check: {exc}\n")
        return EXIT_USAGE
    try:
        return watch(plan, Report(out, as_json=args.json), say=lambda text: print(text, file=err))
    except BrokerUnavailable as exc:
        err.write(f"citywatch protocol check: {exc}\n")
        return EXIT_USAGE


def build_plan(args: argparse.Namespace, environ: Mapping[str, str]) -> WatchPlan:
    for value, what in ((args.site, "site"), (args.device, "device_id")):
        if value is not None:
            try:
                validate_id(value, what=what)
            except TopicError as exc:
                raise UsageError(str(exc)) from None
    if args.probe and (args.site is None or args.device is None):
        raise UsageError("--probe sends commands to one device: give --site and --device")
    try:
        check = CheckOptions(
            site=args.site,
            device_id=args.device,
            clock_skew_s=args.clock_skew,
            max_payload_bytes=args.max_payload_bytes,
            ack_timeout_s=args.ack_timeout,
            silent_after_s=args.silent_after,
        )
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    return WatchPlan(
        mqtt=broker_options(args.broker, environ),
        check=check,
        duration_s=args.duration,
        max_messages=args.messages,
        probe=args.probe,
    )


def broker_options(url: str, environ: Mapping[str, str]) -> MqttOptions:
    """``MqttOptions`` from the URL; user and password from the environment where the URL has none."""
    try:
        options = MqttOptions.from_url(url)
    except ValueError:
        # Not the URL itself in the message: it may hold a password.
        scheme = urlsplit(url).scheme if "://" in url else ""
        raise UsageError(
            f"--broker must be mqtt://host:port or mqtts://host:port (got {'scheme ' + repr(scheme) if scheme else 'no scheme'}"
            " or an invalid port)"
        ) from None
    if options.username is None and environ.get("MQTT_USERNAME"):
        options = dataclasses.replace(
            options,
            username=environ["MQTT_USERNAME"],
            password=environ.get("MQTT_PASSWORD") or None,
        )
    return options
