"""A real victoria-metrics for the InfluxDB store's tests (it speaks the InfluxDB v2 write API).

Test modules wrap ``victoria_metrics_server`` in a fixture; it skips with the reason when the
binary is missing (``.ci/run`` installs it with apt).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.bench.victoria import VictoriaMetrics, victoria_metrics_binary


def victoria_metrics_server(data_dir: Path) -> Iterator[VictoriaMetrics]:
    if victoria_metrics_binary() is None:
        pytest.skip("victoria-metrics is not installed (.ci/run installs it with apt)")
    server = VictoriaMetrics(data_dir=data_dir).start()
    try:
        yield server
    finally:
        server.stop()
