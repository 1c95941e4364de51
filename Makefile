# The two commands of the README: `make run` and `make test`. Everything else is a helper.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# One compiler cache shared by every checkout of the project: paths are made relative to the
# checkout, so a fresh clone (CI) reuses what earlier builds compiled.
export CCACHE_DIR ?= $(HOME)/.cache/custos-ccache
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
export CCACHE_MAXSIZE ?= 5G

.PHONY: all deps build run test test-asan bench fuzz format lint clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/build.ninja
	@cmake --build $(BUILD) -j $(JOBS)

# A dev server with the attested secret-release demo (scripts/demo).
run: build
	@scripts/demo $(BUILD)/src/custos

test: build
	@cd $(BUILD) && ctest -j $(JOBS) --output-on-failure --timeout 600

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (CI runs this too).
test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCUSTOS_SANITIZE=ON -DCUSTOS_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest -j $(JOBS) --output-on-failure -LE integration --timeout 600

bench: build
	@scripts/bench $(BUILD)

# libFuzzer targets (clang), each run for a bounded time.
fuzz: deps
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCUSTOS_FUZZ=ON -DCUSTOS_BENCH=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	@FUZZ_JOBS=$(JOBS) scripts/fuzz $(FUZZ_BUILD)

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

lint: $(BUILD)/build.ninja
	@git ls-files 'src/*.cpp' | xargs clang-tidy -p $(BUILD) --quiet

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
