# Everything runs from a local virtualenv that the targets create on first use.
# `make help` lists the targets.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PY := $(BIN)/python

MODEL_NAME ?= taxi
DEMO_DIR ?= demo/model
HTTP_PORT ?= 8080
GRPC_PORT ?= 8081
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv demo-model serve test check fmt lock clean publish validate

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

venv: $(STAMP) ## Create .venv and install the project with its locked dependencies

$(DEMO_DIR)/model.joblib: $(STAMP) predictor/demo.py
	$(PY) scripts/make_demo_model.py --out $(DEMO_DIR)

demo-model: $(DEMO_DIR)/model.joblib ## Build the demo taxi-trip model (fixed seed)

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

test: $(STAMP) ## Run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

check: $(STAMP) ## Lint, format check and type check
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: $(STAMP) ## Format the code and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(STAMP) ## Refresh requirements.lock from the current virtualenv
	$(BIN)/pip freeze --exclude-editable > requirements.lock

clean: ## Remove the virtualenv, caches and the demo model
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
