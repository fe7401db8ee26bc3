"""Training code and model artefacts (not part of the installed ``citywatch`` package)."""
