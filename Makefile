# modelroll — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
CLUSTER_DIR ?= $(CURDIR)/.cluster
export CLUSTER_DIR
# kwok: fake nodes only; real: also one real node (containerd, runc, kubelet, kube-proxy)
NODE ?= kwok
export NODE

include hack/targets.mk

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml runtime_images/pyproject.toml
	@echo "installing the operator, the runtime and the dev tools into $(VENV) (minutes when cold)"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e './runtime_images[all,test]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtualenv with the operator, the runtime and the dev tools
	@echo "virtualenv ready: $(VENV)"

# `make demo` and `make test` install what they need first, each step idempotent and quick
# when warm. They are run in order from the recipe, not as prerequisites, so that even
# under -j nothing starts before hack/install-deps.sh has passed: where it cannot install
# (not root, not Debian) it stops first, with one line saying what is missing and the fix.
.PHONY: deps
deps: ## Install the system packages the demo and the tests need (Debian/Ubuntu; root only when one is missing)
	hack/install-deps.sh

.PHONY: binaries
binaries: ## Build (or reuse) the Kubernetes (kubelet included), etcd, kwok and crictl binaries in ~/.cache/modelroll
	COMPONENTS=all hack/control-plane/build.sh

.PHONY: cluster-up
cluster-up: ## Start the local control plane with kwok nodes (NODE=real adds a real node)
	hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and remove its state
	hack/cluster.sh down

# Every shell script: hack/ (the cluster, the real node, the images), CI, the benchmarks.
SHELL_SCRIPTS = .ci/run $(sort $(shell find hack benchmarks -type f -name '*.sh'))

.PHONY: lint
lint: venv ## Run ruff, mypy (strict; tests and benchmarks non-strict), shellcheck and the import-linter contracts
	$(VENV)/bin/ruff check operator runtime_images tests benchmarks
	$(VENV)/bin/ruff format --check operator runtime_images tests benchmarks
	$(VENV)/bin/mypy operator/modelroll runtime_images/modelroll_runtime
	$(VENV)/bin/mypy tests benchmarks
	$(VENV)/bin/shellcheck $(SHELL_SCRIPTS)
	PYTHONPATH=operator $(VENV)/bin/lint-imports --no-cache

.PHONY: unit
unit: venv ## Unit tests of the pure code
	$(VENV)/bin/pytest tests/unit

.PHONY: images
images: ## Build (or reuse) the runtime, operator, pause and CoreDNS images without Docker
	hack/images.sh build all

.PHONY: e2e
e2e: ## Only the end-to-end tests on a real node (real pods of the real images); installs what they need
	hack/install-deps.sh --root-for "make e2e"
	$(MAKE) --no-print-directory venv binaries images
	$(VENV)/bin/pytest tests/e2e

.PHONY: test
test: ## Run the whole suite: lint, unit, runtime, integration and real-node e2e tests; installs what it needs
	hack/install-deps.sh --root-for "make test"
	$(MAKE) --no-print-directory venv binaries images
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest tests

.PHONY: test-frameworks
test-frameworks: venv ## PyTorch and TensorFlow models through modelroll package, served by the runtime (installs both from PyPI into ~/.cache/modelroll/frameworks on a first run)
	nice $(VENV)/bin/python tests/support/frameworks.py
	$(VENV)/bin/pytest tests/frameworks

.PHONY: install
install: ## Apply the CRDs to $KUBECONFIG
	kubectl apply --server-side --force-conflicts -k crds/
	hack/wait-crd.sh modeldeployments.modelroll.io

.PHONY: run
run: venv ## Run the operator from source, in the foreground, against $KUBECONFIG
	$(PY) -m modelroll

.PHONY: demo
demo: ## The main job end to end on real pods of a local cluster: deploy, predict, canary under load; installs what it needs
	hack/install-deps.sh
	$(MAKE) --no-print-directory venv binaries
	PY=$(abspath $(PY)) hack/demo.sh
