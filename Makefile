# The README's two entry points are `make demo` and `make test`; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FAST := not (stress or browser or packaging or git or shells)
# The other interpreters CI proves (pyenv builds on this project's machines).
PYTHONS ?= 3.9 3.10 3.12 3.13

.PHONY: demo test test-fast test-pythons lint format bench system-deps

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	    echo "python3 cannot make a venv here; on Debian/Ubuntu: apt-get install python3-venv" >&2; \
	    exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m compileall -q rexec_credential  # PYTHONDONTWRITEBYTECODE may be set: keep get fast
	touch $@

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m rexec_credential.testing.demo

system-deps:
	sh .ci/system-deps

# Everything: lint, type check, then the whole suite (stress, browser, git, packaging, shells).
test: system-deps lint
	$(PY) -m pytest -q

# The quick loop: everything but the slow groups, on both cores (well under a minute).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 -m "$(FAST)"

# The fast suite under each interpreter in PYTHONS, each in its own .venv-<version>.
test-pythons:
	sh .ci/pythons $(PYTHONS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed
	$(PY) bench/credential_get.py
