# The project's entry points. Each target installs what it needs first (tools/setup_env.sh is
# idempotent and returns in seconds once the environment is complete).
PY := .venv/bin/python

.PHONY: setup demo demo-dense test lint

setup:
	bash tools/setup_env.sh

# the embedded default, with jemalloc purging freed memory after 5 s: anything mode's and the
# point prompts' changing tensor shapes grew a never-purging heap (sca_cpu_malloc's default for
# the paper's sizes) by ~40 MB a step
demo: setup
	MALLOC_CONF=oversize_threshold:0,dirty_decay_ms:5000,muzzy_decay_ms:5000 \
		$(PY) tools/train_net.py --config-file configs/sca_demo.yaml

# the embedded dense-captioning config: masks, proposals and captions, about 10 minutes on 2 cores
demo-dense: setup
	$(PY) tools/train_net.py --config-file configs/sca_demo_dense.yaml

test: setup lint
	$(PY) -m pytest -q tests

lint:
	$(PY) -m ruff check projects tools tests setup.py
