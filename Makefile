# The README's two commands: `make run` (the local stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# DynamoDB Local (Amazon's emulator, run by the tests and by `DYNAMODB=local make run`), fetched once
DDB_LOCAL_JAR := .local/dynamodb-local/DynamoDBLocal.jar
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test setup bench package clean dynamodb-local

$(STAMP): requirements.txt requirements-dev.txt functions/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

$(DDB_LOCAL_JAR): | $(STAMP)
	$(PY) -m infra.local.dynamodb_local install
	test -f $@

# the jar once, and a Java runtime (apt-get only when `java` is missing)
dynamodb-local: $(DDB_LOCAL_JAR)
	@command -v java >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y default-jre-headless; }

# `DYNAMODB=local make run` keeps the tables in DynamoDB Local (data under .local/dynamodb-data/)
run: $(STAMP) $(if $(filter local,$(DYNAMODB)),dynamodb-local)
	$(PY) infra/local/run.py

test: $(STAMP) dynamodb-local
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

package: $(STAMP)
	cd functions && AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} ../$(VENV)/bin/chalice package --pkg-format cloudformation --merge-template ../infra/resources.json ../out

clean:
	rm -rf $(VENV) out
