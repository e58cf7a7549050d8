# The two set-up commands of the README: `make demo` (the main job) and `make test`
# (`make test-fast` is the quick loop: every test not marked slow).
# Every target installs what it needs first; the compiled extension is rebuilt only when csrc/ changes.
PYTHON ?= python
PIP := $(PYTHON) -m pip
EXT_SOURCES := setup.py $(wildcard csrc/*.cpp csrc/*.h csrc/cpu/* csrc/cuda/*)

.PHONY: install demo test test-fast bench-cpu
install: .build-stamp

.build-stamp: $(EXT_SOURCES) pyproject.toml
	$(PIP) install "setuptools>=77" wheel ninja torch==2.14.1 torchvision==0.29.1
	MAX_JOBS=$${MAX_JOBS:-2} \
		$(PIP) install --no-build-isolation -e ".[dev]"
	touch $@

demo: install
	freqalign train

test: install
	FREQALIGN_REQUIRE_EXT=1 $(PYTHON) -m pytest -q

test-fast: install
	FREQALIGN_REQUIRE_EXT=1 $(PYTHON) -m pytest -q -m "not slow"

bench-cpu: install
	$(PYTHON) -m benchmarks.kernels.report_cpu --out benchmarks/results/kernels
