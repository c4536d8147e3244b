# The two commands of the quick start. Each creates (or reuses) .venv, installs the project with
# pinned versions, and runs. Re-running is cheap: the install step only reruns when its inputs change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= results/demo
PYTEST_ARGS ?= -n 2

.PHONY: demo test test-all clean-venv

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
	  -c requirements/constraints.txt -e ".[demo,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/oneadapt demo --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
