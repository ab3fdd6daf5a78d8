VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 0.0.0.0
PORT ?= 8000
# pytest workers of `make test` (modules are spread over them whole: --dist loadfile). Two on two cores:
# three are no faster there and crowd the timing-sensitive tests.
TEST_WORKERS ?= 2

.PHONY: install serve test test-fast bench docs check lower-bounds

$(VENV)/.installed: pyproject.toml scripts/install.sh $(wildcard clients/python/pyproject.toml clients/node/package.json)
	VENV=$(VENV) bash scripts/install.sh

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/audio-service serve --server.host $(HOST) --server.port $(PORT)

test: install
	$(PY) -m pytest -q -rs --durations=15 -n $(TEST_WORKERS) --dist loadfile

test-fast: install
	$(PY) -m pytest -q -rs --durations=10 tests/fast

# Static checks, seconds when warm (docs/development.md#checks)
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/deptry audio_service
	$(VENV)/bin/deptry tests bench scripts --exclude __pycache__ --ignore DEP002,DEP004
	$(VENV)/bin/vulture
	$(VENV)/bin/hadolint --no-color Dockerfile
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir site

docs: install
	$(VENV)/bin/mkdocs build --strict --site-dir site

bench: install
	$(PY) bench/batch.py
	$(PY) bench/streaming.py
	$(PY) bench/diarization.py
	$(PY) bench/alignment.py
	$(PY) bench/accuracy.py

# the core's lowest allowed dependency versions install and work (scripts/check_lower_bounds.sh)
lower-bounds:
	bash scripts/check_lower_bounds.sh
