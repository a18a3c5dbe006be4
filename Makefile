# The two commands of the README. Each sets up what it needs: a .venv with the project.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,dagster]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/sessionsync demo

test: lint chromium
	$(BIN)/python -m pytest

# Headless Chromium (Debian's package) opens the BI report in tests/test_bi.py.
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var warehouse .pytest_cache
