"""The InfluxDB store's write path against a real victoria-metrics (InfluxDB v2 write API).

Outages are real: the server process is stopped and started again on the same port and data path;
a gateway crash is a real SIGKILL of a process holding a store.
"""

from __future__ import annotations

import gzip
import http.server
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from influxdb_client import Point, WritePrecision

from citywatch.bench.victoria import SampleKey, VictoriaMetrics
from citywatch.broker.mosquitto import free_port
from gateway.telemetry.base import TelemetryPoint
from gateway.telemetry.influx import (
    InfluxOptions,
    InfluxRejectedError,
    InfluxTelemetryStore,
    to_line_protocol,
)
from tests.support.paths import PROJECT_ROOT
from tests.support.polling import wait_until
from tests.support.victoria import victoria_metrics_server

SITE = "riverside"


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    yield from victoria_metrics_server(tmp_path / "vm")


def recent_base() -> datetime:
    """A recent start time: victoria-metrics refuses samples older than its retention."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def make_points(
    count: int, *, device_id: str = "culvert-01", first: int = 0, base: datetime | None = None
) -> list[TelemetryPoint]:
    """Water-level samples one second apart."""
    base = base or recent_base()
    return [
        TelemetryPoint(
            site=SITE,
            device_id=device_id,
            measurement="water_level",
            ts=base + timedelta(seconds=first + i, milliseconds=7),
            fields={"level_cm": 10.0 + (first + i) % 50 / 4, "raw_mm": 900 + (first + i) % 7},
            tags={"sensor": "a02yyuw"},
        )
        for i in range(count)
    ]


def expected_keys(points: list[TelemetryPoint]) -> set[SampleKey]:
    """How victoria-metrics stores each field of each point: series ``{measurement}_{field}``."""
    keys: set[SampleKey] = set()
    for point in points:
        labels = {"device_id": point.device_id, "site": point.site, **point.tags}
        for field_name in point.fields:
            series = frozenset({**labels, "__name__": f"{point.measurement}_{field_name}"}.items())
            keys.add((series, round(point.ts.timestamp() * 1000)))
    return keys


def options_for(url: str, spill_dir: Path, **overrides: object) -> InfluxOptions:
    options = InfluxOptions(
        url=url,
        token="test-token",
        org="citywatch",
        bucket="telemetry",
        spill_dir=spill_dir,
        batch_size=50,
        timeout_s=2.0,
        max_retries=2,
        retry_backoff_s=0.01,
        replay_interval_s=0.2,
    )
    return replace(options, **overrides)  # type: ignore[arg-type]


def spill_files(spill_dir: Path) -> list[Path]:
    return sorted(spill_dir.glob("*.lp"))


def test_every_point_written_arrives_once(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    points = make_points(420)
    store = InfluxTelemetryStore(options_for(victoria.url, tmp_path / "spill"))
    for start in range(0, len(points), 100):
        store.write(points[start : start + 100])
    store.write(points[:100])  # a QoS 1 redelivery: the same points again
    store.close()

    assert victoria.sample_keys() == expected_keys(points)
    assert store.spilled_points() == 0
    assert spill_files(tmp_path / "spill") == []


def test_outage_mid_stream_spills_then_replays_everything(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    spill_dir = tmp_path / "spill"
    points = make_points(600)
    store = InfluxTelemetryStore(options_for(victoria.url, spill_dir))
    store.write(points[:200])

    victoria.stop()
    for start in range(200, 500, 60):
        store.write(points[start : start + 60])  # returns: the points are fsynced in the spill
    assert store.spilling
    assert store.spilled_points() == 300
    assert len(spill_files(spill_dir)) >= 6

    victoria.start()
    wait_until(lambda: not store.spilling, what="the spill to be replayed")
    store.write(points[500:])
    store.close()

    assert spill_files(spill_dir) == []
    assert victoria.sample_keys() == expected_keys(points)


def test_a_full_spill_drops_new_telemetry_counted_and_keeps_what_it_holds(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    """The spill is bounded so an outage cannot fill the disk: beyond the bound new points are dropped,
    counted and logged; what was spilled still arrives once InfluxDB is back."""
    spill_dir = tmp_path / "spill"
    points = make_points(400)
    batch_bytes = len(to_line_protocol(points[0]).encode()) * 50  # about one batch of 50
    store = InfluxTelemetryStore(options_for(victoria.url, spill_dir, spill_max_bytes=3 * batch_bytes))
    victoria.stop()
    for start in range(0, 300, 50):
        store.write(points[start : start + 50])
    kept = store.spilled_points()
    assert 100 <= kept < 300 and store.spilled_bytes() <= 3 * batch_bytes
    assert store.dropped_points() == 300 - kept

    victoria.start()
    wait_until(lambda: not store.spilling, what="the spill to be replayed")
    assert store.spilled_bytes() == 0
    store.write(points[300:])  # room again: written directly
    store.close()

    assert victoria.sample_keys() == expected_keys(points[:kept] + points[300:])


@pytest.mark.slow
def test_a_hung_server_times_out_into_the_spill(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    """A server that accepts connections but never answers (SIGSTOP) is a timeout, then a spill."""
    spill_dir = tmp_path / "spill"
    points = make_points(90)
    store = InfluxTelemetryStore(options_for(victoria.url, spill_dir, timeout_s=0.3, max_retries=1))
    store.write(points[:30])
    victoria.pause()
    try:
        store.write(points[30:])
        assert store.spilling
        assert store.spilled_points() == 60
    finally:
        victoria.resume()
    wait_until(lambda: not store.spilling, what="the replay once the server answers again")
    store.close()

    assert spill_files(spill_dir) == []
    assert victoria.sample_keys() == expected_keys(points)


@pytest.mark.slow
def test_gateway_crash_between_spill_and_replay(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    """A gateway killed with points in the spill: the next store on that directory replays them."""
    spill_dir = tmp_path / "spill"
    base = recent_base()
    points = make_points(150, device_id="culvert-07", base=base)
    dead_url = f"http://127.0.0.1:{free_port()}"  # InfluxDB is away while the gateway runs
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import datetime
        from pathlib import Path
        from tests.gateway.telemetry.test_influx import make_points, options_for
        from gateway.telemetry.influx import InfluxTelemetryStore
        store = InfluxTelemetryStore(options_for({dead_url!r}, Path({str(spill_dir)!r}), replay_interval_s=60))
        points = make_points(150, device_id="culvert-07", base=datetime.fromisoformat({base.isoformat()!r}))
        store.write(points[:100])
        store.write(points[100:])
        print("written", flush=True)
        sys.stdin.read()  # hold on until killed
        """
    )
    gateway = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=PROJECT_ROOT,
    )
    try:
        assert gateway.stdout is not None
        assert gateway.stdout.readline().strip() == b"written"
    finally:
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(timeout=10)
    (spill_dir / "000000000099-5.lp.tmp").write_bytes(b"half a batch cut off by the cr")
    assert sum(int(path.stem.split("-")[1]) for path in spill_files(spill_dir)) == 150

    store = InfluxTelemetryStore(options_for(victoria.url, spill_dir))
    wait_until(lambda: not store.spilling, what="the crashed gateway's spill to be replayed")
    store.close()

    assert list(spill_dir.glob("*.lp*")) == []
    assert victoria.sample_keys() == expected_keys(points)


def test_close_flushes_the_spill(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    spill_dir = tmp_path / "spill"
    points = make_points(120)
    victoria.stop()
    store = InfluxTelemetryStore(options_for(victoria.url, spill_dir, replay_interval_s=3600))
    store.write(points)
    assert store.spilled_points() == 120

    victoria.start()
    store.close()  # the background replay would wait an hour: close() itself must flush

    assert spill_files(spill_dir) == []
    assert victoria.sample_keys() == expected_keys(points)


def test_close_while_influx_is_down_keeps_the_spill_for_the_next_start(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    points = make_points(80)
    victoria.stop()
    store = InfluxTelemetryStore(options_for(victoria.url, spill_dir))
    store.write(points)
    store.close()
    assert sum(1 for _ in spill_files(spill_dir)) == 2  # batch_size 50: two fsynced batches
    with pytest.raises(RuntimeError, match="closed"):
        store.write(points)

    victoria.start()
    reopened = InfluxTelemetryStore(options_for(victoria.url, spill_dir))
    reopened.close()

    assert spill_files(spill_dir) == []
    assert victoria.sample_keys() == expected_keys(points)


# -- failure answers from a real HTTP server on loopback ----------------------------------------


@dataclass
class ScriptedInflux:
    """An HTTP server on loopback answering every write with ``status`` (204 = taken)."""

    status: int = 204
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    refuse_lines_with: bytes | None = None  # answer 400 to a write holding such a line
    writes: int = 0
    accepted_lines: list[bytes] = field(default_factory=list)

    def serve(self) -> tuple[http.server.ThreadingHTTPServer, str]:
        scripted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                scripted.writes += 1
                status = scripted.status
                if status == 204 and scripted.refuse_lines_with and scripted.refuse_lines_with in body:
                    status = 400
                if status == 204:
                    scripted.accepted_lines.extend(body.splitlines())
                self.send_response(status)
                for name, value in scripted.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(scripted.body)))
                self.end_headers()
                self.wfile.write(scripted.body)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedInflux, str]]:
    answers = ScriptedInflux()
    server, url = answers.serve()
    yield answers, url
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "headers"), [(503, (("Retry-After", "0"),)), (500, ()), (401, ())], ids=["503", "500", "401"]
)
def test_server_errors_are_retried_then_spilled_then_replayed(
    scripted: tuple[ScriptedInflux, str], tmp_path: Path, status: int, headers: tuple[tuple[str, str], ...]
) -> None:
    answers, url = scripted
    answers.status, answers.headers = status, headers
    answers.body = json.dumps({"code": "unavailable", "message": "try later"}).encode()
    spill_dir = tmp_path / "spill"
    store = InfluxTelemetryStore(options_for(url, spill_dir, replay_interval_s=0.05))

    store.write(make_points(30))
    assert answers.writes == 3  # the first attempt and max_retries=2 retries
    assert store.spilling and store.spilled_points() == 30

    answers.status, answers.headers = 204, ()
    wait_until(lambda: not store.spilling, what="the replay once the server answers 204")
    store.close()
    assert spill_files(spill_dir) == []


def test_an_http_date_retry_after_paces_the_retries(
    scripted: tuple[ScriptedInflux, str], tmp_path: Path
) -> None:
    """InfluxDB (or a proxy in front of it) may answer 429/503 with a date: the retry waits for it."""
    answers, url = scripted
    retry_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)  # 1 to 2 s from now
    answers.status, answers.headers = 503, (("Retry-After", format_datetime(retry_at, usegmt=True)),)
    store = InfluxTelemetryStore(options_for(url, tmp_path / "spill", max_retries=1))

    started = time.monotonic()
    store.write(make_points(5))
    waited = time.monotonic() - started
    store.close()

    assert answers.writes >= 2 and store.spilled_points() == 5  # then the spill's replay tries too
    assert waited >= 0.9  # the date, not the 0.01 s backoff


def test_malformed_batch_is_refused_with_the_reason_and_kept(
    scripted: tuple[ScriptedInflux, str], tmp_path: Path
) -> None:
    answers, url = scripted
    answers.status = 400
    answers.body = json.dumps(
        {"code": "invalid", "message": "partial write: field type conflict: level_cm is type float"}
    ).encode()
    spill_dir = tmp_path / "spill"
    store = InfluxTelemetryStore(options_for(url, spill_dir))

    with pytest.raises(InfluxRejectedError, match="field type conflict"):
        store.write(make_points(10))
    store.close()

    assert answers.writes == 1  # malformed data is not retried
    assert spill_files(spill_dir) == []
    [kept] = store.rejected_batches()
    assert len(kept.read_bytes().splitlines()) == 10
    assert "field type conflict" in kept.with_suffix(".error.txt").read_text()


@pytest.mark.slow
def test_a_malformed_batch_in_the_spill_is_set_aside_and_the_others_replayed(
    scripted: tuple[ScriptedInflux, str], tmp_path: Path
) -> None:
    answers, url = scripted
    answers.status = 503
    spill_dir = tmp_path / "spill"
    store = InfluxTelemetryStore(options_for(url, spill_dir, replay_interval_s=0.05))
    good_before, good_after = make_points(20), make_points(20, first=100)
    poisoned = make_points(5, device_id="poisoned", first=50)
    for batch in (good_before, poisoned, good_after):
        store.write(batch)
    assert len(spill_files(spill_dir)) == 3

    answers.status, answers.refuse_lines_with = 204, b"device_id=poisoned"
    wait_until(lambda: not store.spilling, what="the replay around the malformed batch")
    store.close()

    assert answers.accepted_lines == [to_line_protocol(p).encode() for p in good_before + good_after]
    [kept] = store.rejected_batches()
    assert kept.read_bytes().splitlines() == [to_line_protocol(p).encode() for p in poisoned]
    assert "HTTP 400" in kept.with_suffix(".error.txt").read_text()


# -- the schema ---------------------------------------------------------------------------------


def test_line_protocol_schema() -> None:
    point = TelemetryPoint(
        site="old town",
        device_id="culvert-01",
        measurement="health",
        ts=datetime(2026, 6, 1, 8, 30, 0, 250000, tzinfo=UTC),
        fields={"uptime_s": 3600, "cpu_temp_c": 51.5, "on_battery": False, "noise": float("nan")},
        tags={"site": "spoofed", "firmware": "1.2,beta"},
    )
    line = to_line_protocol(point)
    # numbers are floats (no ``i`` suffix), NaN is dropped, the point's own site and device win
    assert line == (
        r"health,device_id=culvert-01,firmware=1.2\,beta,site=old\ town "
        "cpu_temp_c=51.5,on_battery=false,uptime_s=3600 1780302600250"
    )
    assert to_line_protocol(replace(point, fields={"noise": float("inf")})) == ""


@pytest.mark.parametrize(
    ("tags", "fields"),
    [
        ({"zone": "north gate", "note": "a,b=c"}, {"level_cm": 12, "raw_mm": 1234.5}),
        ({"path": "C:\\dir\\", "tab": "a\tb", "nl": "x\ny"}, {"big": 10**20, "tiny": 1e-7, "neg": -0.0}),
        ({"empty": "", "unicode": "水位"}, {"flag": True, "off": False, "inf": float("-inf"), "x": 3.0}),
    ],
    ids=["spaces-commas", "backslash-controls-numbers", "empty-unicode-bools"],
)
def test_line_protocol_matches_the_client_library(tags: dict[str, str], fields: dict[str, float]) -> None:
    """The store's own fast serializer writes exactly what ``influxdb_client.Point`` would."""
    point = TelemetryPoint(
        site="old town, east",
        device_id="culvert=01",
        measurement="water level,x",
        ts=datetime(2026, 6, 1, 8, 30, 0, 250000, tzinfo=UTC),
        fields=fields,
        tags=tags,
    )
    reference = Point(point.measurement).tag("device_id", point.device_id).tag("site", point.site)
    for key, tag in tags.items():
        reference.tag(key, tag)
    for key, value in fields.items():
        reference.field(key, value if isinstance(value, bool) else float(value))
    expected = reference.time(1780302600250, WritePrecision.MS).to_line_protocol()
    assert to_line_protocol(point) == expected


def test_options_explain_mistakes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        options_for("http://127.0.0.1:1", tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="spill_max_bytes cannot be negative"):
        options_for("http://127.0.0.1:1", tmp_path, spill_max_bytes=-1)
