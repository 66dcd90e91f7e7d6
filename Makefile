# luaflow: one non-recursive build into build/ (build-asan/ for check-mem).
CC      ?= gcc
BUILD   ?= build
# Install: `make install PREFIX=/usr DESTDIR=/tmp/stage` (DESTDIR for packagers).
PREFIX  ?= /usr/local
DESTDIR ?=
bindir       ?= $(PREFIX)/bin
libdir       ?= $(PREFIX)/lib
includedir   ?= $(PREFIX)/include
luacmoddir   ?= $(libdir)/lua/5.4
pkgconfigdir ?= $(libdir)/pkgconfig
datadir      ?= $(PREFIX)/share
mandir       ?= $(datadir)/man
PKGS     = lua5.4 libcurl sqlite3 zlib
USE_WERROR ?= 1
WARNINGS = -Wall -Wextra -Wshadow -Wundef -Wwrite-strings -Wstrict-prototypes \
           -Wmissing-prototypes -Wredundant-decls $(if $(filter 1,$(USE_WERROR)),-Werror)
CFLAGS  ?= -O2 -g
VERSION := $(shell sed -n 's/^\#define LUAFLOW_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$$/\2/p' \
             include/luaflow.h | paste -sd. -)
# Only the public API (LUAFLOW_API in luaflow.h) is exported from the library.
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -MMD -MP $(WARNINGS) $(CFLAGS) \
             $(SANFLAGS) -Iinclude -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
             $(if $(LUA_INCDIR),-I$(LUA_INCDIR)) $(if $(SQLITE_INCDIR),-I$(SQLITE_INCDIR)) \
             $(if $(ZLIB_INCDIR),-I$(ZLIB_INCDIR))
LIBS     = $(shell pkg-config --libs $(PKGS)) -lm -ldl -pthread

LIB_SRCS = $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS = $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/lua_sources.o
LUA_SRCS = $(sort $(wildcard lua/luaflow/*.lua))

.PHONY: FORCE all examples test ctest check-mem check-threads bench install uninstall clean deps format rock \
        rock-install fuzz fuzz-smoke fuzz-build fuzz-deps

all: $(BUILD)/luaflow $(BUILD)/luaflow.so $(BUILD)/libluaflow.a $(BUILD)/luaflow.pc

deps:
	@./scripts/install-deps.sh

$(BUILD)/obj/%.o: src/%.c $(BUILD)/obj/cflags | $(BUILD)/obj
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# The objects are built again when the flags change (CFLAGS, USE_WERROR, ...).
$(BUILD)/obj/cflags: FORCE | $(BUILD)/obj
	@echo '$(CC) $(ALL_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS)' > $@

# The Lua half of the engine is compiled into the binary and the module, so
# `luaflow` finds it wherever it is started from.
$(BUILD)/lua2c: tools/lua2c.c | $(BUILD)/obj
	$(CC) -O2 -Wall -Wextra -o $@ $<

$(BUILD)/lua_sources.c: $(BUILD)/lua2c $(LUA_SRCS)
	$(BUILD)/lua2c $(LUA_SRCS) > $@

$(BUILD)/obj/lua_sources.o: $(BUILD)/lua_sources.c $(BUILD)/obj/cflags
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# Every object, internal names included: the luaflow binary, the C unit tests,
# the fuzzers and the benchmarks link this one.
$(BUILD)/libluaflow-internal.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# The installed library exports the public API only: one relocatable object
# whose hidden (internal) symbols are made local, so an embedding program
# cannot clash with or call them.
$(BUILD)/libluaflow.a: $(LIB_OBJS)
	ld -r -o $(BUILD)/obj/luaflow-all.o $^
	objcopy --localize-hidden $(BUILD)/obj/luaflow-all.o
	@rm -f $@
	ar rcs $@ $(BUILD)/obj/luaflow-all.o

# pkg-config's description of the installed library, for the PREFIX of this
# make (written again when it changes).
PC_LINES = 'prefix=$(PREFIX)' 'libdir=$(libdir)' 'includedir=$(includedir)' '' \
  'Name: luaflow' \
  'Description: Prefect 1 style workflows in Lua 5.4: flows, tasks and state handlers' \
  'Version: $(VERSION)' 'Requires: $(PKGS)' \
  'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lluaflow -lm -ldl -pthread'
$(BUILD)/luaflow.pc: FORCE | $(BUILD)/obj
	@printf '%s\n' $(PC_LINES) | cmp -s - $@ || printf '%s\n' $(PC_LINES) > $@

$(BUILD)/luaflow: $(BUILD)/obj/main.o $(BUILD)/libluaflow-internal.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LIBS) -Wl,-E

# The Lua C module: `require("luaflow")` from plain lua5.4 (lua symbols come
# from the host interpreter).
$(BUILD)/luaflow.so: $(LIB_OBJS)
	$(CC) $(SANFLAGS) -shared -o $@ $^ $(if $(CURL_LIBDIR),-L$(CURL_LIBDIR)) -lcurl \
	  $(if $(SQLITE_LIBDIR),-L$(SQLITE_LIBDIR)) -lsqlite3 $(if $(ZLIB_LIBDIR),-L$(ZLIB_LIBDIR)) -lz \
	  -lm -pthread

# Everything built needs the Debian packages first (pkg-config flags included);
# a LuaRocks build (DEPS=) leaves the system alone.
DEPS ?= deps
$(BUILD)/obj: | $(DEPS)
	@mkdir -p $@

# The C examples: a handler module (links nothing of luaflow) and an embedding
# program, built as a user builds them (their symbols visible, as by default).
EXAMPLE_CFLAGS = $(filter-out -fvisibility=hidden,$(ALL_CFLAGS))
examples: $(BUILD)/examples/handlers.so $(BUILD)/examples/run_flow

$(BUILD)/examples/handlers.so: examples/c_handler/handlers.c include/luaflow.h $(BUILD)/obj/cflags
	@mkdir -p $(BUILD)/examples
	$(CC) $(EXAMPLE_CFLAGS) -shared -o $@ $<

$(BUILD)/examples/run_flow: examples/embed/run_flow.c $(BUILD)/libluaflow.a $(BUILD)/obj/cflags
	@mkdir -p $(BUILD)/examples
	$(CC) $(EXAMPLE_CFLAGS) -o $@ $< $(BUILD)/libluaflow.a $(LIBS)

# Loopback HTTP/SMTP receiver the notifier specs start (TLS through OpenSSL).
$(BUILD)/receiver: spec/support/receiver.c | $(BUILD)/obj
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror $(SANFLAGS) -o $@ $< -lssl -lcrypto

# The codec from plain C (bare lua_States, garbage input); spec/codec_spec.lua runs it.
$(BUILD)/codec_test: spec/support/codec_test.c $(BUILD)/libluaflow-internal.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libluaflow-internal.a $(LIBS)

# The C unit tests of the Lua-free units (spec/c/, no busted): `make ctest`,
# or `build/ctest NAME` for one test in the runner's own process.
CTEST_OBJS = $(patsubst spec/c/%.c,$(BUILD)/ctest-obj/%.o,$(wildcard spec/c/*.c))

$(BUILD)/ctest-obj/%.o: spec/c/%.c $(BUILD)/obj/cflags | $(BUILD)/obj
	@mkdir -p $(@D)
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -Ispec/c -c $< -o $@

$(BUILD)/ctest: $(CTEST_OBJS) $(BUILD)/libluaflow-internal.a
	$(CC) $(SANFLAGS) -o $@ $(CTEST_OBJS) $(BUILD)/libluaflow-internal.a $(LIBS)

ctest: $(BUILD)/ctest
	$(BUILD)/ctest

# The C unit tests first, then busted; one count for both.
test: all examples $(BUILD)/receiver $(BUILD)/codec_test $(BUILD)/ctest
	@LUAFLOW_BUILD=$(BUILD) LUAFLOW_CTEST=$(BUILD)/ctest ./scripts/run-specs.sh

check-mem:
	$(MAKE) BUILD=build-asan SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" CFLAGS="-O1 -g" all examples build-asan/receiver build-asan/codec_test build-asan/ctest
	LUAFLOW_BUILD=build-asan LUAFLOW_SANITIZE=1 LUAFLOW_CTEST=build-asan/ctest ./scripts/run-specs.sh

# The executors under ThreadSanitizer (build-tsan/): the specs that run
# bodies in worker threads and processes, the Lua module loaded into lua5.4
# after the TSan runtime. Lua itself is not instrumented: each Lua state is
# used by one thread at a time, handed over through our own locks.
TSAN_SPECS ?= spec/executors_spec.lua spec/retries_spec.lua spec/timeouts_spec.lua \
              spec/handlers_spec.lua spec/signals_spec.lua
check-threads:
	$(MAKE) BUILD=build-tsan SANFLAGS="-fsanitize=thread" CFLAGS="-O1 -g" all examples build-tsan/receiver
	LUAFLOW_BUILD=build-tsan LUAFLOW_TSAN=1 LUAFLOW_SPEC_EXECUTORS=threads,processes \
	  ./scripts/run-specs.sh $(TSAN_SPECS)

# libFuzzer harnesses (fuzz/), built with Debian's clang under ASan and UBSan
# into build-fuzz/; `make fuzz FUZZ_TIME=600` runs each that long, CI runs
# `make fuzz-smoke` (20 s each). Only these targets need clang.
FUZZ_BUILD = build-fuzz
FUZZ_TIME ?= 600
FUZZERS = json http_headers redact secrets codec store_chunk
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -O1 -g $(FUZZ_SAN) -Iinclude -Isrc \
              $(shell pkg-config --cflags $(PKGS))

fuzz-deps:
	@./scripts/install-deps.sh fuzz

# (gcc's -Werror build judges the warnings; clang's own do not stop the fuzzers)
fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang CFLAGS="-O1 -g" \
	  WARNINGS="-Wall -Wextra" SANFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(FUZZ_BUILD)/libluaflow-internal.a
	@$(MAKE) --no-print-directory $(FUZZERS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_BUILD)/libluaflow-internal.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libluaflow-internal.a $(LIBS)

# the header parser is private to http.c: its harness compiles it in
$(FUZZ_BUILD)/fuzz_http_headers: fuzz/fuzz_http_headers.c src/http.c src/http.h
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(shell pkg-config --libs libcurl)

fuzz: fuzz-build
	@FUZZ_TIME=$(FUZZ_TIME) ./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZERS)

fuzz-smoke: fuzz-build
	@FUZZ_TIME=20 ./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZERS)

$(BUILD)/memcount.so: bench/memcount.c
	$(CC) -O2 -fPIC -shared -Wall -Wextra -o $@ $< -ldl

# The run store's own cost (engine-side appends, writer throughput, bytes a task).
$(BUILD)/store_bench: bench/store_bench.c $(BUILD)/libluaflow-internal.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libluaflow-internal.a $(LIBS)

bench: all examples $(BUILD)/memcount.so $(BUILD)/receiver
	@./scripts/bench.sh

INSTALLED = $(bindir)/luaflow $(libdir)/libluaflow.a $(includedir)/luaflow.h \
            $(luacmoddir)/luaflow.so $(pkgconfigdir)/luaflow.pc $(mandir)/man1/luaflow.1 \
            $(datadir)/bash-completion/completions/luaflow \
            $(datadir)/luaflow/types/luaflow.lua $(datadir)/doc/luaflow/reference.md

install: all
	install -d $(addprefix $(DESTDIR),$(sort $(dir $(INSTALLED))))
	install -m 755 $(BUILD)/luaflow $(DESTDIR)$(bindir)/luaflow
	install -m 644 $(BUILD)/libluaflow.a $(DESTDIR)$(libdir)/libluaflow.a
	install -m 644 include/luaflow.h $(DESTDIR)$(includedir)/luaflow.h
	install -m 644 $(BUILD)/luaflow.so $(DESTDIR)$(luacmoddir)/luaflow.so
	install -m 644 $(BUILD)/luaflow.pc $(DESTDIR)$(pkgconfigdir)/luaflow.pc
	install -m 644 docs/luaflow.1 $(DESTDIR)$(mandir)/man1/luaflow.1
	install -m 644 completion/luaflow.bash $(DESTDIR)$(datadir)/bash-completion/completions/luaflow
	install -m 644 types/luaflow.lua $(DESTDIR)$(datadir)/luaflow/types/luaflow.lua
	install -m 644 docs/reference.md $(DESTDIR)$(datadir)/doc/luaflow/reference.md

# Removes what install put there (and luaflow's own directories, once empty).
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(addprefix $(DESTDIR),$(datadir)/luaflow/types $(datadir)/luaflow \
	  $(datadir)/doc/luaflow) 2>/dev/null

# `luarocks make` (luaflow-*.rockspec): the Lua module alone, into LIBDIR.
rock: $(BUILD)/luaflow.so

rock-install:
	install -d $(LIBDIR)
	install -m 644 $(BUILD)/luaflow.so $(LIBDIR)/luaflow.so

format:
	clang-format -i src/*.c src/*.h include/*.h tools/*.c examples/*/*.c spec/support/*.c \
	  spec/c/*.c spec/c/*.h

clean:
	rm -rf build build-asan $(FUZZ_BUILD)

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/ctest-obj/*.d)
