VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 0.0.0.0
PORT ?= 8000

.PHONY: install serve test test-fast bench docs

$(VENV)/.installed: pyproject.toml scripts/install.sh $(wildcard clients/python/pyproject.toml clients/node/package.json)
	VENV=$(VENV) bash scripts/install.sh

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/audio-service serve --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest -q -rs --durations=15

test-fast: install
	$(PY) -m pytest -q -rs --durations=10 tests/fast

docs: install
	$(VENV)/bin/mkdocs build --strict --site-dir site

bench: install
	$(PY) bench/batch.py
	$(PY) bench/streaming.py
	$(PY) bench/diarization.py
	$(PY) bench/alignment.py
	$(PY) bench/accuracy.py
