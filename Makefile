# Two commands on a fresh machine with Python 3.11 and make: `make preview` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev

.PHONY: typecheck preview plan plan-snapshots test system-packages e2e e2e-setup lint format demo bench-serving bench-loop-stalls bench-drift bench-inference diagram review docs policy lock clean venv scan scan-venv iam-eval

$(BIN)/.installed: requirements/dev.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	touch $@

venv: $(BIN)/.installed

## The offline plan of a stack (no cloud account, no credentials): make preview STACK=prod
preview: venv
	$(BIN)/python -m tools.plan --stack $(STACK)

plan: preview

## Rewrites the recorded plans (tests/infra/plans/<stack>.json) that tests/infra/test_plan_snapshots.py compares
## against: run it when a change to the plan is intended, and commit the new snapshots with the change.
plan-snapshots: venv
	for stack in dev prod; do $(BIN)/python -m tools.plan --stack $$stack --format json > tests/infra/plans/$$stack.json || exit 1; done

## The database servers the suite starts (PostgreSQL, MariaDB): apt-get installs whichever is missing.
system-packages:
	scripts/ensure-system-packages.sh

## The whole test suite: infra under Pulumi mocks, app and jobs against real moto/PostgreSQL on loopback.
test: venv system-packages $(if $(shell command -v npm),iam-eval)
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=tests/twin

## The offline twin (docs/twin.md): real images run under the plan's own settings, the loop end to end.
## Installs Debian's podman, runc, debootstrap and docker-registry when missing (root or sudo).
e2e-setup: venv
	$(BIN)/python -m twin.system

e2e: e2e-setup
	$(BIN)/python -m pytest -s -v --timeout=3600 tests/twin

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Types (pyproject [tool.mypy]): strict on contracts/, model_package/, infra/; the default elsewhere. Part of lint.
typecheck: venv
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Offline demo: synthetic data -> train -> package -> verify -> serve -> a few requests.
demo: venv
	$(BIN)/python -m retrain.demo

bench-serving: venv
	$(BIN)/python -m bench.serving

bench-loop-stalls: venv
	$(BIN)/python -m bench.loop_stalls

bench-drift: venv
	$(BIN)/python -m bench.drift

bench-inference: venv
	$(BIN)/python -m bench.inference

## Regenerates the Mermaid diagram (docs/diagram.mmd) and the README's copy from the dev plan.
diagram: venv
	$(BIN)/python -m tools.plan --stack dev --write-diagram

## Offline review of a stack: cost estimate and the difference to prod.
review: venv
	$(BIN)/python -m tools.plan --stack $(STACK) --cost
	$(BIN)/python -m tools.plan --stack dev --diff prod

## Regenerates the README's configuration reference from infra/settings.py.
docs: venv
	$(BIN)/python -m tools.plan.config_reference --write

lock: venv
	{ echo "# Full pinned lock of the development/CI environment (pip freeze). Regenerate with 'make lock'."; \
	  $(BIN)/pip freeze --exclude-editable; } > requirements/dev.lock

## Security scan (docs/security.md): both stacks' offline plans as Terraform plans, scanned by checkov
## (pinned in requirements/scan.txt, own venv: its dependencies conflict with ours) against the one skip
## file policy/checkov-skips.yaml. Also installs the IAM evaluation engine for tests/security.
SCAN_VENV := .venv-scan
$(SCAN_VENV)/.installed: requirements/scan.txt
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/scan.txt
	touch $@

scan-venv: $(SCAN_VENV)/.installed

tools/iam/node_modules/.installed: tools/iam/package.json tools/iam/package-lock.json
	cd tools/iam && npm ci --no-audit --no-fund --silent
	touch $@

iam-eval: tools/iam/node_modules/.installed

scan: venv scan-venv iam-eval
	$(BIN)/python -m tools.scan --stacks dev prod

clean:
	rm -rf $(VENV) $(SCAN_VENV) tools/iam/node_modules .pytest_cache .ruff_cache
