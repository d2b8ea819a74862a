# The README's two commands: `make run` (the local stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup browser screenshots bench package clean

$(STAMP): requirements.txt requirements-dev.txt functions/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) infra/local/run.py

test: $(STAMP) browser
	$(PY) -m pytest

# The console's browser tests drive Debian's Chromium through its chromedriver (nothing is downloaded at
# run time); installed here only when missing (as root, like CI).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; fi

# Re-takes the console's screenshots in docs/console/ (an ordinary test run writes them to a temporary folder).
screenshots: $(STAMP) browser
	CONSOLE_SCREENSHOTS=docs/console $(PY) -m pytest tests/browser -q

bench: $(STAMP)
	$(PY) bench/run_all.py

package: $(STAMP)
	cd functions && AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} ../$(VENV)/bin/chalice package --pkg-format cloudformation --merge-template ../infra/resources.json ../out

clean:
	rm -rf $(VENV) out
