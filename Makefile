# ragd - the two commands of the README, and their parts.
#   make run    install, build, ingest sample_corpus/ into ./data, serve on :8000
#   make test   install, build, run the unit and integration tests
BUILD ?= build
DATA ?= ./data
PORT ?= 8000
HOST ?= 127.0.0.1
VENV ?= .venv
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PYTHON ?= python3
MODELS ?= $(or $(RAGD_MODELS),./models)

.PHONY: all deps build venv models run test unit integration clean

all: build

deps:
	scripts/install_deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(VENV)/.installed: tests/integration/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tests/integration/requirements.txt
	touch $@

venv: deps $(VENV)/.installed

models: deps
	scripts/fetch_models.sh $(MODELS)

run: build models
	$(BUILD)/ragd ingest sample_corpus --data $(DATA)
	$(BUILD)/ragd serve --host $(HOST) --port $(PORT) --data $(DATA)

unit: build models
	cd $(BUILD) && ctest --output-on-failure

# The device tests a second time on ragd_cudasim (the server on emulated
# CUDA, built unless RAGD_CUDASIM=OFF), where their "with a GPU" branches run.
integration: build venv models
	RAGD_BIN=$(abspath $(BUILD))/ragd $(VENV)/bin/python -m pytest -q tests/integration
	if [ -x $(BUILD)/ragd_cudasim ]; then RAGD_BIN=$(abspath $(BUILD))/ragd_cudasim OPENBLAS_NUM_THREADS=1 \
	  $(VENV)/bin/python -m pytest -q tests/integration/test_device.py tests/integration/test_gen_device.py; fi

test: unit integration

clean:
	rm -rf $(BUILD)
