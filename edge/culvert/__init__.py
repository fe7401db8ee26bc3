"""Culvert water level: pure filter and detectors (``logic``), and the agent that runs them."""
