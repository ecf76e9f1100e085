# Install, observability and kind targets; included from the Makefile.

.PHONY: generate
generate: venv ## Regenerate everything derived from the typed API and config: CRD, API reference, chart copies, dist/install.yaml
	PYTHON=$(PY) hack/render-install.sh

.PHONY: dist
dist: generate ## Same as generate (kept for habit)

.PHONY: dist-check
dist-check: venv ## Fail when any generated file (CRD, API reference, chart copies, dist) is stale
	PYTHON=$(PY) hack/render-install.sh --check

.PHONY: helm
helm: ## Build (or reuse) helm v3 from its Go module into ~/.cache/modelroll
	hack/helm/build.sh

.PHONY: kstatus
kstatus: ## Build (or reuse) the kstatus helper (hack/kstatus, on sigs.k8s.io/cli-utils) into ~/.cache/modelroll
	hack/kstatus/build.sh

.PHONY: kind-demo
kind-demo: ## In-cluster demo on kind (needs Docker; not run in CI): build, load, deploy, predict
	hack/kind-demo.sh

.PHONY: kind-down
kind-down: ## Delete the kind-demo cluster
	hack/kind-demo.sh down
