# Entry points for people and CI. Each target installs what it needs first.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
DATA_DIR ?= ./var

.PHONY: all deps configure build test run clean format fuzz reliability

all: build

deps:
	./scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The whole default suite (unit + integration). Benchmarks never run here.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

# Starts bertd with its embedded defaults: data in $(DATA_DIR), models from $(DATA_DIR)/models.
# Builds only the binaries a user runs, not the test suites.
run: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target bertd bertctl
	mkdir -p $(DATA_DIR)/models
	./$(BUILD_DIR)/server/bertd --data_dir=$(DATA_DIR) $(ARGS)

# libFuzzer targets (clang, ASan + UBSan) in build-fuzz/, FUZZ_SECONDS each; see docs/reliability.md.
FUZZ_SECONDS ?= 30
fuzz: deps
	./scripts/fuzz.sh $(FUZZ_SECONDS)

# Load test (3 minutes) and fault tests; rewrites docs/reliability.md's results. Not part of test.
reliability: deps
	BUILD_DIR=$(BUILD_DIR) ./scripts/reliability.sh

clean:
	rm -rf $(BUILD_DIR)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i
