"""Render events as CAP 1.2 alerts (OASIS) and a list of alerts as an Atom feed.

One event is a chain of messages: RAISED -> Alert, later changes -> Update, the end or a false
alarm -> Cancel. Every message has its own identifier (``{prefix}.{event_id}.{event_uid}.{sequence}``:
the random event uid keeps it unique when the database is rebuilt and ids start again) and lists the
earlier messages of its chain in ``<references>``; ``<incidents>`` names the event. An event that comes
back after its Cancel starts a new chain: an Alert whose ``<references>`` list the ended chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from citywatch.protocol.messages import PERSONAL_DETAIL_FIELDS, EventType
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


ALERTS_PATH = "/cap/alerts"  # each stored message at {public URL}/cap/alerts/{identifier}
FEED_PATH = "/cap/feed"


def incident_identifier(event_id: str, event_uid: str) -> str:
    """Names the event in <incidents>, and prefixes its messages' identifiers."""
    incident = f"{IDENTIFIER_PREFIX}.{event_id}.{event_uid}"
    if not event_uid or not is_cap_token(incident):
        raise ValueError(
            f"event id {event_id!r} / uid {event_uid!r} cannot be part of a CAP identifier "
            "(not empty; no spaces, commas, '&', '<')"
        )
    return incident


def message_identifier(event_id: str, event_uid: str, sequence: int) -> str:
    """Unique per message: the event, its random uid, and the message's place among its messages."""
    if sequence < 0:
        raise ValueError(f"a message sequence number is 0 or more, got {sequence}")
    return f"{incident_identifier(event_id, event_uid)}.{sequence}"


def alert_url(base_url: str, identifier: str) -> str:
    """Where the API serves one stored CAP message (the feed's links)."""
    return f"{base_url.rstrip('/')}{ALERTS_PATH}/{identifier}"


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
    """One CAP 1.2 alert.

    ``previous``: for an Update or Cancel the messages of its chain (required); for an Alert, the chain
    an earlier Cancel ended, when the event came back (``CapHistory.next_message`` decides both).
    """
    options = options or CapOptions()
    if change is not CapChange.RAISED and not previous:
        raise ValueError(f"a {change.msg_type} must reference the event's earlier messages; none were given")
    identifier = message_identifier(event.event_id, event.event_uid, sequence)
    profile = type_profile(event.event_type)
    cancelled = change in (CapChange.ENDED, CapChange.FALSE_ALARM)
    # Over: a Cancel, or the device reports the condition over while the work item stays open. Either
    # way the threat is past; a receiver ranks such a message below live ones.
    over = cancelled or not event.condition_active
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
    message_note = note or _default_note(change, over=over)
    if message_note:
        _sub(alert, "note", message_note)
    if previous:
        _sub(alert, "references", " ".join(str(reference) for reference in previous))
    _sub(alert, "incidents", incident_identifier(event.event_id, event.event_uid))

    info = etree.SubElement(alert, f"{_CAP}info")
    _sub(info, "language", options.language)
    for category in profile.categories:
        _sub(info, "category", category)
    _sub(info, "event", profile.event)
    _sub(info, "responseType", _response(change, over=over, during=profile.response))
    _sub(info, "urgency", "Past" if over else CAP_URGENCY[event.severity])
    _sub(info, "severity", "Minor" if over else CAP_SEVERITY[event.severity])
    _sub(
        info, "certainty", "Unlikely" if change is CapChange.FALSE_ALARM else cap_certainty(event.confidence)
    )
    code = etree.SubElement(info, f"{_CAP}eventCode")
    _sub(code, "valueName", "citywatch")
    _sub(code, "value", event.event_type)
    _sub(info, "effective", cap_time(sent))
    _sub(info, "onset", cap_time(event.started_at))
    _sub(info, "expires", cap_time(sent + options.valid_for(event.event_type)))
    _sub(info, "senderName", options.sender_name)
    _sub(info, "headline", headline)
    _sub(info, "description", _description(event))  # plain text; lxml escapes it
    if not cancelled:
        _sub(info, "instruction", _OVER_INSTRUCTION if over else profile.instruction)
    _sub(info, "web", f"{options.web_base_url.rstrip('/')}/events/{event.event_id}")
    _sub(info, "contact", options.contact_or_sender)
    for name, value in _parameters(event):
        parameter = etree.SubElement(info, f"{_CAP}parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    for resource in event.resources:  # CAP 1.2 order: after the parameters, before the area
        element = etree.SubElement(info, f"{_CAP}resource")
        _sub(element, "resourceDesc", resource.description)
        _sub(element, "mimeType", resource.mime_type)
        if resource.size is not None:
            _sub(element, "size", str(resource.size))
        _sub(element, "uri", resource.uri)
        if resource.digest is not None:
            _sub(element, "digest", resource.digest)
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
    base_url: str = "http://127.0.0.1:8080",
    updated: datetime | None = None,
) -> bytes:
    """An Atom feed with each CAP alert inline (newest first), as CAP aggregators read it.

    ``base_url`` is the gateway's public address (CITYWATCH_PUBLIC_URL): the feed's id and self link,
    and each entry's id and link to its CAP document, are built from it, never from the request.
    """
    ordered = sorted(messages, key=lambda message: message.sent, reverse=True)
    feed_url = f"{base_url.rstrip('/')}{FEED_PATH}"
    feed = etree.Element(f"{_ATOM}feed", nsmap={None: ATOM_NAMESPACE})
    _atom(feed, "id", feed_url)
    _atom(feed, "title", title)
    newest = updated or (ordered[0].sent if ordered else None)
    if newest is None:
        raise ValueError("an empty feed needs an explicit 'updated' time")
    _atom(feed, "updated", atom_time(newest))
    author = etree.SubElement(feed, f"{_ATOM}author")
    _atom(author, "name", ordered[0].sender if ordered else "citywatch")
    etree.SubElement(feed, f"{_ATOM}link", rel="self", href=feed_url)
    for message in ordered:
        document = alert_url(base_url, message.identifier)
        entry = etree.SubElement(feed, f"{_ATOM}entry")
        _atom(entry, "id", document)
        _atom(entry, "title", f"{message.msg_type}: {message.headline}")
        _atom(entry, "updated", atom_time(message.sent))
        etree.SubElement(entry, f"{_ATOM}link", rel="alternate", type=CAP_MEDIA_TYPE, href=document)
        content = etree.SubElement(entry, f"{_ATOM}content", type=CAP_MEDIA_TYPE)
        content.append(etree.fromstring(message.xml))
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def atom_time(value: datetime) -> str:
    """RFC 3339 as Atom wants it; UTC as "Z" (RFC 3339 reads "-00:00" as "offset unknown")."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: Any, name: str, text: str) -> None:
    etree.SubElement(parent, f"{_CAP}{name}").text = text


def _atom(parent: Any, name: str, text: str) -> None:
    etree.SubElement(parent, f"{_ATOM}{name}").text = text


_OVER_INSTRUCTION = "The condition is over; no action is needed for it. Finish and close the work item."


def _response(change: CapChange, *, over: bool, during: str) -> str:
    if change is CapChange.FALSE_ALARM:
        return "None"  # there was nothing to clear
    return "AllClear" if over else during


def _headline(event: CapEventView, change: CapChange, subject: str) -> str:
    where = event.area_description or event.site
    prefix = {CapChange.ENDED: "Ended: ", CapChange.FALSE_ALARM: "False alarm: "}.get(change, "")
    if not prefix and not event.condition_active:
        prefix = "Over: "
    return f"{prefix}{subject} — {where}"[:160]  # CAP advises headlines under 160 characters


def _default_note(change: CapChange, *, over: bool) -> str | None:
    if change is CapChange.ENDED:
        return "The work item is closed."
    if change is CapChange.FALSE_ALARM:
        return "Withdrawn as a false alarm."
    if over:
        return "The device reports the condition over; the work item stays open until it is closed."
    return None


def _description(event: CapEventView) -> str:
    parts = [
        f"{type_profile(event.event_type).event} reported by device {event.device_id} at site {event.site}",
        f"severity {event.severity.value}, work item {event.state}",
    ]
    if event.event_type == EventType.OBJECT_THROWN and (origin := _throw_origin(event.details)):
        parts.insert(1, origin)  # "from which window?" is the first question afterwards
    if event.department:
        parts.append(f"handled by {event.department}")
    if event.count > 1:
        parts.append(f"reported {event.count} times")
    return "; ".join(parts) + "."


def _throw_origin(details: Mapping[str, Any]) -> str | None:
    """Where a thrown object came from, in words: "from floor 12, window column 3 (floor confidence
    0.87), a 33.5 m fall"; None when the device could not place it."""
    floor = details.get("floor_estimate")
    if floor is None:
        return None
    text = f"from floor {floor}"
    if details.get("origin_column") is not None:
        text += f", window column {details['origin_column']}"
    if details.get("floor_confidence") is not None:
        text += f" (floor confidence {float(details['floor_confidence']):.2f})"
    if details.get("fall_height_m") is not None:
        text += f", a {float(details['fall_height_m']):.1f} m fall"
    return text


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
    personal = PERSONAL_DETAIL_FIELDS.get(event.event_type, frozenset())
    parameters += [
        (f"citywatch:{name}", _text(value))
        for name, value in sorted(event.details.items())
        if name not in personal  # a plate stays in the signed webhook and the API
    ]
    return parameters


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return cap_time(value)
    return str(value)
