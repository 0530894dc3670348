# Veltrix — plain Makefile. Variants: make SANITIZE=address,undefined, make DEBUG=1.
CC      ?= cc
PKGS    := libh2o-evloop jansson sqlite3 libqrencode libcrypto libpq
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -DH2O_USE_LIBUV=0 \
           -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lwslay -lssl -lpthread -lm
ifdef DEBUG
CFLAGS  += -O0
endif
ifdef SANITIZE
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
comma   := ,
# One build directory per sanitizer set (their objects must not mix).
ifeq ($(SANITIZE),address,undefined)
BUILD   ?= build/san
else
BUILD   ?= build/san-$(subst $(comma),-,$(SANITIZE))
endif
endif
# ThreadSanitizer: the first data race stops the process (a test then fails with the
# report in the server's stderr). The tests scale their memory bounds for its shadow
# memory (tests/blackbox/vx.py, SANITIZE).
export TSAN_OPTIONS ?= halt_on_error=1 second_deadlock_stack=1
export SANITIZE
# A benchmark-only variant: engine_apply does not extend the hash chain (every hash is
# zero), so that bench/run.sh hashcost can measure what the chain adds to a scan.
ifdef NOCHAIN
CFLAGS  += -DVELTRIX_BENCH_NO_CHAIN
BUILD   ?= build/nochain
endif
BUILD   ?= build
# The builds that `make test`, `make run` and `make bench` start use every core (a clean
# clone's three test builds take half as long on two).
JOBS    ?= $(shell nproc 2>/dev/null || echo 1)

SRCS      := $(wildcard src/*.c)
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
# The web pages (web/, served by src/api_web.c): web/build.mjs bundles them into a
# generated C file, shared by every build variant.
WEB_C     := build/web/web_assets.c
OBJS      += $(BUILD)/obj/web_assets.o
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/%)
BENCH_SRCS:= $(wildcard bench/*.c)
BENCH_BINS:= $(BENCH_SRCS:bench/%.c=$(BUILD)/bench_%)

.PHONY: all deps run test unit blackbox browser web bench clean format fuzz fuzz-build sim
all: $(BUILD)/veltrix $(UNIT_BINS) $(BENCH_BINS) $(BUILD)/sim

deps:
	@bash scripts/deps.sh

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj:
	mkdir -p $@

# Web pages: npm ci (from web/package-lock.json), then esbuild through web/build.mjs.
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "web: npm not found: run make deps (Debian nodejs, npm)" >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund
	touch $@

$(WEB_C): web/build.mjs $(wildcard web/src/*) web/node_modules/.package-lock.json
	node web/build.mjs $@

$(BUILD)/obj/web_assets.o: $(WEB_C) src/api_int.h | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

web: $(WEB_C)

$(BUILD)/veltrix: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: tests/unit/test_%.c tests/unit/harness.h $(LIB_OBJS)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/bench_%: bench/%.c $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# Deterministic simulation (tests/sim/): the real engine, idempotency table and store.
$(BUILD)/sim: tests/sim/sim.c $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

sim: $(BUILD)/sim
	@BUILD=$(BUILD) ONLY=sim bash tests/run_all.sh

# libFuzzer targets: every tests/fuzz/<t>/fuzz_<t>.c, linked with the src objects built
# by clang with ASan+UBSan into build/fuzz/. `make fuzz` runs each for FUZZ_SECONDS.
FUZZ_CC     := clang
FUZZ_DIR    := build/fuzz
FUZZ_CFLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
               -DH2O_USE_LIBUV=0 -D_GNU_SOURCE -Isrc -Itests/fuzz -fno-omit-frame-pointer \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_SRCS   := $(wildcard tests/fuzz/*/fuzz_*.c)
FUZZ_BINS   := $(foreach f,$(FUZZ_SRCS),$(FUZZ_DIR)/$(basename $(notdir $(f))))
FUZZ_OBJS   := $(filter-out $(FUZZ_DIR)/obj/main.o,$(SRCS:src/%.c=$(FUZZ_DIR)/obj/%.o)) \
               $(FUZZ_DIR)/obj/web_assets.o
FUZZ_SECONDS ?= 60

$(FUZZ_DIR)/obj/%.o: src/%.c $(wildcard src/*.h) | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_DIR)/obj:
	mkdir -p $@

$(FUZZ_DIR)/obj/web_assets.o: $(WEB_C) src/api_int.h | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

.PRECIOUS: $(FUZZ_DIR)/obj/%.o
.SECONDEXPANSION:
$(FUZZ_DIR)/fuzz_%: tests/fuzz/$$*/fuzz_$$*.c $(wildcard tests/fuzz/*.h) $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LDLIBS)

fuzz-build:
	@bash scripts/deps.sh --fuzz
	$(MAKE) -j$(JOBS) $(FUZZ_BINS)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh

run: deps
	$(MAKE) -j$(JOBS) $(BUILD)/veltrix
	$(BUILD)/veltrix serve --demo

# Every test: unit binaries, then the black-box suite against the real binary.
# The fuzz targets run briefly (FUZZ_CI_SECONDS each) in the plain build only: they are
# ASan+UBSan builds already, so the SANITIZE variant skips them.
test: deps
	$(MAKE) -j$(JOBS) all
ifndef SANITIZE
	$(MAKE) fuzz-build
	@BUILD=$(BUILD) bash tests/run_all.sh
else
	@BUILD=$(BUILD) NO_FUZZ=1 SAN_PASS=1 bash tests/run_all.sh
endif

unit: all
	@BUILD=$(BUILD) ONLY=unit bash tests/run_all.sh

blackbox: all
	@BUILD=$(BUILD) ONLY=blackbox bash tests/run_all.sh

browser: all
	@BUILD=$(BUILD) ONLY=browser bash tests/run_all.sh

bench: deps
	@bash scripts/deps.sh --bench
	$(MAKE) -j$(JOBS) all
	@BUILD=$(BUILD) bash bench/run.sh

clean:
	rm -rf build

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c bench/*.c
