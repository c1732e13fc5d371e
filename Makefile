PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test test-fast demo benchmark

install:
	$(PIP) install -q -e ".[test,jax]"

test: install
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"

demo: install
	@echo "make demo: not yet available (the reproduce command lands with the demo issue)"
