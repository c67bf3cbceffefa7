PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: install demo test test-torch

# Everything goes into the project-local $(VENV), never into the system Python (which may be
# externally managed, PEP 668). Without ensurepip (Debian's python3 without python3-venv) the
# venv is made without pip and the system pip (>= 22.3) installs pip into it.
$(VENV)/bin/pip:
	@if $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	    $(PYTHON) -m venv $(VENV); \
	elif $(PYTHON) -m pip --version >/dev/null 2>&1; then \
	    echo "$(PYTHON) has no ensurepip: $(VENV) without pip, then pip installs pip into it"; \
	    $(PYTHON) -m venv --without-pip $(VENV) && \
	    $(PYTHON) -m pip --python $(VPY) install -q pip; \
	else \
	    echo "make: $(PYTHON) has neither ensurepip nor pip; install python3-venv or python3-pip" >&2; \
	    exit 1; \
	fi

# Reinstalled only when pyproject.toml changes (the install is editable: code changes need none).
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/pip
	$(VPY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/pip
	$(VPY) -m pip install -q -e '.[test,postgres]'
	touch $@

install: $(VENV)/.installed

# The main job: benchmark the bundled example on the `local` device.
demo: install
	$(VENV)/bin/edgebench run

# Style and types first (seconds), then the tests.
test: $(VENV)/.installed-test
	bash tests/system-deps.sh
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .
	$(VPY) -m mypy
	$(VPY) -m pytest -q

# tests/test_torch.py skips without torch (kept out of `test`: an unpinned torch is a
# multi-GB CUDA build on many machines); this installs the torch extra first.
# torch pinned first: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
test-torch: $(VENV)/.installed-test
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[torch]'
	$(VPY) -m pytest -q tests/test_torch.py
