"""Scoring analyzers against ground truth (citywatch eval ...)."""
