# cnnserve: the commands people run. See README.md.
SHELL := /bin/bash
BUILD ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
PYTHON ?= /usr/bin/python3
ZOO_DIR ?= $(HOME)/.cache/cnnserve/zoo
ZOO_MODELS ?= all
CMAKE_FLAGS ?=

.PHONY: all deps configure build zoo run test bench clean format

all: build

deps:
	@tools/scripts/install_deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCNNSERVE_ZOO_DIR=$(ZOO_DIR) $(CMAKE_FLAGS)

configure: $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Exports the model zoo (random seeded weights) and PyTorch reference outputs into $(ZOO_DIR). Idempotent.
zoo:
	$(PYTHON) models/zoo/export.py --out $(ZOO_DIR) --models $(ZOO_MODELS) --reference-batches 1,3

# Until the server lands: print the per-layer table of the models in the default repository.
run: deps build
	@for f in models/repository/*/[0-9]*/model.onnx; do echo "== $$f"; $(BUILD)/bin/cnnbench inspect $$f; echo; done

test: deps build zoo
	cd $(BUILD) && CNNSERVE_ZOO_DIR=$(ZOO_DIR) ctest --output-on-failure -j 2 --timeout 1800

bench: deps build zoo
	bench/engine_vs_peers.sh

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')
