"""Load and check a routing table; route an event to its department and SLA."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from citywatch.protocol.messages import Severity
from gateway.routing.models import (
    WILDCARD,
    Area,
    Department,
    RoutingTable,
    Rule,
    duplicates_message,
)


@dataclass(frozen=True, slots=True)
class Problem:
    path: str  # e.g. "rules[2].department"; "" for the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RoutingConfigError(ValueError):
    """Every mistake in a routing table, each with where it is."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the routing table:\n{lines}")


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where an event goes. ``department`` is None when it waits in the triage queue."""

    department: Department | None
    resolve_within: timedelta  # the SLA: the deadline is dispatched_at + this
    rule_id: str | None
    queue: str | None = None  # the triage queue's name when nothing matched

    @property
    def triage(self) -> bool:
        return self.department is None


def parse_routing(text: str, *, source: str = "<routing>") -> RoutingTable:
    """Parse YAML text; raises ``RoutingConfigError`` listing every problem found."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise RoutingConfigError(source, [Problem("", f"{where}not valid YAML ({error})")]) from None
    if not isinstance(data, dict):
        raise RoutingConfigError(
            source, [Problem("", "the routing table must be a mapping (departments, rules, ...)")]
        )
    try:
        return RoutingTable.model_validate(data, context={"department_ids": _declared_department_ids(data)})
    except ValidationError as error:
        problems = _duplicate_ids(data) + [_problem(detail) for detail in error.errors()]
        raise RoutingConfigError(source, list(dict.fromkeys(problems))) from None


def load_routing(path: Path | str) -> RoutingTable:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RoutingConfigError(
            str(path), [Problem("", f"cannot read the file: {error.strerror}")]
        ) from None
    return parse_routing(text, source=str(path))


def check_routing_file(path: Path | str) -> list[str]:
    """Every problem of a routing file as ``path: message`` lines; empty when it is valid (for a CLI)."""
    try:
        load_routing(path)
    except RoutingConfigError as error:
        return [str(problem) for problem in error.problems]
    return []


def route(
    table: RoutingTable,
    *,
    event_type: str,
    severity: Severity,
    site: str | None = None,
    grid: str | None = None,
    town: str | None = None,
) -> RouteDecision:
    """The first rule matching the type and area decides; nothing matching means triage."""
    for rule in table.rules:
        if _matches(rule, event_type=event_type, site=site, grid=grid, town=town):
            within = rule.sla.for_severity(severity) or table.default_sla.for_severity(severity)
            assert within is not None  # default_sla has every severity
            return RouteDecision(
                department=table.department(rule.department), resolve_within=within, rule_id=rule.id
            )
    return RouteDecision(
        department=None, resolve_within=table.triage.sla, rule_id=None, queue=table.triage.queue
    )


def _matches(rule: Rule, *, event_type: str, site: str | None, grid: str | None, town: str | None) -> bool:
    return event_type in rule.event_types and _area_matches(rule.area, site=site, grid=grid, town=town)


def _area_matches(area: Area, *, site: str | None, grid: str | None, town: str | None) -> bool:
    return all(
        pattern == WILDCARD or (value is not None and fnmatchcase(value, pattern))
        for pattern, value in ((area.site, site), (area.grid, grid), (area.town, town))
    )


def _declared_department_ids(data: dict[str, Any]) -> set[str]:
    departments = data.get("departments")
    if not isinstance(departments, list):
        return set()
    return {
        entry["id"] for entry in departments if isinstance(entry, dict) and isinstance(entry.get("id"), str)
    }


def _duplicate_ids(data: dict[str, Any]) -> list[Problem]:
    """Duplicates are checked on the raw lists too: pydantic skips list checks when an entry is invalid."""
    problems = []
    for field, what in (("departments", "department id"), ("rules", "rule id")):
        entries = data.get(field)
        if isinstance(entries, list):
            ids = [
                entry.get("id")
                for entry in entries
                if isinstance(entry, dict) and entry.get("id") is not None
            ]
            message = duplicates_message(ids, what=what)
            if message is not None:
                problems.append(Problem(field, message))
    return problems


def _problem(detail: Any) -> Problem:
    path = ""
    for part in detail["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part.startswith("list["):
            continue  # pydantic's names of validators and union branches, not places in the file
        else:
            path += f".{part}" if path else part
    message = detail["msg"].removeprefix("Value error, ")
    return Problem(path, message)
