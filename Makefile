# tripmesh — two commands: `make up` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell tools/scripts/ensure-uv.sh)
export UV_LINK_MODE ?= copy
export LITELLM_LOCAL_MODEL_COST_MAP ?= True
export HF_HUB_OFFLINE ?= 1
PYTEST := $(UV) run --frozen pytest

.PHONY: help install up test test-unit test-integration test-e2e test-chaos test-chaos-full lint fmt schemas clean-data

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

install: ## Install the workspace (all services, dev tools) from the lockfile
	$(UV) sync --frozen --all-packages

up: install ## Start NATS, Postgres, Qdrant storage and the five services (Ctrl-C stops all)
	@# run the venv's entry point directly: under `uv run` a Ctrl-C would arrive twice
	.venv/bin/tripmesh-up

test: install ## The whole suite, offline: unit, contract, integration, e2e
	$(PYTEST)

test-unit: install ## Unit and contract tests only (fast)
	$(PYTEST) -m "not integration and not e2e"

test-e2e: install ## End-to-end tests against the stack started as `make up` starts it
	$(PYTEST) tests/e2e

test-chaos: install ## The reliability battery, PR tier (~15 min; also part of `make test`)
	$(PYTEST) tests/chaos

test-chaos-full: install ## The reliability battery, full tier (larger counts, longer outages; ~60 min)
	$(PYTEST) tests/chaos --chaos-tier=full

lint: install ## ruff, mypy --strict, import-linter (services never import each other), hadolint, README's reliability tables = the committed reports
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/contracts/src libs/kit/src libs/places/src tools/devstack/src tools/tripctl/src services/gateway/src services/planner/src services/agent-runner/src services/cost-ledger/src services/vector-sync/src
	$(UV) run --frozen lint-imports
	$(UV) run --frozen hadolint deploy/Dockerfile
	$(UV) run --frozen python tools/scripts/reliability_table.py --check

fmt: install ## Format and auto-fix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

schemas: install ## Regenerate the contracts' JSON Schemas (snapshot-tested)
	$(UV) run --frozen python -m tripmesh_contracts.schema libs/contracts/schemas

clean-data: ## Delete the local state of `make up` (.tripmesh/)
	rm -rf .tripmesh

.PHONY: bench
bench: install ## The stack end to end as `make up` starts it, and the in-process control, in the same run: 1,4,16,64 clients and 0.5,1,2 plans/s at 0 and 500 ms LLM -> reports/bench/stack-*
	$(UV) run --frozen python -m bench.stack --systems tripmesh,control --clients 1,4,16,64 --rates 0.5,1,2 --latencies-ms 0,500

.PHONY: bench-gateway
bench-gateway: install ## gateway: accepted POST /plans per second (publish acknowledged), planner running then stopped -> reports/bench/gateway-posts-*
	$(UV) run --frozen python -m bench.gateway.posts --clients 32 --processes 2 --seconds 20

.PHONY: bench-runners
bench-runners: install ## agent-runner: LLM transport at concurrency, then plans/s for 1, 2, 4 replicas (500 ms stub model) -> reports/bench/
	$(UV) run --frozen python bench/runners/transport.py --seconds 10
	$(UV) run --frozen python bench/runners/measure.py --replicas 1,2,4,1 --in-flight 32 --latency-ms 500

.PHONY: bench-ledger
bench-ledger: install ## cost-ledger: replay 1,000,000 usage events through 1, then 2 service processes, fresh then duplicates (exact totals checked) -> reports/bench/
	$(UV) run --frozen python bench/ledger/replay.py --events 1000000 --replicas 1
	$(UV) run --frozen python bench/ledger/replay.py --events 1000000 --replicas 2
