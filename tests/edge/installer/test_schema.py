"""The committed device-config JSON Schema is the model's (regenerate: `citywatch edge schema`), and the
sample site's configs validate against it with the reference validator (what installers' editors use)."""

from __future__ import annotations

import json

import jsonschema
import yaml

from edge.config import json_schema
from tests.support.paths import PROJECT_ROOT

COMMITTED = PROJECT_ROOT / "firmware_configs/schema/device-config.schema.json"
SITE = PROJECT_ROOT / "firmware_configs/sites/maple-gardens"


def test_the_committed_schema_is_generated_from_the_model() -> None:
    fresh = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    assert fresh == COMMITTED.read_text(), "stale: run `citywatch edge schema` and commit the result"


def test_every_sample_and_example_config_validates_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(COMMITTED.read_text()))
    files = sorted(SITE.glob("*.yaml")) + sorted((PROJECT_ROOT / "firmware_configs").glob("*.yaml"))
    configs = [f for f in files if f.name != "site.yaml"]
    assert len(configs) >= 8
    for path in configs:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], f"{path}: {errors}"
    wrong = yaml.safe_load((SITE / "lift-a1.yaml").read_text())
    wrong["elevator"]["detector"]["score_treshold"] = 0.3
    assert any("score_treshold" in e.message for e in validator.iter_errors(wrong))
