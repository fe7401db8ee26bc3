"""Render events as CAP 1.2 alerts (OASIS) and a list of alerts as an Atom feed.

One event is a chain of messages: RAISED -> Alert, later changes -> Update, the end or a false
alarm -> Cancel. Every message has its own identifier (``{prefix}.{event_id}.{sequence}``) and
lists all earlier messages of the event in ``<references>``; ``<incidents>`` carries the event id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from lxml import etree

from gateway.cap.models import (
    CAP_MEDIA_TYPE,
    CAP_NAMESPACE,
    CAP_SEVERITY,
    CAP_URGENCY,
    CapChange,
    CapEventView,
    CapMessage,
    CapOptions,
    CapReference,
    cap_certainty,
    cap_time,
    is_cap_token,
    type_profile,
)

ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
IDENTIFIER_PREFIX = "citywatch"
_CAP = f"{{{CAP_NAMESPACE}}}"
_ATOM = f"{{{ATOM_NAMESPACE}}}"


def message_identifier(event_id: str, sequence: int) -> str:
    """Unique per message: the event id and the message's place in the event's chain."""
    identifier = f"{IDENTIFIER_PREFIX}.{event_id}.{sequence}"
    if not is_cap_token(identifier) or sequence < 0:
        raise ValueError(
            f"event id {event_id!r} cannot be part of a CAP identifier (no spaces, commas, '&', '<')"
        )
    return identifier


def render_alert(
    event: CapEventView,
    *,
    change: CapChange,
    sent: datetime,
    sequence: int,
    previous: Sequence[CapReference] = (),
    note: str | None = None,
    options: CapOptions | None = None,
) -> CapMessage:
    """One CAP 1.2 alert. ``previous``: the event's earlier messages (required for Update and Cancel)."""
    options = options or CapOptions()
    if change is not CapChange.RAISED and not previous:
        raise ValueError(f"a {change.msg_type} must reference the event's earlier messages; none were given")
    if change is CapChange.RAISED and previous:
        raise ValueError("the first message of an event (Alert) has nothing to reference")
    identifier = message_identifier(event.event_id, sequence)
    profile = type_profile(event.event_type)
    cancelled = change in (CapChange.ENDED, CapChange.FALSE_ALARM)
    headline = _headline(event, change, profile.event)

    alert = etree.Element(f"{_CAP}alert", nsmap={None: CAP_NAMESPACE})
    _sub(alert, "identifier", identifier)
    _sub(alert, "sender", options.sender)
    _sub(alert, "sent", cap_time(sent))
    _sub(alert, "status", options.status)
    _sub(alert, "msgType", change.msg_type)
    _sub(alert, "source", f"device {event.device_id}")
    _sub(alert, "scope", options.scope)
    if options.scope == "Restricted":
        _sub(alert, "restriction", options.restriction)
    _sub(alert, "code", "citywatch-v1")
    message_note = note or _default_note(change)
    if message_note:
        _sub(alert, "note", message_note)
    if previous:
        _sub(alert, "references", " ".join(str(reference) for reference in previous))
    _sub(alert, "incidents", _incident(event.event_id))

    info = etree.SubElement(alert, f"{_CAP}info")
    _sub(info, "language", options.language)
    for category in profile.categories:
        _sub(info, "category", category)
    _sub(info, "event", profile.event)
    _sub(
        info,
        "responseType",
        "AllClear" if change is CapChange.ENDED else "None" if cancelled else profile.response,
    )
    _sub(info, "urgency", "Past" if cancelled else CAP_URGENCY[event.severity])
    _sub(info, "severity", CAP_SEVERITY[event.severity])
    _sub(
        info, "certainty", "Unlikely" if change is CapChange.FALSE_ALARM else cap_certainty(event.confidence)
    )
    code = etree.SubElement(info, f"{_CAP}eventCode")
    _sub(code, "valueName", "citywatch")
    _sub(code, "value", event.event_type)
    _sub(info, "effective", cap_time(sent))
    _sub(info, "onset", cap_time(event.started_at))
    if options.expires_after is not None:
        _sub(info, "expires", cap_time(sent + options.expires_after))
    _sub(info, "senderName", options.sender_name)
    _sub(info, "headline", headline)
    _sub(info, "description", _description(event))  # plain text; lxml escapes it
    if not cancelled:
        _sub(info, "instruction", profile.instruction)
    _sub(info, "web", f"{options.web_base_url.rstrip('/')}/events/{event.event_id}")
    for name, value in _parameters(event):
        parameter = etree.SubElement(info, f"{_CAP}parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    area = etree.SubElement(info, f"{_CAP}area")
    _sub(area, "areaDesc", event.area_description or _area_description(event))
    if event.circle is not None:
        _sub(area, "circle", str(event.circle))
    geocodes = {"citywatch:site": event.site, "citywatch:grid": event.grid, "citywatch:town": event.town}
    for name, place in geocodes.items():
        if place:
            geocode = etree.SubElement(area, f"{_CAP}geocode")
            _sub(geocode, "valueName", name)
            _sub(geocode, "value", place)

    xml = etree.tostring(alert, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return CapMessage(
        identifier=identifier,
        sender=options.sender,
        sent=sent.replace(microsecond=0),
        msg_type=change.msg_type,
        headline=headline,
        xml=xml,
    )


def render_feed(
    messages: Sequence[CapMessage],
    *,
    title: str = "citywatch alerts",
    feed_url: str = "http://127.0.0.1:8080/cap/feed.atom",
    updated: datetime | None = None,
) -> bytes:
    """An Atom feed with each CAP alert inline (newest first), as CAP aggregators read it."""
    ordered = sorted(messages, key=lambda message: message.sent, reverse=True)
    feed = etree.Element(f"{_ATOM}feed", nsmap={None: ATOM_NAMESPACE})
    _atom(feed, "id", feed_url)
    _atom(feed, "title", title)
    newest = updated or (ordered[0].sent if ordered else None)
    if newest is None:
        raise ValueError("an empty feed needs an explicit 'updated' time")
    _atom(feed, "updated", cap_time(newest))
    author = etree.SubElement(feed, f"{_ATOM}author")
    _atom(author, "name", ordered[0].sender if ordered else "citywatch")
    etree.SubElement(feed, f"{_ATOM}link", rel="self", href=feed_url)
    for message in ordered:
        entry = etree.SubElement(feed, f"{_ATOM}entry")
        _atom(entry, "id", f"urn:citywatch:cap:{message.identifier}")
        _atom(entry, "title", f"{message.msg_type}: {message.headline}")
        _atom(entry, "updated", cap_time(message.sent))
        content = etree.SubElement(entry, f"{_ATOM}content", type=CAP_MEDIA_TYPE)
        content.append(etree.fromstring(message.xml))
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _sub(parent: Any, name: str, text: str) -> None:
    etree.SubElement(parent, f"{_CAP}{name}").text = text


def _atom(parent: Any, name: str, text: str) -> None:
    etree.SubElement(parent, f"{_ATOM}{name}").text = text


def _incident(event_id: str) -> str:
    return f"{IDENTIFIER_PREFIX}.{event_id}"


def _headline(event: CapEventView, change: CapChange, subject: str) -> str:
    where = event.area_description or event.site
    prefix = {CapChange.ENDED: "Ended: ", CapChange.FALSE_ALARM: "False alarm: "}.get(change, "")
    return f"{prefix}{subject} — {where}"[:160]  # CAP advises headlines under 160 characters


def _default_note(change: CapChange) -> str | None:
    if change is CapChange.ENDED:
        return "The device reports the condition over."
    if change is CapChange.FALSE_ALARM:
        return "Withdrawn as a false alarm."
    return None


def _description(event: CapEventView) -> str:
    parts = [
        f"{type_profile(event.event_type).event} reported by device {event.device_id} at site {event.site}",
        f"severity {event.severity.value}, work item {event.state}",
    ]
    if event.department:
        parts.append(f"handled by {event.department}")
    if event.count > 1:
        parts.append(f"reported {event.count} times")
    return "; ".join(parts) + "."


def _area_description(event: CapEventView) -> str:
    names = [name for name in (event.town, event.grid, event.site) if name]
    return " / ".join(names) + f" (device {event.device_id})"


def _parameters(event: CapEventView) -> list[tuple[str, str]]:
    parameters = [
        ("citywatch:severity", event.severity.value),
        ("citywatch:state", event.state),
        ("citywatch:device", event.device_id),
        ("citywatch:reports", str(event.count)),
        ("citywatch:condition", "active" if event.condition_active else "cleared"),
        ("citywatch:updated", cap_time(event.updated_at)),
    ]
    if event.confidence is not None:
        parameters.append(("citywatch:confidence", f"{event.confidence:.2f}"))
    parameters += [(f"citywatch:{name}", _text(value)) for name, value in sorted(event.details.items())]
    return parameters


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return cap_time(value)
    return str(value)
