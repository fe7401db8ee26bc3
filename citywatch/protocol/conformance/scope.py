"""Which topics the kit judges: everything under ``citywatch/``, narrowed to a site and/or a device.

The kit subscribes to the whole tree, as the gateway does, so that a device publishing on a wrong
version or shape of topic is seen (and judged) rather than missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from citywatch.protocol.topics import ROOT, VERSION_SEGMENT


class Relation(Enum):
    IN = "in"  # judged
    OUT = "out"  # another device: ignored
    OTHER_SITE = "other_site"  # the device checked, publishing under another site


@dataclass(frozen=True, slots=True)
class Scope:
    site: str | None = None
    device_id: str | None = None

    def relation(self, topic: str) -> Relation:
        parts = topic.split("/")
        if parts[0] != ROOT:
            return Relation.OUT
        if len(parts) == 5 and parts[1] == VERSION_SEGMENT:
            site, device_id = parts[2], parts[3]
            if self.device_id is not None and device_id != self.device_id:
                return Relation.OUT
            if self.site is not None and site != self.site:
                return Relation.OTHER_SITE if self.device_id is not None else Relation.OUT
            return Relation.IN
        # Another version or shape: judged when it names what is watched, at any level.
        levels = parts[1:]
        if any(wanted is not None and wanted not in levels for wanted in (self.site, self.device_id)):
            return Relation.OUT
        return Relation.IN

    def describe(self) -> str:
        return f"{ROOT}/{VERSION_SEGMENT}/{self.site or '+'}/{self.device_id or '+'}/#"
