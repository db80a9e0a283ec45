# The two commands README.md starts with: `make demo` and `make test`. Each sets up what it needs.
VENV := .venv/bin

.PHONY: demo test setup sandbox sandbox-down lint bench

demo: sandbox
	bash scripts/demo.sh

test: sandbox lint
	$(VENV)/pytest tests

setup:
	bash scripts/setup.sh

# The single-host sandbox, and a fleet of four API nodes beside it (pfs/targets/fleet.yaml).
sandbox: setup
	bash sandbox/up.sh --hosts 4

sandbox-down:
	bash sandbox/down.sh

lint: setup
	$(VENV)/ruff check src tests checks fixtures activation conftest.py bench sandbox
	$(VENV)/ruff format --check src tests checks fixtures activation conftest.py bench sandbox
	$(VENV)/mypy
	$(VENV)/mypy --strict sandbox/gateway.py

bench: sandbox
	$(VENV)/python bench/precheck.py
	$(VENV)/python bench/activation.py
	$(VENV)/python bench/killswitch.py
	$(VENV)/python bench/fleet.py
