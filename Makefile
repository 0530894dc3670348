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
BUILD   ?= build/san
endif
BUILD   ?= build

SRCS      := $(wildcard src/*.c)
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/%)
BENCH_SRCS:= $(wildcard bench/*.c)
BENCH_BINS:= $(BENCH_SRCS:bench/%.c=$(BUILD)/bench_%)

.PHONY: all deps run test unit blackbox bench clean format
all: $(BUILD)/veltrix $(UNIT_BINS) $(BENCH_BINS)

deps:
	@bash scripts/deps.sh

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj:
	mkdir -p $@

$(BUILD)/veltrix: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: tests/unit/test_%.c tests/unit/harness.h $(LIB_OBJS)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/bench_%: bench/%.c $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

run: deps
	$(MAKE) $(BUILD)/veltrix
	$(BUILD)/veltrix serve --demo

# Every test: unit binaries, then the black-box suite against the real binary.
test: deps
	$(MAKE) all
	@BUILD=$(BUILD) bash tests/run_all.sh

unit: all
	@BUILD=$(BUILD) ONLY=unit bash tests/run_all.sh

blackbox: all
	@BUILD=$(BUILD) ONLY=blackbox bash tests/run_all.sh

bench: deps
	@bash scripts/deps.sh --bench
	$(MAKE) all
	@BUILD=$(BUILD) bash bench/run.sh

clean:
	rm -rf build

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c bench/*.c
