PYTHON ?= python3

.PHONY: install demo test

install:
	$(PYTHON) -m pip install -q -e .

# The main job: benchmark the bundled example on the `local` device.
demo: install
	edgebench run

test:
	bash tests/system-deps.sh
	$(PYTHON) -m pip install -q -e '.[test]'
	$(PYTHON) -m pytest -q
