# Two-command promise: `make demo` and `make test` work on a fresh Debian 12 machine.
SANITIZE ?= 0
JOBS ?= $(shell nproc)
# ccache keys on paths relative to the checkout, so clones in other folders share the cache.
export CCACHE_BASEDIR := $(CURDIR)
CMAKE_FLAGS ?=

ifeq ($(SANITIZE),1)
BUILD ?= build-asan
CMAKE_FLAGS += -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDCDM_SANITIZE=ON -DDCDM_BUILD_BENCH=OFF
TEST_ENV = ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0:alloc_dealloc_mismatch=0 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 DCDM_SANITIZED=1 OMP_WAIT_POLICY=PASSIVE
else
BUILD ?= build
CMAKE_FLAGS += -DCMAKE_BUILD_TYPE=Release
TEST_ENV = OMP_WAIT_POLICY=PASSIVE
endif
# Optional AMGCL peer: `make AMGCL=/path/to/amgcl` (the folder holding amgcl/amg.hpp).
ifneq ($(AMGCL),)
CMAKE_FLAGS += -DDCDM_AMGCL_DIR=$(abspath $(AMGCL))
endif
ifeq ($(CI),true)
CMAKE_FLAGS += -DDCDM_WERROR=ON
endif

.PHONY: setup configure build demo movie pictures test fuzz bench frames clean docs

setup:
	@bash scripts/setup-deps.sh

configure: setup
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) > $(BUILD).configure.log 2>&1 || (cat $(BUILD).configure.log; exit 1)

build: configure
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

demo: build
	./$(BUILD)/dcdm demo

# A movie of smoke rising past the bunny at MOVIE_N^3 (default 128): a volume-rendered picture every
# 2nd frame, assembled with ffmpeg into demo-out/movie-bunny-N/render/movie.mp4 and movie.gif.
MOVIE_N ?= 128
MOVIE_FRAMES ?= 120
movie: build
	./$(BUILD)/dcdm simulate --scene bunny --n $(MOVIE_N) --frames $(MOVIE_FRAMES) --export-every 0 \
	  --render-every 2 --movie --fps 15 --seed 1 --quiet --resume --out demo-out/movie-bunny-$(MOVIE_N)

# The pictures of the README (docs/img/), from a movie run.
pictures: build
	bash scripts/make-pictures.sh $(BUILD)

test: build
	cd $(BUILD) && $(TEST_ENV) ctest --output-on-failure -j $(JOBS)

# libFuzzer: each parser fuzzed briefly (FUZZ_SECONDS each) with clang.
FUZZ_SECONDS ?= 30
fuzz: setup
	@CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDCDM_FUZZ=ON -DDCDM_NATIVE=OFF -DDCDM_BUILD_BENCH=OFF > build-fuzz.configure.log 2>&1 || (cat build-fuzz.configure.log; exit 1)
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_all
	@bash scripts/run-fuzzers.sh build-fuzz $(FUZZ_SECONDS)

# The standard evaluation frames (plume and bunny at 64^3 and 128^3) into frames/.
frames: build
	bash scripts/make-frames.sh $(BUILD)

# The side-by-side benchmark table; regenerates docs/BENCHMARKS.md.
bench: build
	bash scripts/bench.sh $(BUILD)

# The API reference of include/dcdm/ (Doxygen) into docs/api/html/index.html.
docs: setup
	doxygen docs/Doxyfile

clean:
	rm -rf build build-asan build-fuzz *.configure.log
