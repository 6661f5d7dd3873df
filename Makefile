# doc-classifier: every entry point a user or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# A local copy of 20news-bydate.tar.gz for machines without internet; empty means download.
NEWSGROUPS_ARCHIVE ?= $(firstword $(wildcard ../shared/data/20news-bydate.tar.gz))
export NEWSGROUPS_ARCHIVE
MODEL ?= data/model.bin

.PHONY: help demo build train serve load test lint bench bench-train bench-serve clean
.PHONY: image deploy deploy-app undeploy port-forward status grafana-password validate-deploy model-present
.PHONY: e2e tools

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

test: model-present ## Every test: unit, integration on the real archive (downloaded if needed), lint, deployment checks, e2e
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	$(MAKE) lint
	$(MAKE) validate-deploy
	$(MAKE) e2e

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
	$(CARGO) build --release -p serve --bin serve --example otlp_sink
	python3 bench/serve_bench.py --archive "$(or $(NEWSGROUPS_ARCHIVE),data/20news-bydate.tar.gz)" --model $(MODEL) --duration 5 --rounds 5 --sampled 0.1 --peer

e2e: tools ## End to end on loopback: serve + loadgen + a real Prometheus with the deployed rules and dashboards' queries, traces and logs linked
	$(CARGO) build --release -p serve -p loadgen -p train
	@test -f $(MODEL) || $(MAKE) train
	python3 scripts/e2e.py

# The checks' tools: Python packages pinned in scripts/requirements-ci.txt, and Debian's
# prometheus + promtool (installed with apt-get when running as root, else a hint).
tools:
	@python3 -c 'import yaml, opentelemetry.proto, google.protobuf' 2>/dev/null \
		&& command -v yamllint >/dev/null && command -v kubernetes-validate >/dev/null && command -v hadolint >/dev/null \
		|| python3 -m pip install --quiet -r scripts/requirements-ci.txt
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; \
		else echo "needs prometheus and promtool on the PATH: sudo apt-get install prometheus" >&2; exit 1; fi; }

clean: ## Remove build output and the trained model (keeps the downloaded archive)
	$(CARGO) clean
	rm -f data/model.bin data/model.metrics.json

# ---------------------------------------------------------------------------------------------
# Deployment on Kubernetes (docs/deploy.md): make image deploy, then make port-forward.
# Needs docker, kubectl and helm 3.8+ on the PATH, and a kubectl context (kind, minikube, ...).

NAMESPACE ?= doc-classifier
KUBECTL ?= kubectl
HELM ?= helm
HELM_TIMEOUT ?= 10m
IMAGE_REPO ?= doc-classifier
# kind cluster to load the image into; empty: the current context's, if it is kind-<name>
KIND_CLUSTER ?=

# Chart versions, all in one place (helm-config/<release>/values.yaml were checked against these)
MINIO_CHART_VERSION := 5.4.0
LOKI_CHART_VERSION := 18.11.0
TEMPO_CHART_VERSION := 2.2.4
PROMETHEUS_CHART_VERSION := 29.27.0
PROMTAIL_CHART_VERSION := 6.17.1
GRAFANA_CHART_VERSION := 12.11.1

# The model's content hash, read from the model file's header (magic, format, length, SHA-256,
# then bincode: the first field is model_version, a length byte and 12 hex digits); empty if the
# file is missing.
MODEL_VERSION = $(shell python3 -c 'import sys; b = open(sys.argv[1], "rb").read(64); n = b[50]; print(b[51:51 + n].decode() if b[:8] == b"20NGMDL\x1a" and 0 < n <= 32 else "")' $(MODEL) 2>/dev/null)
# The code revision, "-dirty" when what the image is built from differs from the commit.
GIT_REV = $(shell git rev-parse --short=7 HEAD 2>/dev/null || echo nogit)$(shell git status --porcelain -- Cargo.toml Cargo.lock crates Dockerfile 2>/dev/null | grep -q . && echo -dirty)
# make image writes the image it built here; make deploy deploys that one (or IMAGE=... given).
IMAGE_FILE := target/deploy/image
IMAGE ?= $(shell cat $(IMAGE_FILE) 2>/dev/null)
APP_OVERLAY := target/deploy/app
APP_MANIFESTS := $(filter-out manifests/kustomization.yaml,$(wildcard manifests/*.yaml))
DASHBOARDS := $(wildcard grafana/dashboards/*.json)
HELM_UPGRADE = $(HELM) upgrade --install --namespace $(NAMESPACE) --wait --timeout $(HELM_TIMEOUT)
# Kubernetes versions the manifests are checked against: the oldest with the native preStop sleep
# on by default, and the newest kubernetes-validate knows.
K8S_VERSIONS := 1.30.0 1.37.0

model-present:
	@test -f $(MODEL) || $(MAKE) train

image: model-present ## Build the server image, model baked in, tag <model_version>-<git rev>; load it into kind/minikube
	@test -n "$(MODEL_VERSION)" || { echo "$(MODEL) is not a model file train wrote" >&2; exit 1; }
	docker build --build-arg MODEL=$(MODEL) --build-arg MODEL_VERSION=$(MODEL_VERSION) --build-arg GIT_REV=$(GIT_REV) \
		-t $(IMAGE_REPO):$(MODEL_VERSION)-$(GIT_REV) .
	@mkdir -p $(dir $(IMAGE_FILE)) && echo $(IMAGE_REPO):$(MODEL_VERSION)-$(GIT_REV) > $(IMAGE_FILE)
	@img=$(IMAGE_REPO):$(MODEL_VERSION)-$(GIT_REV); ctx="$$($(KUBECTL) config current-context 2>/dev/null)"; \
	cluster="$(KIND_CLUSTER)"; if [ -z "$$cluster" ] && [ "$${ctx#kind-}" != "$$ctx" ]; then cluster="$${ctx#kind-}"; fi; \
	if [ -n "$$cluster" ]; then echo "kind load docker-image $$img --name $$cluster"; kind load docker-image "$$img" --name "$$cluster"; \
	elif [ "$$ctx" = minikube ]; then echo "minikube image load $$img"; minikube image load "$$img"; \
	else echo "built $$img: push it where the cluster pulls from, then make deploy IMAGE=<that reference>"; fi

# The app: manifests/ with the image make image built (an overlay under target/, never a
# change to the committed manifests), then wait until every pod runs it.
define DEPLOY_APP
	@test -n "$(IMAGE)" || { echo "no image to deploy: run make image first (or make deploy IMAGE=repo/name:tag)" >&2; exit 1; }
	@mkdir -p $(APP_OVERLAY) && img="$(IMAGE)" && printf '%s\n' \
		'apiVersion: kustomize.config.k8s.io/v1beta1' 'kind: Kustomization' 'resources:' '  - ../../../manifests' \
		'images:' '  - name: doc-classifier' "    newName: $${img%:*}" "    newTag: \"$${img##*:}\"" \
		> $(APP_OVERLAY)/kustomization.yaml
	$(KUBECTL) apply -k $(APP_OVERLAY)
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/doc-classifier --timeout=300s
endef

deploy: ## Install or upgrade the whole stack (MinIO, Loki, Tempo, Prometheus, Promtail, Grafana, app); safe to rerun
	$(KUBECTL) apply -f manifests/namespace.yaml
	@# MinIO's root credentials, made once and never written to a file or a command line.
	@$(KUBECTL) -n $(NAMESPACE) get secret minio-credentials >/dev/null 2>&1 || { \
		printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: minio-credentials\n  namespace: %s\ntype: Opaque\nstringData:\n  rootUser: "%s"\n  rootPassword: "%s"\n' \
			"$(NAMESPACE)" "minio-$$(openssl rand -hex 6)" "$$(openssl rand -hex 24)" | $(KUBECTL) create -f - ; }
	$(HELM) repo add grafana-community https://grafana-community.github.io/helm-charts --force-update
	$(HELM) repo add grafana https://grafana.github.io/helm-charts --force-update
	$(HELM) repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
	$(HELM) repo add minio https://charts.min.io/ --force-update
	$(HELM) repo update grafana-community grafana prometheus-community minio
	$(HELM_UPGRADE) minio minio/minio --version $(MINIO_CHART_VERSION) -f helm-config/minio/values.yaml
	$(HELM_UPGRADE) loki grafana-community/loki --version $(LOKI_CHART_VERSION) -f helm-config/loki/values.yaml
	$(HELM_UPGRADE) tempo grafana-community/tempo --version $(TEMPO_CHART_VERSION) -f helm-config/tempo/values.yaml
	$(HELM_UPGRADE) prometheus prometheus-community/prometheus --version $(PROMETHEUS_CHART_VERSION) \
		-f helm-config/prometheus/values.yaml \
		--set-file 'ruleFiles.recording\.yml=helm-config/prometheus/rules/recording.yml' \
		--set-file 'ruleFiles.alerting\.yml=helm-config/prometheus/rules/alerting.yml'
	$(HELM_UPGRADE) promtail grafana/promtail --version $(PROMTAIL_CHART_VERSION) -f helm-config/promtail/values.yaml
	@# Grafana's data sources and dashboards: ConfigMaps built from the files in grafana/, labelled
	@# for the chart's sidecars. Server-side apply: no last-applied annotation (256 KiB limit).
	$(KUBECTL) -n $(NAMESPACE) create configmap grafana-datasources --dry-run=client -o yaml \
		--from-file=datasources.yaml=grafana/datasources/datasources.yaml \
		| $(KUBECTL) label --local -f - grafana_datasource=1 -o yaml \
		| $(KUBECTL) apply --server-side --force-conflicts --field-manager=make-deploy -f -
	$(KUBECTL) -n $(NAMESPACE) create configmap grafana-dashboards --dry-run=client -o yaml \
		$(foreach f,$(DASHBOARDS),--from-file=$(f)) \
		| $(KUBECTL) label --local -f - grafana_dashboard=1 -o yaml \
		| $(KUBECTL) apply --server-side --force-conflicts --field-manager=make-deploy -f -
	$(HELM_UPGRADE) grafana grafana-community/grafana --version $(GRAFANA_CHART_VERSION) -f helm-config/grafana/values.yaml
	$(DEPLOY_APP)
	@echo "Deployed. make port-forward, then Grafana on http://127.0.0.1:3001 (admin / make grafana-password)"

deploy-app: ## Deploy only the server (after make image), the stack being in place
	$(DEPLOY_APP)

undeploy: ## Remove the stack: every Helm release, then the namespace (app, data, MinIO credentials)
	-@for r in grafana promtail prometheus tempo loki minio; do \
		if $(HELM) status $$r -n $(NAMESPACE) >/dev/null 2>&1; then echo "helm uninstall $$r"; $(HELM) uninstall $$r -n $(NAMESPACE) --wait; fi; \
	done
	$(KUBECTL) delete namespace $(NAMESPACE) --ignore-not-found --wait

port-forward: ## Grafana on http://127.0.0.1:3001, the server on http://127.0.0.1:3000 (Ctrl-C stops both)
	@echo "Grafana http://127.0.0.1:3001 (user admin, password: make grafana-password); server http://127.0.0.1:3000"
	@trap 'kill $$(jobs -p) 2>/dev/null' EXIT INT TERM; \
	$(KUBECTL) -n $(NAMESPACE) port-forward svc/grafana 3001:80 & \
	$(KUBECTL) -n $(NAMESPACE) port-forward svc/doc-classifier 3000:3000 & \
	wait

status: ## Helm releases, pods, services and volumes of the stack, and the server's rollout
	$(HELM) list -n $(NAMESPACE)
	$(KUBECTL) -n $(NAMESPACE) get pods,services,persistentvolumeclaims
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/doc-classifier --timeout=10s

grafana-password: ## Print Grafana's admin password (generated by the chart, kept in the Secret grafana)
	@$(KUBECTL) -n $(NAMESPACE) get secret grafana -o jsonpath='{.data.admin-password}' | base64 -d; echo

validate-deploy: tools ## Offline checks of the deployment: yamllint, hadolint, Kubernetes schemas, rules and their unit tests, dashboards
	yamllint -s .
	hadolint Dockerfile
	promtool check rules helm-config/prometheus/rules/*.yml
	promtool test rules helm-config/prometheus/tests/*.yml
	python3 scripts/check_dashboards.py --self-test
	python3 scripts/check_dashboards.py
	@for v in $(K8S_VERSIONS); do \
		echo "kubernetes-validate --strict -k $$v $(APP_MANIFESTS)"; \
		kubernetes-validate --strict --quiet -k $$v $(APP_MANIFESTS) || exit 1; \
	done
	@if command -v $(KUBECTL) >/dev/null 2>&1; then \
		mkdir -p target/deploy && $(KUBECTL) kustomize manifests > target/deploy/rendered.yaml \
		&& echo "kubectl kustomize manifests: rendered" \
		&& kubernetes-validate --strict --quiet -k $(lastword $(K8S_VERSIONS)) target/deploy/rendered.yaml; \
	fi
	@missing=0; \
	for f in $$($(MAKE) --no-print-directory -n deploy | grep -oE '(helm-config|grafana|manifests)/[A-Za-z0-9_./-]+\.(ya?ml|json)' | sort -u); do \
		if test -f "$$f"; then echo "make deploy reads $$f: present"; else echo "make deploy reads $$f: MISSING" >&2; missing=1; fi; \
	done; \
	test -n "$(DASHBOARDS)" || { echo "no dashboard in grafana/dashboards/" >&2; missing=1; }; \
	exit $$missing
