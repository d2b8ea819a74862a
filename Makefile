# The README's two commands: `make run` (the local stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup bench package clean

$(STAMP): requirements.txt requirements-dev.txt functions/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) infra/local/run.py

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

package: $(STAMP)
	cd functions && AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} ../$(VENV)/bin/chalice package --pkg-format cloudformation --merge-template ../infra/resources.json ../out

clean:
	rm -rf $(VENV) out
