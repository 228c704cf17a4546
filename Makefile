# cnnserve: the commands people run. See README.md.
SHELL := /bin/bash
BUILD ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
PYTHON ?= /usr/bin/python3
ZOO_DIR ?= $(HOME)/.cache/cnnserve/zoo
ZOO_MODELS ?= all
CMAKE_FLAGS ?=

.PHONY: all deps configure build zoo zoo-int8 zoo-repository run test test-sanitize test-tsan fuzz soak bench clean format check

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

# INT8 for the zoo: a calibration file per model, ZOO_DIR/MODEL.calibration.txt (cnnbench calibrate on its batch-3
# input: the zoo's weights are random and no dataset stands behind them), for `cnnbench run --precision int8` and
# the cnnserve_int8 runtime of bench/engine_vs_peers.py, and ZOO_DIR/MODEL.int8.qdq.onnx, the same quantization
# for ONNX Runtime (models/zoo/quantize_qdq.py; the onnxruntime_int8 runtime). Remade when their source is newer.
zoo-int8: build zoo
	@for input in $(ZOO_DIR)/*.b3.input.npy; do m=$${input%.b3.input.npy}; \
	  [ $$m.calibration.txt -nt $$m.onnx ] || $(BUILD)/bin/cnnbench calibrate $$m.onnx --input $$input \
	    --out $$m.calibration.txt || exit 1; \
	  [ $$m.int8.qdq.onnx -nt $$m.calibration.txt ] || \
	    $(PYTHON) models/zoo/quantize_qdq.py $$m.onnx $$m.calibration.txt $$m.int8.qdq.onnx || exit 1; done

# Serves the default repository (models/repository) on 127.0.0.1:8001 until Ctrl-C. ARGS adds flags,
# e.g. make run ARGS="--address 0.0.0.0:8001 --log-level debug".
run: deps build
	$(BUILD)/bin/cnnserve --model-repository models/repository $(ARGS)

# A repository with the default models plus the ImageNet-shape zoo (random weights) for benchmarks:
# build/bin/cnnserve --model-repository $(ZOO_REPOSITORY)
ZOO_REPOSITORY ?= $(BUILD)/zoo-repository
zoo-repository: zoo
	models/repository/add_zoo_models.sh --zoo-dir $(ZOO_DIR) --with-default $(ZOO_REPOSITORY)

test: deps build zoo
	cd $(BUILD) && CNNSERVE_ZOO_DIR=$(ZOO_DIR) ctest --output-on-failure -j 2 --timeout 1800
	$(MAKE) --no-print-directory test-sanitize

# The unit and integration tests once more under AddressSanitizer + UndefinedBehaviorSanitizer (the zoo parity
# runs, big models through unchanged code paths, are left to the plain build). Compiled at -Og, one CTest test per
# GoogleTest executable (CMakeLists.txt, tests/CMakeLists.txt: both for CI's time); a failure names the case.
SANITIZE_BUILD ?= build-sanitize
test-sanitize: deps zoo
	cmake -S . -B $(SANITIZE_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCNNSERVE_SANITIZE=ON \
	  -DCNNSERVE_ZOO_DIR=$(ZOO_DIR) $(CMAKE_FLAGS)
	cmake --build $(SANITIZE_BUILD) -j $(JOBS)
	cd $(SANITIZE_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  CNNSERVE_ZOO_DIR=$(ZOO_DIR) ctest --output-on-failure -j 2 --timeout 1800 -LE 'parity|soak|precision'

# The concurrency-heavy suites (batcher, ensemble, inference with real oneDNN runs, preprocessing and the decode
# budget, metrics) under ThreadSanitizer in $(TSAN_BUILD). tests/tsan.supp suppresses reports inside Debian's
# uninstrumented libraries only (GDAL's and Abseil's own locks). The gRPC transport and the integration tests are
# not in the list: libgrpc is not instrumented, so TSan cannot see its synchronisation and reports thousands of
# races inside it. Nor are the two tests that run engine work on 2 OpenMP threads: libgomp is not instrumented
# either, so its barriers look like races between the lane thread and the OpenMP workers.
TSAN_BUILD ?= build-tsan
TSAN_SUITES := batching_test ensemble_test servables_test service_test preprocess_test metrics_test
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCNNSERVE_TSAN=ON \
	  -DCNNSERVE_ZOO_DIR=$(ZOO_DIR) $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target $(TSAN_SUITES)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  CNNSERVE_ZOO_DIR=$(ZOO_DIR) ctest --output-on-failure -j 2 --timeout 1800 \
	  -L '^($(subst $(eval) ,|,$(TSAN_SUITES)))$$' \
	  -E 'Zoo|SessionBatchRunnerTest\.(MultiThreadedInstancesRunOnTheirLane|WaitingForTheLaneCountsAsQueueNotCompute)'

# Coverage-guided fuzzing (tests/fuzz/README.md): the libFuzzer targets built with clang-14, ASan and UBSan in
# $(FUZZ_BUILD), then each run for FUZZ_SECONDS (default 300) on a copy of its seed corpus; prints executions and
# coverage per target, fails on a crash and leaves the input in $(FUZZ_BUILD)/crashes/. `make test` replays the
# seed corpora and every kept crash input (CTest label fuzz).
FUZZ_BUILD ?= build-fuzz
FUZZ_TARGETS := fuzz_image_input fuzz_onnx_import fuzz_model_config fuzz_kserve_request fuzz_classify_request
fuzz: deps
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCNNSERVE_FUZZ=ON -DCNNSERVE_BUILD_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZ_TARGETS)
	tests/fuzz/run_fuzz.sh $(FUZZ_BUILD)

# Soak (issue 13): bench/soak.py for SOAK_SECONDS (default 1800) of mixed native + KServe traffic over every
# default model and the ensemble (5% bad inputs, 5 ms deadlines, client cancellations), the server's RSS sampled
# every 10 s; fails on an answer a call may not get, a crash, RSS growth after the warm-up, or a bad exit.
# Writes bench/results/soak/soak_rss.csv and soak.json. `make test` runs a 45 s version (CTest label soak).
SOAK_SECONDS ?= 1800
soak: deps build
	$(PYTHON) bench/soak.py --seconds $(SOAK_SECONDS) --cnnserve $(BUILD)/bin/cnnserve --stubs $(BUILD)/python \
	  --out bench/results/soak

# The container image (root Dockerfile) built with podman and tested for real: deploy/tests/container_test.sh
# (runs ../shared/container/oci-setup.sh; root; about 10-15 min cold, podman's layer cache makes reruns quick).
# `make test` runs the other deploy tests (manifests, nginx scale-out) through CTest (tests/deploy).
.PHONY: test-container
test-container: deps build
	deploy/tests/container_test.sh $(BUILD)

# Every benchmark (engine vs ONNX Runtime and PyTorch, server curves, server overhead, TLS and tokens), the plots
# and the tables of bench/RESULTS.md, in about 20 minutes on the 2-core machine: bench/run_all.sh (SUITES= picks
# some of peers, curves, overhead, security, plots).
bench: deps build zoo
	BUILD=$(BUILD) ZOO_DIR=$(ZOO_DIR) bench/run_all.sh $(SUITES)

# The source-tree checks alone, in seconds (`make test` runs them too, CTest label checks): the dependency table
# of DESIGN.md section 1 over every #include, and the file (800) and function (120) line limits.
check:
	@status=0; $(PYTHON) tools/scripts/check_deps.py || status=1; \
	  $(PYTHON) tools/scripts/check_sizes.py || status=1; exit $$status

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')
