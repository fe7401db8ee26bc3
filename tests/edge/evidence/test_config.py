"""The evidence section: defaults, and mistakes refused with a message that says what to change."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from edge.config import FacadeAgentConfig, validate_config_dict
from edge.evidence.config import EvidenceConfig, PrivacyConfig
from tests.edge.facade.scenes import scene_config

EXAMPLE = Path(__file__).resolve().parents[3] / "firmware_configs" / "facade.example.yaml"


def test_the_defaults_fit_a_pi_class_budget() -> None:
    config = EvidenceConfig()
    assert config.enabled and config.pre_s == 3.0 and config.post_s == 3.0
    assert config.store_width == 960 and config.ring_span_s == 11.0
    assert config.buffer_max_mb <= 64


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"clip_width": 961}, "clip_width must be even"),
        ({"buffer_max_mb": 2, "clip_fps": 25, "still_width": 1920}, r"buffer_max_mb \(2\) cannot hold"),
        ({"pre_s": -1}, "greater than or equal to 0"),
        ({"max_clip_bytes": 1000}, "greater than or equal to 100000"),
        ({"jpeg_quality": 101}, "less than or equal to 100"),
    ],
)
def test_mistakes_are_refused_with_a_clear_message(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EvidenceConfig.model_validate(fields)


def test_privacy_zone_names_are_unique() -> None:
    zone = {"name": "balcony", "polygon": [[0, 0], [10, 0], [10, 10]]}
    with pytest.raises(ValidationError, match="repeated: balcony"):
        PrivacyConfig.model_validate({"zones": [zone, zone]})


def test_the_facade_refuses_zones_outside_the_frame_and_clips_faster_than_the_camera() -> None:
    evidence = {
        "clip_fps": 30,
        "privacy": {"zones": [{"name": "roof_terrace", "polygon": [[600, 10], [700, 10], [700, 500]]}]},
    }
    with pytest.raises(ValidationError) as raised:
        scene_config(evidence=evidence)
    text = str(raised.value)
    assert "evidence.privacy.zones.roof_terrace: corner [700, 10] is outside the 640x480 frame" in text
    assert "evidence.clip_fps (30) is above the camera's fps (25)" in text


def test_the_example_config_has_an_evidence_section_that_validates() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    config = validate_config_dict(raw)
    assert isinstance(config, FacadeAgentConfig)
    evidence = config.facade.evidence
    assert evidence.enabled and evidence.privacy.zones
    assert raw["facade"]["evidence"].keys() <= set(EvidenceConfig.model_fields)
