# One obvious command for each job. The first run bootstraps uv into .tools/ and the
# locked environment into .venv/ (uv.lock pins every version that was tested), its
# bytecode compiled at install, as pip does: every flow run is a new process, and one that
# may not write .pyc files (a read-only install, PYTHONDONTWRITEBYTECODE) would otherwise
# compile Prefect, polars and pandera from source each time (~1.3 s here).
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv

.PHONY: sync demo test lint bench clean

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

sync: $(UV)
	$(UV) sync --locked --quiet --compile-bytecode
	@echo "hotlist and prefect are in $(VENV)/bin; '. $(VENV)/bin/activate' puts them on PATH"

demo: sync
	$(VENV)/bin/hotlist demo

test: sync
	$(VENV)/bin/pytest

lint: sync
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: sync
	$(VENV)/bin/python -m bench.run
	$(VENV)/bin/python -m bench.lookup_leg
	$(VENV)/bin/python -m bench.serving_state_leg

clean:
	rm -rf .tools $(VENV) .pytest_cache .mypy_cache .ruff_cache
