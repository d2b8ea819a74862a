# The README's two commands: `make run` (the local stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov (the IaC scanner the package test runs) has its own virtualenv: its dependency tree conflicts with ours.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: run test setup bench package checkov clean

$(STAMP): requirements.txt requirements-dev.txt functions/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --disable-pip-version-check -q checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

run: $(STAMP)
	$(PY) infra/local/run.py

test: $(STAMP) $(CHECKOV_STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

package: $(STAMP)
	cd functions && AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} ../$(VENV)/bin/chalice package --pkg-format cloudformation --merge-template ../infra/resources.json ../out

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) out
