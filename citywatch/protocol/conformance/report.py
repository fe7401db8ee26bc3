"""The kit's output: one line per finding as it happens, a summary at the end, an exit status.

Text for people; ``--json`` writes JSON Lines instead: ``{"kind": "finding", ...}`` per finding and
one ``{"kind": "summary", ...}`` last.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field

from citywatch.protocol.conformance.findings import RULE_BY_ID, Finding, Level

EXIT_CONFORMS = 0
EXIT_DEVIATES = 1
EXIT_USAGE = 2  # bad options, or the broker could not be reached


class Summary(BaseModel):
    """The watch at a glance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: str = Field(title="Topics watched", description="e.g. citywatch/v1/site-1/culvert-01/#")
    duration_s: float = Field(ge=0, title="Watched for", description="Seconds.")
    messages: int = Field(ge=0, title="Messages judged")
    devices: list[str] = Field(title="Devices seen")
    by_channel: dict[str, int] = Field(title="Messages per channel")
    errors: int = Field(ge=0)
    warnings: int = Field(ge=0)
    infos: int = Field(ge=0)
    by_rule: dict[str, int] = Field(title="Findings per rule id")
    exit_status: int = Field(title="Exit status", description="0: no error; 1: an error.")


class Report:
    """Writes findings as they come and counts them."""

    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.by_rule: Counter[str] = Counter()
        self.by_level: Counter[Level] = Counter()

    def write(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.by_rule[finding.rule] += 1
            self.by_level[finding.severity] += 1
            if self.as_json:
                self.out.write(json.dumps({"kind": "finding", **finding.model_dump(mode="json")}) + "\n")
            else:
                self.out.write(finding.line() + "\n")
        self.out.flush()

    @property
    def exit_status(self) -> int:
        return EXIT_DEVIATES if self.by_level[Level.ERROR] else EXIT_CONFORMS

    def summary(
        self, *, scope: str, duration_s: float, messages: int, devices: list[str], by_channel: dict[str, int]
    ) -> Summary:
        return Summary(
            scope=scope,
            duration_s=round(duration_s, 3),
            messages=messages,
            devices=devices,
            by_channel=dict(sorted(by_channel.items())),
            errors=self.by_level[Level.ERROR],
            warnings=self.by_level[Level.WARNING],
            infos=self.by_level[Level.INFO],
            by_rule=dict(sorted(self.by_rule.items())),
            exit_status=self.exit_status,
        )

    def write_summary(self, summary: Summary) -> None:
        if self.as_json:
            self.out.write(json.dumps({"kind": "summary", **summary.model_dump(mode="json")}) + "\n")
        else:
            self.out.write(render_summary(summary))
        self.out.flush()


def render_summary(summary: Summary) -> str:
    channels = ", ".join(f"{name} {count}" for name, count in summary.by_channel.items()) or "none"
    lines = [
        "",
        f"checked {summary.messages} messages under {summary.scope} in {summary.duration_s:.1f} s "
        f"from {len(summary.devices)} device(s) ({channels})",
        f"{summary.errors} error(s), {summary.warnings} warning(s), {summary.infos} info",
    ]
    for rule_id, count in sorted(summary.by_rule.items(), key=lambda item: (_rank(item[0]), item[0])):
        rule = RULE_BY_ID.get(rule_id)
        level = rule.level.value if rule else "?"
        lines.append(f"  {level:<7} {rule_id:<28} {count:>6}  {rule.summary if rule else ''}")
    verdict = "conforms" if summary.exit_status == EXIT_CONFORMS else "deviates from docs/protocol.md"
    lines.append(f"result: {verdict} (exit {summary.exit_status})")
    return "\n".join(lines) + "\n"


def _rank(rule_id: str) -> int:
    rule = RULE_BY_ID.get(rule_id)
    return list(Level).index(rule.level) if rule else len(Level)
