# Two commands for a newcomer: `make run` (the app on the local host) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
# The CuPy extra that matches the driver's CUDA major version, or none without a GPU.
CUDA_MAJOR := $(shell nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -1)
CUDA_EXTRA := $(if $(filter 12,$(CUDA_MAJOR)),cuda12,$(if $(filter 13,$(CUDA_MAJOR)),cuda13,))

.PHONY: run test test-gpu cli clean

# Two stamps: the app alone (what `make run` needs), and the test tools on top of it.
$(VENV)/.installed-app: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".$(if $(CUDA_EXTRA),[$(CUDA_EXTRA)])"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-app
	$(PY) -m pip install -q -e ".[dev$(if $(CUDA_EXTRA),$(comma)$(CUDA_EXTRA))]"
	touch $@

comma := ,

run: $(VENV)/.installed-app
	$(VENV)/bin/gpubench-tui

# Two workers: most tests wait on engine windows rather than use the CPU, so two workers
# take little more than one would per test. loadgroup keeps the tests of one xdist_group on
# one worker (the MPS stand-ins: tests/scenarios/test_mps_launchers.py says why). The GPU tests
# stay serial: they time one GPU.
test: $(VENV)/.installed-dev
	$(PY) -m pytest -n 2 --dist loadgroup

# GPU tests: on a machine with an NVIDIA GPU and CuPy (see README).
test-gpu: $(VENV)/.installed-dev
	GPUBENCH_REQUIRE_GPU=1 $(PY) -m pytest -m gpu

clean:
	rm -rf $(VENV) build *.egg-info
