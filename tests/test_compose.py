"""docker-compose.yml is valid and describes the stack docs/scaling.md describes.

No image can be pulled here, so nothing is started: Debian's ``docker-compose`` (1.29, no daemon
needed for ``config``) validates the file against the compose schema and prints it resolved (anchors
merged, variables interpolated), and the structure is checked on what it printed. The stack itself is
exercised without containers by tests/e2e/test_deploy_stack.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
# Dummy values of the .env the file requires; each is looked for in what compose prints.
SECRETS = {
    "POSTGRES_PASSWORD": "pg-dummy-7f3a",
    "INFLUX_PASSWORD": "influx-dummy-91c2",
    "INFLUX_TOKEN": "tok-dummy-5d8e",
}
GATEWAYS = ("gateway-1", "gateway-2")


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's with apt)")
    clean = {key: value for key, value in os.environ.items() if key not in SECRETS}
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "config"],
        env=clean | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert isinstance(resolved, dict)
    return resolved


def test_the_file_is_valid_and_runs_two_gateways_on_one_shared_subscription(config: dict[str, Any]) -> None:
    services = config["services"]
    assert {"mosquitto", "postgres", "influxdb", *GATEWAYS} <= set(services)
    env = {name: services[name]["environment"] for name in GATEWAYS}
    groups = {e["CITYWATCH_MQTT_SHARE_GROUP"] for e in env.values()}
    assert len(groups) == 1 and groups != {""}, "both gateways must give the same, non-empty share group"
    client_ids = [e["CITYWATCH_MQTT_CLIENT_ID"] for e in env.values()]
    assert len(set(client_ids)) == len(GATEWAYS), f"each gateway needs its own client id: {client_ids}"
    for name, e in env.items():
        assert e["CITYWATCH_DB_URL"].startswith("postgresql+psycopg://"), name
        assert "@postgres:5432/" in e["CITYWATCH_DB_URL"], name
        assert e["CITYWATCH_MQTT_URL"] == "mqtt://mosquitto:1883", name
        assert e["CITYWATCH_DB_URL"] == env["gateway-1"]["CITYWATCH_DB_URL"], "one database for all"
    published = [port["published"] for name in GATEWAYS for port in services[name]["ports"]]
    assert len(set(published)) == len(GATEWAYS), published


def test_start_order_waits_for_healthchecks(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in ("mosquitto", "postgres", "influxdb", *GATEWAYS):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "mosquitto_sub" in services["mosquitto"]["healthcheck"]["test"]
    for name in GATEWAYS:
        depends = services[name]["depends_on"]
        for needed in ("postgres", "mosquitto", "influxdb"):
            assert depends[needed]["condition"] == "service_healthy", (name, needed)
        assert any("/health/live" in part for part in services[name]["healthcheck"]["test"]), name
    assert services["gateway-2"]["depends_on"]["gateway-1"]["condition"] == "service_healthy"


def test_gateways_share_evidence_but_not_their_spill(config: dict[str, Any]) -> None:
    mounts = {name: config["services"][name]["volumes"] for name in GATEWAYS}
    data = {name: {m.split(":")[0] for m in v if m.split(":")[1] == "/data"} for name, v in mounts.items()}
    spill = {
        name: {m.split(":")[0] for m in v if m.split(":")[1] == "/data/influx-spill"}
        for name, v in mounts.items()
    }
    assert data["gateway-1"] == data["gateway-2"] and len(data["gateway-1"]) == 1
    assert spill["gateway-1"].isdisjoint(spill["gateway-2"]) and all(spill.values())


def test_mounted_files_exist_and_the_dockerfile_matches(config: dict[str, Any]) -> None:
    """The broker mounts the project's config files; the image serves on the port the healthcheck asks."""
    files = [m.split(":")[0] for m in config["services"]["mosquitto"]["volumes"] if m.startswith("/")]
    assert sorted(files) == sorted(
        str(ROOT / name) for name in ("deploy/mosquitto/mosquitto.conf", "citywatch/broker/mosquitto.conf")
    )
    assert all(Path(source).is_file() for source in files)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8080" in dockerfile and "CITYWATCH_HTTP_HOST=0.0.0.0" in dockerfile
    assert "postgres" in dockerfile  # the extras the image installs include the PostgreSQL driver
    for name in GATEWAYS:
        assert all(port["target"] == 8080 for port in config["services"][name]["ports"])


def test_a_missing_secret_is_refused_not_defaulted() -> None:
    for missing in SECRETS:
        result = compose_config({key: value for key, value in SECRETS.items() if key != missing})
        assert result.returncode != 0
        assert missing in result.stderr


def test_the_file_holds_no_secret() -> None:
    text = COMPOSE_FILE.read_text()
    assert "whsec_" not in text
    for value in SECRETS.values():
        assert value not in text
