# doc-classifier: every entry point a user or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# A local copy of 20news-bydate.tar.gz for machines without internet; empty means download.
NEWSGROUPS_ARCHIVE ?= $(firstword $(wildcard ../shared/data/20news-bydate.tar.gz))
export NEWSGROUPS_ARCHIVE
MODEL ?= data/model.bin

.PHONY: help demo build train serve load test lint bench bench-train bench-serve clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: ## The main job: train (if needed), serve, load for 30 s, print the summaries, stop
	scripts/demo.sh

build: ## Build every binary in release mode
	$(CARGO) build --release --workspace

train: ## Download (or read NEWSGROUPS_ARCHIVE), train, evaluate, write $(MODEL)
	$(CARGO) run --release -p train -- --model $(MODEL)

serve: ## Run the server on :3000 with $(MODEL) (trains first if needed)
	@test -f $(MODEL) || $(MAKE) train
	$(CARGO) run --release -p serve -- --model $(MODEL)

load: ## Run loadgen (30 s, all traffic kinds) against a server on 127.0.0.1:3000 (make serve)
	$(CARGO) run --release -p loadgen -- --host http://127.0.0.1:3000

test: ## Every test: unit, integration (on the real archive when NEWSGROUPS_ARCHIVE is set), lint
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	$(MAKE) lint

lint: ## Formatting and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: ## Criterion benchmarks of the pipeline steps (needs the archive)
	$(CARGO) bench -p pipeline --bench pipeline_steps

bench-train: ## train vs the scikit-learn reference, end to end, same archive, same run
	bench/train_vs_sklearn.sh "$(or $(NEWSGROUPS_ARCHIVE),data/20news-bydate.tar.gz)"

bench-serve: ## wrk load, telemetry on vs off, beside the BentoML peer (loopback; installs wrk)
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
	@test -f $(MODEL) || $(MAKE) train
	$(CARGO) build --release -p serve
	python3 bench/serve_bench.py --archive "$(or $(NEWSGROUPS_ARCHIVE),data/20news-bydate.tar.gz)" --model $(MODEL) --peer

clean: ## Remove build output and the trained model (keeps the downloaded archive)
	$(CARGO) clean
	rm -f data/model.bin data/model.metrics.json
