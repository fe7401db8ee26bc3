"""Culvert water level: config, sensor sources, filter, analyzer, and the agent that runs them.

Only the standard library, pydantic and (for a serial sensor) pyserial: a culvert device stays small.
The culvert agent is ``edge.culvert.agent``.
"""
