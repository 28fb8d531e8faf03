# decline-rescue: every target sets up what it needs (virtualenvs, dependencies) itself.
#   make demo    - the main job on the local stack, end to end, with a summary
#   make test    - lint (ruff, sam validate --lint), the test suite, a mutation smoke, sam build
#   make mutation - mutation testing of card data, webhooks, contract, writer, eligibility (tests/mutation/results.md; under an hour)
#   make local   - the local stack in the foreground until Ctrl-C (the sample checkout: http://127.0.0.1:8083/)
#   make browser - the browser tests alone: the sample checkout in headless Chromium (tests/browser)
#   make chaos   - the local stack on its worst day, then an audit (ARGS="--orders 300 --kill 0.05 ...")
#   make deploy-check - what deploying dev and prod into one account would hit (names, lint, build, layer); no account needed
#   make fuzz    - the API fuzzed from openapi.yaml on the local stack, longer than in make test (FUZZ_MAX_EXAMPLES=150, a new FUZZ_SEED)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SDK_VENV := .venv-sdk
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv demo test lint pytest unit browser build validate local bench chaos clean deploy-check fuzz mutation mutation-smoke

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

$(BIN)/.installed: requirements-dev.txt layers/shared/requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

# The official Cybersource SDK lives in its own virtualenv: it replaces urllib3 in
# whatever environment it is installed into (urllib3-future), which would break boto3.
$(SDK_VENV)/.installed: tests/sdk/requirements.txt
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
	@touch $@

venv: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/python -m devstack.demo

local: $(BIN)/.installed
	$(BIN)/python -m devstack

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sam validate --lint
	$(BIN)/cfn-lint -c I -- template.yaml

# pytest's exit code 5 (no tests collected) is a failure here, never a pass.
pytest: $(BIN)/.installed $(SDK_VENV)/.installed
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# needs Chromium (chromium or chromium-browser on PATH, or CHROMIUM_PATH): skipped with a
# warning without one, failed in CI; UPDATE_SCREENSHOTS=1 rewrites docs/screenshots/
browser: $(BIN)/.installed
	$(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

# sam build runs pip for the python3.13 runtime, so it needs python3.13 on PATH (pyenv
# users get theirs put there). Without one it is skipped with a warning, except in CI.
build: $(BIN)/.installed
	@py313=$$(command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.|$$)' | tail -1); \
	  if [ -n "$$py313" ]; then export PYENV_VERSION="$$(pyenv version-name):$$py313"; fi; \
	  if ! python3.13 --version >/dev/null 2>&1; then \
	    if [ -n "$$CI" ]; then echo "sam build needs python3.13 on PATH"; exit 1; fi; \
	    echo "WARNING: sam build skipped: it needs python3.13 on PATH (the functions' runtime)"; exit 0; \
	  fi; \
	  $(BIN)/sam build --parallel --cached || exit 1; \
	  if ! $(BIN)/python -m devstack.deploy_check --layer-pins; then \
	    echo "the cached SharedLayer is off constraints.txt's pins (sam's cache does not see that file): building it again"; \
	    rm -rf .aws-sam/cache && $(BIN)/sam build --parallel --cached && $(BIN)/python -m devstack.deploy_check --layer-pins; \
	  fi

validate: lint

# the suite runs the fuzz too (tests/integration/test_fuzz_api.py: 25 examples per operation
# and phase, a fixed seed, a couple of minutes); `make fuzz` runs it longer with a new seed
test: lint pytest mutation-smoke build

# the full run (ARGS="--modules carddata,webhooks --workers 2 ..."); the smoke: a fixed,
# seeded sample of card-data and webhook mutants, failing when one survives
mutation: $(BIN)/.installed
	$(BIN)/python -m tests.mutation.run $(ARGS)

mutation-smoke: $(BIN)/.installed
	$(BIN)/python -m tests.mutation.run --smoke

FUZZ_MAX_EXAMPLES ?= 150
FUZZ_SEED ?= $(shell date +%s)
fuzz: $(BIN)/.installed
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) FUZZ_TIMEOUT=3600 \
	  $(BIN)/python -m pytest -s tests/integration/test_fuzz_api.py $(PYTEST_ARGS)

# Translates the template for two stack names in one region (no two resources may claim
# one physical name), runs sam validate --lint and sam build (python3.13 required here),
# and verifies the built layer: arm64 only, .pyc for every module, constraints.txt's
# pins, under Lambda's 250 MB unzipped.
deploy-check: $(BIN)/.installed
	$(BIN)/python -m devstack.deploy_check $(ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m bench

chaos: $(BIN)/.installed
	$(BIN)/python -m devstack.chaos $(ARGS)

clean:
	rm -rf .aws-sam .local .pytest_cache .ruff_cache
