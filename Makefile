# kubetrain: `make run` trains the quickstart locally; `make test` installs and runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV = $(shell hack/venv.sh)

.PHONY: help run test unit lint fmt crds chart dev-cluster dev-cluster-down e2e-kind bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: ## install (once) and train examples/quickstart.yaml on this machine
	$(VENV)/bin/kubetrain run examples/quickstart.yaml

test: ## install everything the tests need (once), then lint and run every test
	bash hack/test.sh

unit: ## the fast tests only (no control plane)
	$(VENV)/bin/pytest -q tests/unit

lint: ## ruff
	$(VENV)/bin/ruff check .

fmt: ## ruff format + fix imports
	$(VENV)/bin/ruff check --fix --select I . && $(VENV)/bin/ruff format .

crds: ## regenerate everything made from the models: crds/, the spec reference, the chart and kustomize copies
	$(VENV)/bin/kubetrain crd --write .
	$(VENV)/bin/python hack/chart/generate.py

chart: ## regenerate the chart's values, schema, Chart.yaml, admission policy and kustomize base
	$(VENV)/bin/python hack/chart/generate.py

dev-cluster: ## start a local control plane, a real node and the operator (development only)
	bash hack/dev-cluster.sh up

dev-cluster-down: ## stop it
	bash hack/dev-cluster.sh down

e2e-kind: ## end-to-end on kind (needs Docker and kind; not run by make test)
	bash tests/e2e/kind/run.sh

bench: ## benchmarks (see docs/benchmarks.md)
	$(VENV)/bin/python bench/trainer_overhead.py

clean: ## remove local run directories
	rm -rf runs/
