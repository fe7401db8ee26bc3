"""Field types of what the API takes in, where pydantic alone would take more than the schema says.

Text the API takes from people and stores for others to read: names and notes, without control
characters. A name (a grid, a town, a department, a token's holder) is one line: no C0 or C1 control character,
no DEL, no line or paragraph separator. They would forge log lines and audit entries, break CSV and
terminal output, and make two names that look the same differ. A note is prose and keeps its line
breaks and tabs, nothing else of that kind. ``Name(64)`` / ``Note(2000)`` are pydantic annotations:
the OpenAPI schema declares the rule as a ``pattern`` (so clients and fuzzers see it) and a refusal
says which character, and where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

# C0, DEL and C1 (Unicode category Cc), and the line and paragraph separators (Zl, Zp).
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_NOTE_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # as _CONTROL, less tab, LF, CR and the separators
NAME_PATTERN = f"^[^{_CONTROL}]*$"
NOTE_PATTERN = f"^[^{_NOTE_CONTROL}]*$"
_IN_NAME = re.compile(f"[{_CONTROL}]")
_IN_NOTE = re.compile(f"[{_NOTE_CONTROL}]")


def check_name(value: str, *, what: str = "a name") -> str:
    """``value`` when it has no control character; else ValueError naming the first one and its position."""
    return _refuse(_IN_NAME, value, rule=f"{what} may not contain control characters")


def check_note(value: str, *, what: str = "a note") -> str:
    """As ``check_name``, but line breaks (LF, CR) and tabs pass."""
    return _refuse(
        _IN_NOTE, value, rule=f"{what} may have line breaks and tabs but no other control character"
    )


def _refuse(control: re.Pattern[str], value: str, *, rule: str) -> str:
    found = control.search(value)
    if found is not None:
        raise ValueError(f"{rule}: U+{ord(found.group()):04X} at position {found.start()}")
    return value


@dataclass(frozen=True, slots=True)
class _Text:
    max_length: int
    min_length: int = 0

    pattern = NAME_PATTERN

    def check(self, value: str) -> str:
        return check_name(value)

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # The lengths and the pattern in one string schema (the schema shows all three, a too long
        # value is told so in characters); the check runs first, to say what is wrong in words.
        text = core_schema.str_schema(
            min_length=self.min_length or None, max_length=self.max_length, pattern=self.pattern
        )
        return core_schema.no_info_before_validator_function(self._check_text, text)

    def _check_text(self, value: object) -> object:
        return self.check(value) if isinstance(value, str) else value


class Name(_Text):
    """One line of text, e.g. ``grid: Annotated[str, Name(64)] | None``."""


class Note(_Text):
    """Prose: line breaks and tabs allowed, no other control character."""

    pattern = NOTE_PATTERN

    def check(self, value: str) -> str:
        return check_note(value)


def _json_number(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number, not a string or a boolean")
    return value


@dataclass(frozen=True, slots=True)
class JsonInteger:
    """An integer in a JSON body as JSON Schema has it: 30 and 30.0, not "30" or true (pydantic's lax
    int takes those, its strict int refuses 30.0). ``Annotated[int, JsonInteger(ge=1, le=5)]``."""

    ge: int | None = None
    le: int | None = None

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # The bounds inside the integer schema: outside the validator they would not reach the JSON schema.
        return core_schema.no_info_before_validator_function(
            _json_number, core_schema.int_schema(ge=self.ge, le=self.le)
        )
