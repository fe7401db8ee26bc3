"""gateway/fields.py: names refuse every control character, notes keep line breaks and tabs, and the
pattern the OpenAPI schema shows refuses exactly what the check refuses."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError

from gateway.fields import NAME_PATTERN, NOTE_PATTERN, JsonInteger, Name, Note, check_name, check_note

C0 = [chr(c) for c in range(0x00, 0x20)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
SEPARATORS = ["\u2028", "\u2029"]  # line and paragraph separator: a new line in most viewers
CONTROLS = [*C0, "\x7f", *C1, *SEPARATORS]
LINE_BREAKS_AND_TAB = ["\t", "\n", "\r"]


class Labelled(BaseModel):
    name: Annotated[str, Name(8, min_length=1)]
    note: Annotated[str, Note(20)] = ""
    count: Annotated[int, JsonInteger(ge=1, le=5)] | None = None


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_name_refuses_every_control_character_and_says_which(control: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Labelled(name=f"ab{control}c")
    (error,) = refused.value.errors()
    assert error["loc"] == ("name",)
    assert f"may not contain control characters: U+{ord(control):04X} at position 2" in error["msg"]


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_note_refuses_control_characters_other_than_line_breaks_and_tabs(control: str) -> None:
    if control in LINE_BREAKS_AND_TAB + SEPARATORS:
        assert Labelled(name="a", note=f"one{control}two").note == f"one{control}two"
    else:
        with pytest.raises(ValidationError, match=f"U\\+{ord(control):04X}"):
            Labelled(name="a", note=f"one{control}two")


def test_the_schema_pattern_refuses_exactly_what_the_check_refuses() -> None:
    """Clients and fuzzers read the pattern; the app runs the check: they must not disagree anywhere
    in the Basic Multilingual Plane (surrogates aside, which no str in JSON holds alone)."""
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        text = f"x{chr(code)}"
        for pattern, check in ((NAME_PATTERN, check_name), (NOTE_PATTERN, check_note)):
            try:
                check(text)
                checked = True
            except ValueError:
                checked = False
            assert (re.fullmatch(pattern, text) is not None) == checked, (hex(code), pattern)
    # What the name pattern refuses is Unicode's control category and the two separators, nothing else.
    refused = {chr(c) for c in range(0x10000) if not re.fullmatch(NAME_PATTERN, chr(c))}
    assert refused == {c for c in map(chr, range(0x10000)) if unicodedata.category(c) in ("Cc", "Zl", "Zp")}


def test_the_schema_shows_the_rule_and_the_lengths() -> None:
    properties = Labelled.model_json_schema()["properties"]
    assert properties["name"] == {
        "maxLength": 8,
        "minLength": 1,
        "pattern": NAME_PATTERN,
        "title": "Name",
        "type": "string",
    }
    assert properties["note"]["pattern"] == NOTE_PATTERN
    assert properties["count"]["anyOf"][0] == {"maximum": 5, "minimum": 1, "type": "integer"}


def test_names_that_are_text_pass_and_lengths_are_told_in_characters() -> None:
    assert Labelled(name="Zoë 东区", note="rain\n\tstill").name == "Zoë 东区"
    with pytest.raises(ValidationError, match="at most 8 characters"):
        Labelled(name="x" * 9)


@pytest.mark.parametrize(
    ("value", "taken"), [(3, 3), (3.0, 3), (True, None), ("3", None), (3.5, None), (6, None)]
)
def test_a_json_integer_is_a_number_as_json_schema_has_it(value: object, taken: int | None) -> None:
    if taken is None:
        with pytest.raises(ValidationError):
            Labelled(name="a", count=value)
    else:
        assert Labelled(name="a", count=value).count == taken
