"""Gateway settings from the environment and the ``citywatch gateway devices`` commands."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from citywatch.cli import main
from gateway.runner import GatewayApp, GatewayStartError
from gateway.settings import Settings
from tests.support.paths import ROUTING_EXAMPLE


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CITYWATCH_MQTT_URL", "mqtt://broker.example:1884")
    monkeypatch.setenv("CITYWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CITYWATCH_HTTP_PORT", "9090")
    settings = Settings()
    assert settings.MQTT_URL == "mqtt://broker.example:1884" and settings.HTTP_PORT == 9090
    db_url = settings.DB_URL
    assert db_url == f"sqlite:///{tmp_path / 'citywatch.db'}"
    assert settings.MAX_PAYLOAD_BYTES == 256 * 1024 and settings.TELEMETRY_STORE == "sqlite"


def test_settings_explain_mistakes() -> None:
    with pytest.raises(ValidationError, match="DISPATCH_SECRET is empty"):
        Settings(DISPATCH_URL="http://127.0.0.1:9/webhook")
    with pytest.raises(ValidationError, match="whsec_"):
        Settings(DISPATCH_URL="http://127.0.0.1:9/webhook", DISPATCH_SECRET="hunter2")
    with pytest.raises(ValidationError, match="TELEMETRY_STORE"):
        Settings(TELEMETRY_STORE="csv")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="CAP_SENDER"):
        Settings(CAP_SENDER="City of Riverside")  # CAP forbids spaces in <sender>
    with pytest.raises(ValidationError, match="CAP_STATUS"):
        Settings(CAP_STATUS="Live")  # type: ignore[arg-type]


def test_devices_add_and_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYWATCH_DATA_DIR", str(tmp_path))
    assert main(["gateway", "devices", "add", "culvert-7", "--site", "riverside", "--type", "culvert"]) == 0
    assert main(["gateway", "devices", "add", "culvert-7", "--site", "riverside", "--type", "culvert"]) == 1
    assert "already registered" in capsys.readouterr().out
    assert main(["gateway", "devices", "add", "Culvert 8", "--site", "riverside", "--type", "boat"]) == 2
    out = capsys.readouterr().out
    assert "id:" in out and "device_type:" in out
    assert main(["gateway", "devices", "list", "--json"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 1 and '"id": "culvert-7"' in listed[0] and '"presence": "never_seen"' in listed[0]


def test_invalid_environment_is_reported_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYWATCH_HTTP_PORT", "eighty")
    with pytest.raises(SystemExit, match="CITYWATCH_HTTP_PORT"):
        main(["gateway", "devices", "list"])


def test_start_failures_say_what_to_change(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = GatewayApp(Settings(DATA_DIR=tmp_path / "a", HTTP_PORT=port, MQTT_URL="mqtt://127.0.0.1:9"))
        with pytest.raises(GatewayStartError, match="CITYWATCH_HTTP_PORT"):
            busy.start()
    no_db = GatewayApp(
        Settings(
            DATA_DIR=tmp_path / "b",
            HTTP_PORT=0,
            MQTT_URL="mqtt://127.0.0.1:9",
            DB_URL="postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2",
        )
    )
    with pytest.raises(GatewayStartError, match="CITYWATCH_DB_URL"):
        no_db.start()


def test_run_command_reports_a_start_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CITYWATCH_HTTP_PORT", "0")
    monkeypatch.setenv(
        "CITYWATCH_DB_URL", "postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2"
    )
    assert main(["gateway"]) == 1
    assert "cannot start" in capsys.readouterr().out


def test_gateway_command_carries_token_and_routing_subcommands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYWATCH_DATA_DIR", str(tmp_path))
    assert main(["gateway", "token", "create", "ops", "--role", "admin"]) == 0  # its table comes by migration
    assert main(["gateway", "token", "list"]) == 0
    assert "ops" in capsys.readouterr().out
    example = ROUTING_EXAMPLE
    assert main(["gateway", "routing", "check", str(example)]) == 0


@pytest.mark.parametrize("argv", [["gateway", "--help"], ["gateway", "run", "-h"]])
def test_help_lists_every_setting_with_its_default(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    text = capsys.readouterr().out
    for name in Settings.model_fields:
        assert f"CITYWATCH_{name} (default: " in text, name
    assert "CITYWATCH_DEVICE_OFFLINE_AFTER_S (default: 600.0)" in text
    assert "CITYWATCH_CLOCK_SKEW_S (default: 300.0)" in text


def test_the_docs_name_only_settings_that_exist() -> None:
    """A setting renamed or removed leaves no stale name in README, gateway/README.md or docs/."""
    from tests.support.paths import PROJECT_ROOT

    docs = [
        PROJECT_ROOT / "README.md",
        PROJECT_ROOT / "gateway" / "README.md",
        *(PROJECT_ROOT / "docs").glob("*.md"),
    ]
    for doc in docs:
        for name in re.findall(r"CITYWATCH_([A-Z0-9_]+)", doc.read_text()):
            if name.startswith("TEST_"):  # the test suite's own variables
                continue
            known = name in Settings.model_fields or (
                name.endswith("_") and any(field.startswith(name) for field in Settings.model_fields)
            )
            assert known, f"{doc.relative_to(PROJECT_ROOT)} names CITYWATCH_{name}, which is no setting"
