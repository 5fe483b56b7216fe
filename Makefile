# The two commands of the README: `make demo` and `make test`. Each sets up
# what it needs (a virtualenv in .venv with the project and its test extra).
# The cloud extras are there so that the tests check the pinned SDKs against
# Ray's cloud providers (tests/unit/test_cloud_sdks.py); -c installs exactly the
# versions every cluster node gets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_JOB := cluster_configs/jobs/digits_mwms.yaml

.PHONY: setup demo test test-unit bench clean

$(STAMP): pyproject.toml cluster_configs/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,aws,gcp,azure]' -c cluster_configs/constraints.txt
	touch $(STAMP)

setup: $(STAMP)

# The demo starts fresh each time: --fresh moves an earlier run's job folder
# aside (runs/digits-mwms.old-<time>) and deletes nothing. Run the CLI without
# it to see a re-run resume from the newest checkpoint instead.
demo: setup
	$(BIN)/python -m controller run $(DEMO_JOB) --fresh

test: setup
	$(BIN)/python -m pytest -ra --durations=15

test-unit: setup
	$(BIN)/python -m pytest -ra tests/unit

# The benchmark of BENCHMARKS.md: ours vs hand-launched TF vs Ray Train, medians of 3.
bench: setup
	$(BIN)/python -m bench --reps 3

clean:
	rm -rf $(VENV) runs .pytest_cache
