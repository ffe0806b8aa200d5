# Everything runs from a local virtualenv that the targets create on first use.
# `make help` lists the targets.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.serving
PY := $(BIN)/python

MODEL_NAME ?= taxi
DEMO_DIR ?= demo/model
DEMO_REGISTRY ?= demo/registry
HTTP_PORT ?= 8080
GRPC_PORT ?= 8081
PYTEST_ARGS ?=
# `make test` runs the suite on this many processes (pytest-xdist; a file's tests stay together);
# 0 runs it in this one.
TEST_JOBS ?= 2
# Libraries whose estimators the predictor serves: `make test` installs them (the model zoo
# tests serve their estimators). torch 2.13.0 is the version whose CPU build these machines hold.
MODEL_EXTRAS ?= xgboost,lightgbm,skorch,explain,spark
TORCH ?= torch==2.13.0
EXTRAS_STAMP := $(VENV)/.extras
# The same for the image (make docker-base EXTRAS=xgboost,lightgbm); none by default.
EXTRAS ?=

# Images. The version comes from pyproject.toml; CONTAINER_REGISTRY has no default on purpose.
DOCKER ?= docker
KUBECTL ?= kubectl
MINIKUBE ?= minikube
IMAGE_NAME ?= kserve-sklearn-predictor
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
CONTAINER_REGISTRY ?=
IMAGE = $(CONTAINER_REGISTRY)/$(IMAGE_NAME):$(VERSION)
MODEL_IMAGE_NAME ?= $(IMAGE_NAME)-model
MODELCAR_IMAGE_NAME ?= $(IMAGE_NAME)-modelcar
# The bases `make test-images` builds on (the Dockerfile's defaults; override where Docker Hub
# cannot be reached, e.g. with a local Python 3.11 image).
PYTHON_IMAGE ?= python:3.11.7-slim-bookworm
MODELCAR_BASE ?= busybox:1.37.0
SPARK_IMAGE = $(CONTAINER_REGISTRY)/$(IMAGE_NAME)-spark:$(VERSION)
MODEL_TAG ?= $(VERSION)
MODEL_URI ?=
MODEL_BUILD_DIR := build/model
OVERLAYS := minikube minikube-canary minikube-shadow minikube-bandit minikube-events minikube-monitoring \
	minikube-scale-to-zero \
	gke gke-canary gke-batch gke-multi-model gke-modelcar gke-hpa gke-keda
MANIFEST_DIRS := $(addprefix manifests/overlays/,$(OVERLAYS)) manifests/runtimes/cluster \
	manifests/runtimes/namespaced manifests/alternatives/custom-container

# Canary rollouts (scripts/canary.py).
NAME ?= taxi
NAMESPACE ?= default
PERCENT ?= 10
STEPS ?= 10,25,50,100
INTERVAL ?= 2m
ANALYSIS ?= analysis.yaml

.DEFAULT_GOAL := help
.PHONY: help venv model-extras demo-model dashboard docs demo-bundles serve test check fmt lock clean publish validate \
	docker-base docker-spark docker-model docker-modelcar docker-demo manifests deploy-minikube canary-minikube deploy-gke \
	canary-gke undeploy-minikube undeploy-gke e2e require-registry test-tools canary-start \
	canary-status canary-promote canary-rollback canary-auto bench test-images

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

# Serving needs the project and its own dependencies only; everything else (tests, docs, the
# rollout tooling) comes with the dev and rollout extras, installed on top when a target needs them.
$(SERVE_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e .
	@touch $@

$(STAMP): $(SERVE_STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,rollout]'
	@touch $@

venv: $(STAMP) ## Create .venv and install the project with its locked dependencies

$(EXTRAS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock '$(TORCH)' -e '.[$(MODEL_EXTRAS)]'
	@touch $@

model-extras: $(EXTRAS_STAMP) ## Install the xgboost, lightgbm, skorch and explain (shap) extras into .venv

$(DEMO_DIR)/model.joblib: $(SERVE_STAMP) predictor/demo.py
	$(PY) scripts/make_demo_model.py --out $(DEMO_DIR)

demo-model: $(DEMO_DIR)/model.joblib ## Build the demo taxi-trip model (fixed seed)

docs: $(STAMP) ## Build the documentation site into site/ (MkDocs, strict: any warning fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

dashboard: $(STAMP) ## Regenerate the Grafana dashboard JSON of manifests/components/monitoring
	$(PY) scripts/make_dashboard.py

demo-bundles: $(STAMP) ## Publish demo bundles taxi/1.0.0 and taxi/1.1.0 into demo/registry
	rm -rf $(DEMO_REGISTRY)
	$(PY) scripts/make_demo_bundles.py --registry $(DEMO_REGISTRY)

serve: $(DEMO_DIR)/model.joblib ## Serve the demo model on :8080 (REST) and :8081 (gRPC)
	$(PY) -m predictor --model_name $(MODEL_NAME) --model_uri $(DEMO_DIR)/ \
		--http_port $(HTTP_PORT) --grpc_port $(GRPC_PORT)

publish: $(STAMP) ## Publish a bundle: MODEL=file NAME=n VERSION=v TO=dir|gs://... [ARGS="--e2e f ..."]
	@test -n "$(MODEL)" -a -n "$(NAME)" -a -n "$(VERSION)" -a -n "$(TO)" || \
		{ echo "usage: make publish MODEL=model.joblib NAME=taxi VERSION=1.0.0 TO=gs://bucket/registry [ARGS=...]"; exit 2; }
	$(PY) -m predictor publish --model $(MODEL) --name $(NAME) --version $(VERSION) --to $(TO) $(ARGS)

validate: $(STAMP) ## Run every load-time check on a bundle without serving: URI=...
	@test -n "$(URI)" || { echo "usage: make validate URI=gs://bucket/registry/taxi/1.0.0/"; exit 2; }
	$(PY) -m predictor validate $(URI)

test: $(STAMP) $(EXTRAS_STAMP) test-tools ## Run the whole test suite
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

test-tools: ## Install the system tools the tests use (Prometheus, Redis, nginx, Chromium, Java for Spark; from Debian) when missing
	@missing=""; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v java >/dev/null 2>&1 || missing="$$missing default-jre-headless"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing (apt-get)"; \
			apt-get update -qq >/dev/null && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "not installed and cannot be installed here:$$missing; the tests that use them will fail"; \
		fi; \
	fi

canary-start: $(STAMP) ## Start a canary: MODEL_URI=... [NAME=taxi PERCENT=10 NAMESPACE=default ARGS=...]
	$(PY) scripts/canary.py start $(NAME) --model-uri $(MODEL_URI) --percent $(PERCENT) --namespace $(NAMESPACE) $(ARGS)

canary-status: $(STAMP) ## Show traffic, readiness and models [NAME=taxi NAMESPACE=default]
	$(PY) scripts/canary.py status $(NAME) --namespace $(NAMESPACE)

canary-promote: $(STAMP) ## Promote the canary and wait [NAME=taxi NAMESPACE=default]
	$(PY) scripts/canary.py promote $(NAME) --namespace $(NAMESPACE)

canary-rollback: $(STAMP) ## Roll the canary back and wait [NAME=taxi NAMESPACE=default]
	$(PY) scripts/canary.py rollback $(NAME) --namespace $(NAMESPACE)

canary-auto: $(STAMP) ## Progressive rollout with analysis [ANALYSIS=analysis.yaml STEPS=10,25,50,100 INTERVAL=2m]
	$(PY) scripts/canary.py auto $(NAME) --namespace $(NAMESPACE) --analysis $(ANALYSIS) \
		--steps $(STEPS) --interval $(INTERVAL)

check: $(STAMP) $(EXTRAS_STAMP) ## Lint, format check, type check and the import contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(PY) scripts/settings_reference.py --check

fmt: $(STAMP) ## Format the code and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(STAMP) ## Refresh requirements.lock from the current virtualenv
	$(BIN)/pip freeze --exclude-editable > requirements.lock

require-registry:
	@test -n "$(CONTAINER_REGISTRY)" || { \
		echo "CONTAINER_REGISTRY is not set; e.g. make docker-base CONTAINER_REGISTRY=europe-west1-docker.pkg.dev/my-project/models" >&2; \
		exit 2; }

docker-base: require-registry ## Build and push $(CONTAINER_REGISTRY)/kserve-sklearn-predictor:<version> [EXTRAS=xgboost,lightgbm]
	$(DOCKER) build --target runtime --build-arg EXTRAS=$(EXTRAS) --tag $(IMAGE) .
	$(DOCKER) push $(IMAGE)

docker-spark: require-registry ## Build and push $(CONTAINER_REGISTRY)/kserve-sklearn-predictor-spark:<version> (Java, pyspark; for the SparkApplication)
	mkdir -p $(MODEL_BUILD_DIR)  # Docker's legacy builder builds the model stage before this one
	$(DOCKER) build --target spark --build-arg EXTRAS=$(EXTRAS) --tag $(SPARK_IMAGE) .
	$(DOCKER) push $(SPARK_IMAGE)

# A validated model (bundle or registry) staged in $(MODEL_BUILD_DIR), built into Dockerfile target
# $(1) and tagged $(2):$(MODEL_TAG) (pushed when CONTAINER_REGISTRY is set).
define model_image
	@test -n "$(MODEL_URI)" || { echo "MODEL_URI is not set; e.g. make $@ MODEL_URI=gs://bucket/registry/taxi/1.4.0/" >&2; exit 2; }
	rm -rf $(MODEL_BUILD_DIR)
	$(PY) -m predictor validate $(MODEL_URI) --copy-to $(MODEL_BUILD_DIR)
	$(DOCKER) build --target $(1) --build-arg MODEL_DIR=$(MODEL_BUILD_DIR) \
		--tag $(if $(CONTAINER_REGISTRY),$(CONTAINER_REGISTRY)/)$(2):$(MODEL_TAG) .
	$(if $(CONTAINER_REGISTRY),$(DOCKER) push $(CONTAINER_REGISTRY)/$(2):$(MODEL_TAG))
endef

docker-model: $(STAMP) ## Bake a validated bundle into an image: MODEL_URI=gs://... [MODEL_TAG=1.4.0] [CONTAINER_REGISTRY=...]
	$(call model_image,model,$(MODEL_IMAGE_NAME))

docker-modelcar: $(STAMP) ## An OCI image holding only the validated model under /models, for storageUri: oci://...: MODEL_URI=gs://... [MODEL_TAG=1.4.0] [CONTAINER_REGISTRY=...]
	$(call model_image,modelcar,$(MODELCAR_IMAGE_NAME))

docker-demo: demo-bundles ## Build the image with both demo bundles baked in and load it into minikube
	rm -rf $(MODEL_BUILD_DIR)
	mkdir -p $(dir $(MODEL_BUILD_DIR))
	cp -r $(DEMO_REGISTRY) $(MODEL_BUILD_DIR)
	$(DOCKER) build --target model --build-arg MODEL_DIR=$(MODEL_BUILD_DIR) --tag $(MODEL_IMAGE_NAME):demo .
	$(MINIKUBE) image load $(MODEL_IMAGE_NAME):demo

manifests: $(STAMP) ## Render every overlay with kubectl kustomize (a syntax check; nothing is applied)
	@for dir in $(MANIFEST_DIRS); do \
		echo "--- $$dir"; \
		$(BIN)/kubectl kustomize $$dir > /dev/null || exit 1; \
	done

deploy-minikube: ## Deploy the demo (baked image) to the current minikube context
	$(KUBECTL) apply -k manifests/overlays/minikube

canary-minikube: ## Start the demo canary: taxi 1.1.0 takes 10% (Knative mode)
	$(KUBECTL) apply -k manifests/overlays/minikube-canary

undeploy-minikube: ## Delete the demo InferenceService from minikube
	$(KUBECTL) delete -k manifests/overlays/minikube --ignore-not-found

deploy-gke: ## Deploy to the current GKE context (edit manifests/overlays/gke first)
	$(KUBECTL) apply -k manifests/overlays/gke

canary-gke: ## Start a Standard-mode canary on GKE (edit manifests/overlays/gke-canary first)
	$(KUBECTL) apply -k manifests/overlays/gke-canary

undeploy-gke: ## Delete the InferenceService from GKE
	$(KUBECTL) delete -k manifests/overlays/gke --ignore-not-found

test-images: $(STAMP) ## Build the images and run them read-only as non-root (needs Docker) [PYTHON_IMAGE=...] [MODELCAR_BASE=...]
	PREDICTOR_TEST_PYTHON_IMAGE=$(PYTHON_IMAGE) PREDICTOR_TEST_MODELCAR_BASE=$(MODELCAR_BASE) \
		$(PY) -m pytest tests/image --with-images -m image -p no:xdist $(PYTEST_ARGS)

e2e: $(STAMP) ## End-to-end suite against minikube with KServe (after docker-demo)
	$(PY) -m pytest tests/e2e --with-e2e -m e2e $(PYTEST_ARGS)

bench: $(STAMP) ## Benchmark vs a plain kserve.Model and MLServer (server on core 0, load on core 1)
	@command -v wrk >/dev/null 2>&1 && command -v h2load >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk nghttp2-client >/dev/null; \
		else echo "install wrk and h2load (apt-get install wrk nghttp2-client) to run the benchmark" >&2; exit 2; fi; }
	@test -x bench/.venv-mlserver/bin/mlserver || { \
		$(PYTHON) -m venv bench/.venv-mlserver && \
		bench/.venv-mlserver/bin/pip install --quiet --disable-pip-version-check mlserver==1.7.1 mlserver-sklearn==1.7.1 \
			$$(grep -E '^(scikit-learn|numpy|joblib|scipy)==' requirements.lock); }
	$(PY) bench/run.py $(BENCH_ARGS)

clean: ## Remove the virtualenv, caches, build output and the demo models
	rm -rf $(VENV) $(DEMO_DIR) $(DEMO_REGISTRY) build .pytest_cache .mypy_cache .ruff_cache
