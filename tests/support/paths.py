"""Where the tests find the project's own files and the read-only ``../shared`` material."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = PROJECT_ROOT.parent / "shared"
ROUTING_EXAMPLE = PROJECT_ROOT / "config" / "routing.example.yaml"
