PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# TensorFlow's oneDNN kernels on every CPU, as `sar2opt` sets them, so tests see the same numerics
# on machines where TensorFlow would leave them off.
export TF_ENABLE_ONEDNN_OPTS ?= 1

.PHONY: install lint test test-fast demo benchmark

install:
	$(PIP) install -q -e ".[test,jax]"

# Style (ruff) and the layers contract of setup.cfg (import-linter), before the tests.
lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -c "from importlinter.cli import lint_imports_command; lint_imports_command()" --no-cache

# The suite on TEST_WORKERS processes (pytest-xdist; 0: in this process). Much of it is single-threaded
# graph tracing and Python, so two workers keep a 2-core machine busy.
TEST_WORKERS ?= 2

test: install lint
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS)

test-fast:
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) -m "not slow"

demo:
	$(PIP) install -q -e .
	$(PYTHON) -m keras_sar2opt.cli reproduce --quick --output reports/demo

benchmark:
	$(PIP) install -q -e ".[benchmark]"
	$(PYTHON) -m keras_sar2opt.cli benchmark --output reports/benchmarks.md
