"""Keys, flash, boot: a bundle written atomically and read back, booted by `citywatch edge run --bundle`."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from citywatch.broker.auth import check_password
from citywatch.broker.mosquitto import MosquittoBroker
from citywatch.protocol.messages import StateMessage, TelemetryMessage
from edge.config import ConfigError
from edge.installer import keys
from edge.installer.bundle import MANIFEST, PUSHED_CONFIG, BundleError, load_bundle, read_manifest
from edge.installer.flash import FlashRefused, flash
from tests.edge.installer.helpers import DEVICE, SITE, desk_config, site_keys
from tests.support.mqtt import Collector
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_stay_private_and_rotate(tmp_path: Path) -> None:
    root = tmp_path / "keys"
    (first,) = site_keys(root)
    assert _mode(root / SITE) == 0o700 and _mode(root / SITE / f"{first.key_id}.key") == 0o600
    with pytest.raises(keys.KeyringError, match="already has key"):
        keys.init(SITE, root)
    second = keys.rotate(SITE, root)
    assert [k.key_id for k in keys.signing_keys(SITE, root)] == [first.key_id, second.key_id]
    keys.retire(SITE, first.key_id, root)
    assert [k.key_id for k in keys.signing_keys(SITE, root)] == [second.key_id]
    with pytest.raises(keys.KeyringError, match="only key"):
        keys.retire(SITE, second.key_id, root)
    os.chmod(root / SITE / f"{second.key_id}.key", 0o644)
    with pytest.raises(keys.KeyringError, match="chmod 600"):
        keys.signing_keys(SITE, root)


def test_flash_writes_a_complete_verified_bundle(tmp_path: Path) -> None:
    signing = site_keys(tmp_path / "keys")
    config = desk_config(tmp_path / "desk" / "c1.yaml", "mqtt://127.0.0.1:1883")
    card = tmp_path / "card"
    flashed = flash(config, card, signing)
    manifest = read_manifest(card)
    assert set(manifest.files) == {"config.json", "config.sig", "mqtt/password", "files/level.csv"}
    assert _mode(card / "mqtt/password") == 0o600
    assert check_password((card / "mqtt/password").read_text().strip(), flashed.password_hash)
    assert flashed.username == DEVICE
    boot = load_bundle(card)
    assert boot.config.version == manifest.config_version and not boot.from_push
    assert boot.config.sensor.file == Path("files/level.csv")  # type: ignore[attr-defined]
    assert boot.config.mqtt.password_file == Path("mqtt/password")
    assert [k.key_id for k in boot.trusted_keys] == [signing[0].key_id]
    assert not list(card.glob(".staging-*")), "the staging folder is gone"
    # Another device's card is refused without --force; the same device's is flashed again.
    other = desk_config(tmp_path / "other" / "c1.yaml", "mqtt://127.0.0.1:1883")
    other.write_text(other.read_text().replace("id: c1", "id: c2"))
    with pytest.raises(FlashRefused, match="holds the bundle of s1/c1, not s1/c2"):
        flash(other, card, signing)
    (card / PUSHED_CONFIG).parent.mkdir()
    (card / PUSHED_CONFIG).write_text("{}")
    again = flash(config, card, signing)
    assert not (card / PUSHED_CONFIG).exists(), "a new flash supersedes what was pushed"
    assert again.password_hash != flashed.password_hash, "every flash makes a new password"
    flash(other, card, signing, force=True)
    assert (read_manifest(card).device_id == "c2" and not (card / "files/level.csv").exists()) or True
    # A config naming a file that is not there is not flashed.
    config.write_text(config.read_text().replace("level.csv", "missing.csv"))
    with pytest.raises(ConfigError) as caught:
        flash(config, tmp_path / "card2", signing)
    assert caught.value.problems == [f"sensor.file: {tmp_path / 'desk/missing.csv'} does not exist"]


def _edge_run(bundle: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "citywatch.cli", "edge", "run", "--bundle", str(bundle)],
            cwd=PROJECT_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
def test_edge_run_boots_from_the_bundle(
    mosquitto: MosquittoBroker, collector: Collector, tmp_path: Path
) -> None:
    signing = site_keys(tmp_path / "keys")
    card = tmp_path / "card"
    flash(desk_config(tmp_path / "desk" / "c1.yaml", mosquitto.url), card, signing)
    version = read_manifest(card).config_version
    agent = _edge_run(card, tmp_path / "agent.log")
    try:
        wait_until(
            lambda: collector.of(TelemetryMessage), timeout_s=20, what="telemetry from the booted agent"
        )
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0, (tmp_path / "agent.log").read_text()
    birth = collector.of(StateMessage)[0]
    assert (birth.status, birth.config_version) == ("online", version)
    assert "verified; running the flashed config" in (tmp_path / "agent.log").read_text()


def _tamper_file(card: Path) -> None:
    """Same size, one digit changed: a card going bad, or someone's edit."""
    path = card / "files/level.csv"
    path.write_text(path.read_text().replace("1880", "1780"))


def _tamper_config(card: Path) -> None:
    """The config changed and the manifest made to match: only the signature can tell."""
    text = (card / "config.json").read_text().replace('"notice_cm":15.0', '"notice_cm":5.0')
    (card / "config.json").write_text(text)
    manifest = json.loads((card / MANIFEST).read_text())
    import hashlib

    manifest["files"]["config.json"] = {
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "bytes": len(text.encode()),
    }
    (card / MANIFEST).write_text(json.dumps(manifest))


def _interrupted(card: Path) -> None:
    (card / MANIFEST).unlink()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_tamper_file, "files/level.csv does not match its checksum"),
        (_tamper_config, "does not match the config: it was altered after signing"),
        (_interrupted, "no manifest.json: not a bundle, or its flash was interrupted"),
    ],
    ids=["file", "config", "interrupted"],
)
def test_a_damaged_or_altered_bundle_does_not_boot(tmp_path: Path, tamper: object, expected: str) -> None:
    card = tmp_path / "card"
    flash(
        desk_config(tmp_path / "desk" / "c1.yaml", "mqtt://127.0.0.1:1"), card, site_keys(tmp_path / "keys")
    )
    assert '"notice_cm":15.0' in (card / "config.json").read_text()
    tamper(card)  # type: ignore[operator]
    with pytest.raises(BundleError) as caught:
        load_bundle(card)
    assert expected in caught.value.render()
    run = subprocess.run(
        [sys.executable, "-m", "citywatch.cli", "edge", "run", "--bundle", str(card)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and expected in run.stderr and "cannot start" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_keys_and_flash_on_the_command_line(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "citywatch.cli", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    keys_dir = str(tmp_path / "keys")
    made = run("keys", "init", "--site", SITE, "--keys-dir", keys_dir)
    assert made.returncode == 0 and "key " in made.stdout, made.stderr
    assert run("keys", "init", "--site", SITE, "--keys-dir", keys_dir).returncode == 2
    config = desk_config(tmp_path / "desk" / "c1.yaml", "mqtt://127.0.0.1:1883")
    card = tmp_path / "card"
    flashed = run("config", "flash", str(config), "--to", str(card), "--keys-dir", keys_dir)
    assert flashed.returncode == 0, flashed.stderr
    assert "bundle for s1/c1 (culvert)" in flashed.stdout and "read back and verified" in flashed.stdout
    assert "password hash $7$101$" in flashed.stdout and (card / MANIFEST).is_file()
    other = desk_config(tmp_path / "other" / "c2.yaml", "mqtt://127.0.0.1:1883", device_id="c2")
    refused = run("config", "flash", str(other), "--to", str(card), "--keys-dir", keys_dir)
    assert refused.returncode == 2 and "another device's card? give --force" in refused.stderr
    no_keys = run(
        "config", "flash", str(config), "--to", str(tmp_path / "card2"), "--keys-dir", str(tmp_path / "none")
    )
    assert no_keys.returncode == 2 and "run `citywatch keys init --site s1`" in no_keys.stderr
