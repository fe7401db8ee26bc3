"""``citywatch config check``: a table of broken configs, each with the line, field and message it yields."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.installer.check import CheckOptions, check_file, check_paths
from edge.installer.template import kinds, new_config
from tests.support.paths import PROJECT_ROOT

CULVERT = """\
kind: culvert
device:
  id: culvert-1
  site: s1
mqtt:
  url: mqtt://10.0.0.2:1883
sensor:
  type: serial
  port: /dev/ttyUSB0
culvert:
  mount_height_mm: 2200
  thresholds:
    notice_cm: 10
    warning_cm: 15
    critical_cm: 25
"""
ELEVATOR = """\
kind: elevator
device:
  id: lift-1
  site: s1
elevator:
  camera:
    source: {kind: stream, url: "rtsp://10.0.0.20:554/stream1"}
  detector:
    model: models/ebike-detector.onnx
  zones:
    - name: car_floor
      polygon: [[0.05, 0.35], [0.95, 0.35], [0.95, 1.0]]
"""
SAMPLE_SITE = PROJECT_ROOT / "firmware_configs/sites/maple-gardens"


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


# (base, old text, new text, line, field path, words in the message)
B = tuple[str, str, str, int, str, list[str]]
BROKEN: list[B] = [
    (CULVERT, "  url: mqtt", "  ulr: mqtt", 6, "mqtt.ulr", ["unknown field (typo?) 'ulr'", "did you mean 'url'?"]),
    (CULVERT, "  port: /dev/ttyUSB0\n", "", 7, "sensor.port", ["key 'port' is missing", "Serial port"]),
    (CULVERT, "warning_cm: 15", "warning_cm: 8", 12, "culvert.thresholds", ["must rise", "warning_cm (8.0)"]),
    (CULVERT, "_mm: 2200", "_mm: 420", 11, "culvert.mount_height_mm", ["too low for warning_cm", "at least 450"]),
    (CULVERT, "_mm: 2200", "_mm: 250", 11, "culvert.mount_height_mm", ["greater than 300", "got 250"]),
    (CULVERT, "type: serial", "type: serail", 7, "sensor", ["'serail'", "'simulated', 'serial', 'replay'"]),
    (CULVERT, "id: culvert-1", "id: Culvert 1", 3, "device.id", ["should match pattern", "got 'Culvert 1'"]),
    (CULVERT, "url: mqtt://10.0.0.2:1883", "url: http://10.0.0.2", 6, "mqtt.url", ["must start with mqtt://"]),
    (ELEVATOR, "[0.95, 1.0]]", "[1.25, 1.0]]", 12, "elevator.zones[0].polygon", ["[1.25, 1.0] is outside 0..1"]),
    (ELEVATOR, "ebike-detector.onnx", "nothing.onnx", 9, "elevator.detector.model", ["does not exist"]),
    (ELEVATOR, "onnx", "onnx\n    input_size: 416", 10, "elevator.detector.input_size", ["takes 320x320 inputs"]),
    (ELEVATOR, "onnx", "onnx\n    labels: [person, ebike]", 8, "elevator.detector", ["scores 5 classes but 2"]),
    (ELEVATOR, "  zones:", "  ebike: {trigger_labels: [escooter]}\n  zones:", 10, "elevator.ebike.trigger_labels",
     ["['escooter'] are not labels of models/ebike-detector.onnx"]),
    (ELEVATOR, "  camera:", "  camra:", 6, "elevator.camra", ["did you mean 'camera'?"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("base", "old", "new", "line", "path", "words"), BROKEN, ids=[f"{b[4]}-{i}" for i, b in enumerate(BROKEN)]
)
def test_each_broken_config_is_found_at_its_line_with_a_fix(
    tmp_path: Path, base: str, old: str, new: str, line: int, path: str, words: list[str]
) -> None:
    config = tmp_path / "device.yaml"
    config.write_text(_edit(base, old, new))
    checked = check_file(config)
    errors = [f for f in checked.findings if f.severity == "error"]
    found = [f for f in errors if (f.line, f.path) == (line, path)]
    assert len(found) == 1, [f.render() for f in checked.findings]
    for word in words:
        assert word in found[0].message, found[0].render()
    others = [f.path for f in errors if f is not found[0]]
    assert others == (["elevator.camera"] if path == "elevator.camra" else []), others  # its own, missing


def test_every_mistake_in_every_file_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        _edit(_edit(CULVERT, "  url: mqtt", "  ulr: mqtt"), "mount_height_mm: 2200", "mount_height_mm: 420")
    )
    (tmp_path / "b.yaml").write_text(_edit(ELEVATOR, "[0.95, 1.0]]", "[1.25, 1.0]]"))
    (tmp_path / "c.yaml").write_text("kind: culvert\ndevice: {id: x, site: [s1\n")
    report = check_paths([tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"])
    found = {(Path(f.file).name, f.path) for f in report.errors}
    assert found == {
        ("a.yaml", "mqtt.ulr"),
        ("a.yaml", "culvert.mount_height_mm"),  # the desk's rule, though the mqtt section is broken
        ("b.yaml", "elevator.zones[0].polygon"),
        ("c.yaml", "<yaml>"),
    }
    assert not report.ok


def test_a_site_refuses_duplicate_ids_and_mqtt_identities(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.yaml").write_text(CULVERT)
    (site / "b.yaml").write_text(CULVERT.replace("port: /dev/ttyUSB0", "port: /dev/ttyUSB1"))  # same id
    other_site = _edit(_edit(CULVERT, "id: culvert-1", "id: b-c"), "site: s1", "site: a")
    clash = _edit(_edit(CULVERT, "id: culvert-1", "id: c"), "site: s1", "site: a-b")  # citywatch-a-b-c twice
    (site / "c.yaml").write_text(other_site)
    (site / "d.yaml").write_text(clash)
    user = _edit(
        _edit(ELEVATOR, "id: lift-1", "id: lift-2"), "elevator:", "mqtt: {username: shared}\nelevator:"
    )
    user2 = _edit(
        _edit(ELEVATOR, "id: lift-1", "id: lift-3"), "elevator:", "mqtt: {username: shared}\nelevator:"
    )
    (site / "e.yaml").write_text(user)
    (site / "f.yaml").write_text(user2)
    (site / "site.yaml").write_text(
        "site: s1\ndevices:\n" + "".join(f"  - config: {n}.yaml\n" for n in "abcdef") + "  - config: g.yaml\n"
    )
    report = check_paths([site])
    assert [f.message for f in report.errors] == [
        "g.yaml is not in " + str(site) + ": correct the name or add the file"
    ]
    (site / "site.yaml").write_text(
        "site: s1\ndevices:\n" + "".join(f"  - config: {n}.yaml\n" for n in "abcdef")
    )
    report = check_paths([site])
    messages = {(Path(f.file).name, f.path, f.message.split(" is also")[0]) for f in report.errors}
    assert ("a.yaml", "device.id", "device id culvert-1") in messages
    assert ("b.yaml", "device.id", "device id culvert-1") in messages
    assert ("c.yaml", "device.id", "MQTT client id citywatch-a-b-c") in messages
    assert ("d.yaml", "device.id", "MQTT client id citywatch-a-b-c") in messages
    assert ("e.yaml", "mqtt.username", "MQTT user shared") in messages
    assert ("f.yaml", "mqtt.username", "MQTT user shared") in messages
    site_mismatch = [f for f in report.errors if f.path == "device.site"]
    assert {Path(f.file).name for f in site_mismatch} == {"c.yaml", "d.yaml"}
    assert "set device.site to 's1'" in site_mismatch[0].message


def test_the_sample_site_passes_and_lists_every_device() -> None:
    report = check_paths([SAMPLE_SITE])
    assert report.ok, "\n".join(f.render() for f in report.findings)
    kinds_found = sorted(getattr(c.config, "kind", "") for c in report.files)
    assert kinds_found == ["culvert"] * 2 + ["elevator"] * 4 + ["facade"] + ["street"]
    assert report.findings == []  # not even a warning


@pytest.mark.parametrize("kind", kinds())
def test_config_new_writes_a_commented_config_that_passes_check(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}-9.yaml"
    path.write_text(new_config(kind, "maple-gardens", f"{kind}-9", path=str(path)))
    checked = check_file(path, CheckOptions())
    assert [f for f in checked.findings if f.severity == "error"] == []
    assert checked.config is not None and checked.config.device.id == f"{kind}-9"
    text = path.read_text()
    assert "# Device id. Unique per site" in text and "CHANGE ME" in text
    assert yaml.safe_load(text)["kind"] == kind


@pytest.mark.slow
def test_config_new_and_check_on_the_command_line(tmp_path: Path) -> None:
    target = tmp_path / "lift-z.yaml"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "citywatch.cli", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = run("config", "new", "--kind", "elevator", "--site", "s1", "--id", "lift-z", "-o", str(target))
    assert made.returncode == 0, made.stderr
    assert (
        run(
            "config", "new", "--kind", "elevator", "--site", "s1", "--id", "lift-z", "-o", str(target)
        ).returncode
        == 2
    )
    checked = run("config", "check", str(target), "--json")
    assert checked.returncode == 0, checked.stdout
    target.write_text(target.read_text().replace("score_threshold: 0.3", "score_treshold: 0.3"))
    checked = run("config", "check", str(target))
    assert checked.returncode == 2
    assert "did you mean 'score_threshold'?" in checked.stderr and f"{target}:" in checked.stderr
    assert run("config", "new", "--kind", "robot", "--site", "s1", "--id", "x").returncode == 2


def test_online_check_connects_to_the_camera_url(tmp_path: Path) -> None:
    import socket

    from citywatch.local_server import free_port

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        answering = listening.getsockname()[1]
        for port, expected in ((answering, []), (free_port(), ["elevator.camera.source.url"])):
            config = tmp_path / f"lift-{port}.yaml"
            config.write_text(_edit(ELEVATOR, "10.0.0.20:554", f"127.0.0.1:{port}"))
            assert [f.path for f in check_file(config).findings] == []  # not asked to connect
            online = check_file(config, CheckOptions(online=True, connect_timeout_s=2))
            assert [f.path for f in online.findings] == expected
            if expected:
                assert "does not answer" in online.findings[0].message
