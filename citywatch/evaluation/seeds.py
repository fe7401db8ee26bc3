"""Seed ranges of the simulated evaluations, kept apart from the heavy modules so the CLI can name them
without importing numpy (an edge device runs the same ``citywatch`` CLI within its memory budget)."""

THROWING_HELD_OUT_SEED = 14_000_000
THROWING_TUNING_SEED = 14_500_000
PARKING_HELD_OUT_SEED = 1_000_000  # simulators.street.HELD_OUT_FIRST_SEED: never used for tuning
