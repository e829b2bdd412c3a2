# The project's entry points. Each target installs what it needs first (tools/setup_env.sh is
# idempotent and returns in seconds once the environment is complete).
PY := .venv/bin/python

.PHONY: setup demo test lint

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/train_net.py --config-file configs/sca_demo.yaml

test: setup lint
	$(PY) -m pytest -q tests

lint:
	$(PY) -m ruff check projects tools tests setup.py
