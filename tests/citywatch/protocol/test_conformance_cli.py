"""``citywatch protocol check`` options and failures: exit 2 with a clear message, never a credential."""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from citywatch.broker.mosquitto import mosquitto_binary, wait_for_port, write_config
from citywatch.cli import build_parser, main
from citywatch.local_server import free_port
from citywatch.protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES
from citywatch.protocol.conformance import RULES, CheckOptions
from citywatch.protocol.conformance.checker import DEFAULT_CLOCK_SKEW_S
from citywatch.protocol.conformance.report import Report
from citywatch.protocol.topics import Channel
from tests.citywatch.protocol.conformance_support import Feed, state, telemetry
from tests.support.paths import PROJECT_ROOT

SECRET = "s3cr3t-passw0rd"
KIT_OPTIONS = ("--site", "s1", "--messages", "1", "--json")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["protocol", "check", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_an_unreachable_broker_is_exit_2_with_a_clear_message_and_no_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()  # nothing listens there
    status, out, err = run(capsys, "--broker", f"mqtt://vendor:{SECRET}@127.0.0.1:{port}", "--duration", "1")
    assert status == 2
    assert f"cannot reach the broker at mqtt://127.0.0.1:{port}" in err
    assert out == ""
    assert SECRET not in err


def test_credentials_from_the_environment_are_not_printed_either(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWATCH_MQTT_URL", f"mqtt://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MQTT_USERNAME", "vendor")
    monkeypatch.setenv("MQTT_PASSWORD", SECRET)
    status, out, err = run(capsys, "--duration", "1")
    assert status == 2 and "cannot reach the broker" in err
    assert SECRET not in out + err


def test_a_broker_refusing_the_credentials_is_exit_2_naming_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    conf = write_config(tmp_path, port)
    (tmp_path / "passwords").write_text("")  # nobody may connect
    conf.write_text(conf.read_text() + f"\nallow_anonymous false\npassword_file {tmp_path}/passwords\n")
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port)
        status, out, err = run(
            capsys, "--broker", f"mqtt://vendor:{SECRET}@127.0.0.1:{port}", "--duration", "1"
        )
    finally:
        broker.terminate()
        broker.wait(10)
    assert status == 2
    assert f"the broker at mqtt://127.0.0.1:{port} refused the connection: Not authorized" in err
    assert SECRET not in err + out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--probe", "--site", "s1"], "--probe sends commands to one device"),
        (["--site", "Site 1"], "site 'Site 1' is not valid"),
        (["--device", "../c1"], "device_id '../c1' is not valid"),
        (["--broker", f"http://vendor:{SECRET}@host:1883"], "--broker must be mqtt://"),
        (["--broker", f"mqtt://vendor:{SECRET}@host:99999"], "--broker must be mqtt://"),
    ],
    ids=["probe without device", "bad site", "bad device", "not mqtt", "bad port"],
)
def test_bad_options_are_exit_2_saying_why(
    capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    status, out, err = run(capsys, *args)
    assert status == 2
    assert says in err
    assert SECRET not in out + err


@pytest.mark.parametrize(
    "args",
    [
        ["--duration", "1", "--messages", "5"],
        ["--duration", "0"],
        ["--messages", "-1"],
        ["--clock-skew", "nan"],
    ],
    ids=["duration and messages", "zero duration", "negative messages", "nan skew"],
)
def test_argument_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["protocol", "check", *args])
    assert exited.value.code == 2


def test_list_rules_names_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--list-rules")
    assert status == 0
    listed = [line.split()[0] for line in out.splitlines()]
    assert listed == [rule.id for rule in RULES]


def test_the_command_module_imports_only_the_standard_library() -> None:
    """Like every subsystem's cli module: building the `citywatch` parser does not load the kit or paho.

    (Importing any module of citywatch.protocol runs the package's __init__, which loads the models.)
    """
    source = (PROJECT_ROOT / "citywatch" / "protocol" / "cli.py").read_text()
    top_level = [node for node in ast.parse(source).body if isinstance(node, ast.Import | ast.ImportFrom)]
    modules = {alias.name for node in top_level if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)}
    assert {module.split(".")[0] for module in modules} <= set(sys.stdlib_module_names) | {"__future__"}
    code = "import sys, citywatch.cli as c; c.build_parser(); print(sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "conformance" not in loaded and "paho" not in loaded


@pytest.mark.slow
def test_an_mqtt_3_broker_is_watched_with_what_it_can_tell(capsys: pytest.CaptureFixture[str]) -> None:
    """amqtt speaks MQTT 3.1.1 only: the kit falls back, says retain flags of live messages are unknown,
    and does not blame the device for them."""
    pytest.importorskip("amqtt")
    from citywatch.broker.embedded import EmbeddedBroker

    broker = EmbeddedBroker().start()
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        device.connect(broker.host, broker.port)
        device.loop_start()
        kit = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "citywatch.cli",
                "protocol",
                "check",
                "--broker",
                broker.url,
                *KIT_OPTIONS,
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert kit.stderr is not None
        assert "(MQTT 3.1.1)" in kit.stderr.readline()
        birth = json.dumps(state("online", 1, datetime.now(UTC)))
        device.publish("citywatch/v1/s1/c1/state", birth, qos=1, retain=True).wait_for_publish(5)
        out, _ = kit.communicate(timeout=20)
    finally:
        device.disconnect()
        device.loop_stop()
        broker.stop()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["rule"] for line in lines if line["kind"] == "finding"] == ["mqtt.retain_unknown"]
    assert kit.returncode == 0


def test_defaults_are_the_gateways() -> None:
    args = build_parser().parse_args(["protocol", "check"])
    assert args.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES
    assert args.clock_skew == DEFAULT_CLOCK_SKEW_S == CheckOptions().clock_skew_s


def test_text_report_has_a_line_per_finding_and_a_summary_with_counts_per_rule() -> None:
    feed = Feed()
    out = io.StringIO()
    report = Report(out, as_json=False)
    report.write(feed.send(Channel.STATE, state(), qos=0))
    report.write(feed.send(Channel.STATE, state()))
    report.write(feed.send(Channel.TELEMETRY, telemetry(), qos=0))
    summary = report.summary(
        scope="citywatch/v1/s1/c1/#", duration_s=2.0, messages=3, devices=["c1"], by_channel={"state": 2}
    )
    report.write_summary(summary)
    lines = out.getvalue().splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [["error", "#1"], ["info", "#2"], ["error", "#3"]]
    assert lines[3] == "", "a blank line before the summary"
    assert summary.by_rule == {"message.duplicate": 1, "mqtt.qos": 2}
    assert (summary.errors, summary.warnings, summary.infos, summary.exit_status) == (2, 0, 1, 1)
    assert any(line.split()[:3] == ["error", "mqtt.qos", "2"] for line in lines)
    assert lines[-1] == "result: deviates from docs/protocol.md (exit 1)"


def _kit_section() -> str:
    text = (PROJECT_ROOT / "docs" / "protocol.md").read_text()
    section = text.split("\n## Conformance kit\n", 1)[1]
    return section.split("\n## ", 1)[0]


def test_the_page_lists_every_rule_with_its_severity() -> None:
    rows = re.findall(r"^\| `([a-z_.0-9]+)` \| (error|warning|info) \|", _kit_section(), flags=re.M)
    assert rows == [(rule.id, rule.level.value) for rule in RULES]


def test_the_page_names_every_option() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    protocol = commands.choices["protocol"]
    checks = next(a for a in protocol._actions if isinstance(a, argparse._SubParsersAction))
    options = {o for a in checks.choices["check"]._actions for o in a.option_strings if o.startswith("--")}
    section = _kit_section()
    assert sorted(o for o in options - {"--help"} if f"`{o}" not in section) == []
