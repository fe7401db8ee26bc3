"""The write benchmark runs end to end on a small scale and proves zero loss (speed is not tested)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywatch.bench.influx import bench_influx_sustained, bench_influx_write
from citywatch.bench.victoria import victoria_metrics_binary


@pytest.mark.slow
def test_bench_reads_every_point_back(tmp_path: Path) -> None:
    if victoria_metrics_binary() is None:
        pytest.skip("victoria-metrics is not installed (.ci/run installs it with apt)")
    results = bench_influx_write(1500, call_points=200, batch_size=500, work_dir=tmp_path)

    for run in ("store", "reference_influxdb_client", "reference_raw_http_prebuilt"):
        assert results[run]["stored"] == 1500, run
        assert results[run]["lost"] == 0, run
        assert results[run]["points_per_s"] > 0, run
    assert results["store"]["spilled"] == 0
    outage = results["outage"]
    assert outage["spilled"] == outage["n_points"] == 2000  # four batches, all through the disk spill
    assert outage["stored"] == 2000 and outage["lost"] == 0
    assert list(tmp_path.iterdir()) == []  # its server and spill lived in a temporary directory


@pytest.mark.slow
def test_sustained_bench_reads_every_point_back(tmp_path: Path) -> None:
    if victoria_metrics_binary() is None:
        pytest.skip("victoria-metrics is not installed (.ci/run installs it with apt)")
    results = bench_influx_sustained(2000, 0.5, call_points=100, work_dir=tmp_path)

    assert results["stored"] == 1000 and results["lost"] == 0 and results["spilled"] == 0
    assert results["write_calls"] == 10
    assert results["write_ms_p50"] <= results["write_ms_p99"] <= results["write_ms_max"]


def test_bench_refuses_an_empty_run() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        bench_influx_write(0)
    with pytest.raises(ValueError, match="must be positive"):
        bench_influx_sustained(0)
