"""Simulators standing in for sensors, cameras, device fleets and the dispatch centre."""
