"""``citywatch gateway routing check FILE`` as the integrator will register it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.routing import cli
from tests.support.paths import ROUTING_EXAMPLE

EXAMPLE = ROUTING_EXAMPLE


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="citywatch gateway")
    cli.register(parser.add_subparsers(dest="gateway_command"))
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


def test_check_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("routing", "check", str(EXAMPLE)) == 0
    out = capsys.readouterr().out
    assert "ok (6 departments, 7 rules" in out and "'triage'" in out


def test_check_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "routing.yaml"
    broken.write_text(
        "departments: [{id: roads, name: Roads}]\n"
        "rules: [{id: r1, event_types: [water_level], department: ghost}]\n"
        "default_sla: {critical: 1h, warning: 2h, notice: 1d}\n"
    )
    assert _run("routing", "check", str(broken)) == 1
    out = capsys.readouterr().out
    assert "2 problem(s)" in out
    assert "rules[0].department: unknown department 'ghost'" in out
    assert "default_sla.info: Field required" in out
