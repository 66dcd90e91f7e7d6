# luaflow: one non-recursive build into build/ (build-asan/ for check-mem).
CC      ?= gcc
BUILD   ?= build
PREFIX  ?= /usr/local
PKGS     = lua5.4 libcurl sqlite3 zlib
WARNINGS = -Wall -Wextra -Werror -Wshadow -Wundef -Wwrite-strings \
           -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -MMD -MP $(WARNINGS) $(CFLAGS) \
             $(SANFLAGS) -Iinclude -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
             $(if $(LUA_INCDIR),-I$(LUA_INCDIR)) $(if $(SQLITE_INCDIR),-I$(SQLITE_INCDIR)) \
             $(if $(ZLIB_INCDIR),-I$(ZLIB_INCDIR))
LIBS     = $(shell pkg-config --libs $(PKGS)) -lm -ldl -pthread

LIB_SRCS = $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS = $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/lua_sources.o
LUA_SRCS = $(sort $(wildcard lua/luaflow/*.lua))

.PHONY: all examples test check-mem bench install clean deps format rock rock-install \
        fuzz fuzz-smoke fuzz-build fuzz-deps

all: $(BUILD)/luaflow $(BUILD)/luaflow.so $(BUILD)/libluaflow.a

deps:
	@./scripts/install-deps.sh

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# The Lua half of the engine is compiled into the binary and the module, so
# `luaflow` finds it wherever it is started from.
$(BUILD)/lua2c: tools/lua2c.c | $(BUILD)/obj
	$(CC) -O2 -Wall -Wextra -o $@ $<

$(BUILD)/lua_sources.c: $(BUILD)/lua2c $(LUA_SRCS)
	$(BUILD)/lua2c $(LUA_SRCS) > $@

$(BUILD)/obj/lua_sources.o: $(BUILD)/lua_sources.c
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libluaflow.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/luaflow: $(BUILD)/obj/main.o $(BUILD)/libluaflow.a
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

# The C examples: a handler module (links nothing of luaflow) and an embedding program.
examples: $(BUILD)/examples/handlers.so $(BUILD)/examples/run_flow

$(BUILD)/examples/handlers.so: examples/c_handler/handlers.c include/luaflow.h | $(BUILD)/obj
	@mkdir -p $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) -shared -o $@ $<

$(BUILD)/examples/run_flow: examples/embed/run_flow.c $(BUILD)/libluaflow.a
	@mkdir -p $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libluaflow.a $(LIBS)

# Loopback HTTP/SMTP receiver the notifier specs start (TLS through OpenSSL).
$(BUILD)/receiver: spec/support/receiver.c | $(BUILD)/obj
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror $(SANFLAGS) -o $@ $< -lssl -lcrypto

# The codec from plain C (bare lua_States, garbage input); spec/codec_spec.lua runs it.
$(BUILD)/codec_test: spec/support/codec_test.c $(BUILD)/libluaflow.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libluaflow.a $(LIBS)

test: all examples $(BUILD)/receiver $(BUILD)/codec_test
	@LUAFLOW_BUILD=$(BUILD) ./scripts/run-specs.sh

check-mem:
	$(MAKE) BUILD=build-asan SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" CFLAGS="-O1 -g" all examples build-asan/receiver build-asan/codec_test
	LUAFLOW_BUILD=build-asan LUAFLOW_SANITIZE=1 ./scripts/run-specs.sh

# libFuzzer harnesses (fuzz/), built with Debian's clang under ASan and UBSan
# into build-fuzz/; `make fuzz FUZZ_TIME=600` runs each that long, CI runs
# `make fuzz-smoke` (20 s each). Only these targets need clang.
FUZZ_BUILD = build-fuzz
FUZZ_TIME ?= 600
FUZZERS = json http_headers redact secrets codec
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -O1 -g $(FUZZ_SAN) -Iinclude -Isrc \
              $(shell pkg-config --cflags $(PKGS))

fuzz-deps:
	@./scripts/install-deps.sh fuzz

# (gcc's -Werror build judges the warnings; clang's own do not stop the fuzzers)
fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang CFLAGS="-O1 -g" \
	  WARNINGS="-Wall -Wextra" SANFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(FUZZ_BUILD)/libluaflow.a
	@$(MAKE) --no-print-directory $(FUZZERS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_BUILD)/libluaflow.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libluaflow.a $(LIBS)

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
$(BUILD)/store_bench: bench/store_bench.c $(BUILD)/libluaflow.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libluaflow.a $(LIBS)

bench: all examples $(BUILD)/memcount.so
	@./scripts/bench.sh

install: all
	install -d $(PREFIX)/bin $(PREFIX)/lib $(PREFIX)/include \
	  $(PREFIX)/lib/lua/5.4
	install -m 755 $(BUILD)/luaflow $(PREFIX)/bin/luaflow
	install -m 644 $(BUILD)/libluaflow.a $(PREFIX)/lib/libluaflow.a
	install -m 644 include/luaflow.h $(PREFIX)/include/luaflow.h
	install -m 644 $(BUILD)/luaflow.so $(PREFIX)/lib/lua/5.4/luaflow.so
	install -d $(PREFIX)/share/man/man1 $(PREFIX)/share/bash-completion/completions \
	  $(PREFIX)/share/luaflow/types $(PREFIX)/share/doc/luaflow
	install -m 644 docs/luaflow.1 $(PREFIX)/share/man/man1/luaflow.1
	install -m 644 completion/luaflow.bash $(PREFIX)/share/bash-completion/completions/luaflow
	install -m 644 types/luaflow.lua $(PREFIX)/share/luaflow/types/luaflow.lua
	install -m 644 docs/reference.md $(PREFIX)/share/doc/luaflow/reference.md

# `luarocks make` (luaflow-*.rockspec): the Lua module alone, into LIBDIR.
rock: $(BUILD)/luaflow.so

rock-install:
	install -d $(LIBDIR)
	install -m 644 $(BUILD)/luaflow.so $(LIBDIR)/luaflow.so

format:
	clang-format -i src/*.c src/*.h include/*.h tools/*.c examples/*/*.c spec/support/*.c

clean:
	rm -rf build build-asan $(FUZZ_BUILD)

-include $(wildcard $(BUILD)/obj/*.d)
