"""The conformance kit: judge a device's MQTT traffic against docs/protocol.md, message by message.

``Checker`` is pure (feed it ``Observation``s, get ``Finding``s); ``watch`` runs it on a live broker;
``citywatch protocol check`` is its command line.
"""

from citywatch.protocol.conformance.checker import Checker, CheckOptions
from citywatch.protocol.conformance.findings import RULE_BY_ID, RULES, Finding, Level, Rule
from citywatch.protocol.conformance.judgement import Observation

__all__ = ["RULES", "RULE_BY_ID", "CheckOptions", "Checker", "Finding", "Level", "Observation", "Rule"]
