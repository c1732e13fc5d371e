PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# TensorFlow's oneDNN kernels on every CPU, as importing keras_sar2opt sets them, so tests see the same
# numerics on machines where TensorFlow would leave them off, also where TensorFlow is imported first.
export TF_ENABLE_ONEDNN_OPTS ?= 1

.PHONY: install lint test test-fast demo benchmark reference-env

# The reference implementations that tests/test_metrics_reference.py compares FID, KID, LPIPS and DISTS with,
# in an environment of their own, so that torchvision never enters the package's. Where pip finds torch's CPU
# build (as the test extra pins it), it takes it: about 1.2 GB and a minute here, where the CUDA build takes
# 5.6 GB; tests/metrics_reference.py lets torchvision's CUDA wheel import beside it. Built once, then reused.
REFERENCE_ENV ?= .venv-reference
REFERENCE_PACKAGES = torch==2.13.0 torchvision==0.28.0 pytorch-fid==0.3.0 torch-fidelity==0.4.0 lpips==0.1.4 DISTS_pytorch==0.1
export SAR2OPT_REFERENCE_PYTHON ?= $(abspath $(REFERENCE_ENV))/bin/python

install:
	$(PIP) install -q -e ".[test,jax,export,app]"

# Style (ruff) and the layers contract of setup.cfg (import-linter), before the tests.
lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -c "from importlinter.cli import lint_imports_command; lint_imports_command()" --no-cache

# The suite on TEST_WORKERS processes (pytest-xdist; 0: in this process). Much of it is single-threaded
# graph tracing and Python, so two workers keep a 2-core machine busy.
TEST_WORKERS ?= 2

test: install lint reference-env
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS)

test-fast:
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) -m "not slow"

demo:
	$(PIP) install -q -e .
	$(PYTHON) -m keras_sar2opt.cli reproduce --quick --jobs 2 --output reports/demo

benchmark:
	$(PIP) install -q -e ".[benchmark]"
	$(PYTHON) -m keras_sar2opt.cli benchmark --output reports/benchmarks.md

reference-env: $(REFERENCE_ENV)/.complete

$(REFERENCE_ENV)/.complete:
	$(PYTHON) -m venv $(REFERENCE_ENV)
	$(REFERENCE_ENV)/bin/python -m pip install -q --no-cache-dir $(REFERENCE_PACKAGES)
	touch $@
