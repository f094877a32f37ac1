# pg_influx — PGXS build for a C++17 PostgreSQL extension.
#
#   make                 build pg_influx.so
#   make install         install library, control file and scripts
#   make installcheck    pg_regress against a temporary preloaded instance
#   make unittest        GoogleTest unit tests for the pure C++ modules
#   make fuzz            libFuzzer targets: line-protocol parser, HTTP request reader (clang)
#   make parser-bench    Google Benchmark of the parser
#   make format          apply .clang-format to every C++ source
#   make format-check    list the C++ sources .clang-format would change (fails if any)

EXTENSION  = pg_influx
EXTVERSION = 1.4
MODULE_big = pg_influx

# src/<area>/*.cpp: the areas are described in src/README.md.
SRCS = $(sort $(wildcard src/*.cpp src/*/*.cpp))
SRC_HEADERS = $(wildcard src/*.hpp src/*/*.hpp)
OBJS = $(SRCS:.cpp=.o)

# Pure C++ modules (src/protocol, src/http): no PostgreSQL headers, linked into unit tests
# and fuzzers too.  src/http uses Boost.Beast (header-only), libdeflate and zlib.
PURE_SRCS = $(sort $(wildcard src/protocol/*.cpp src/http/*.cpp))
PURE_LIBS = -lz -ldeflate

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA       = $(filter-out sql/$(EXTENSION)--$(EXTVERSION).sql,$(wildcard sql/$(EXTENSION)--*.sql))

# pg_regress: every sql/*.sql that is not an extension script must be in test/schedule.
REGRESS_TESTS = $(sort $(basename $(notdir $(filter-out sql/$(EXTENSION)%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf --temp-instance=./tmp_check \
               --load-extension=$(EXTENSION) --encoding=UTF8 --no-locale

PG_CPPFLAGS = -Isrc
# Hidden by default: only the entry points PostgreSQL looks up by name are exported
# (PGDLLEXPORT, see src/core/compat.hpp; test/check-exports.sh checks the list).
# Frame pointers, as PostgreSQL's own C code is built here: `perf record -g` then sees
# whole call chains through the workers' code (docs/benchmarks.md profiles).
PG_CXXFLAGS = -std=c++17 -fvisibility=hidden -fvisibility-inlines-hidden -fno-omit-frame-pointer \
              -Wno-register -Wno-missing-field-initializers $(if $(CI),-Werror)
PG_CFLAGS   = $(if $(CI),-Werror)
SHLIB_LINK  = -lstdc++ $(PURE_LIBS) -lssl -lcrypto

# Bitcode is only used to inline SQL-callable functions into JIT-compiled queries; none
# of ours benefit, and the bitcode rule does not see PG_CXXFLAGS (-std=c++17).
override with_llvm = no

EXTRA_CLEAN = tmp_check results regression.diffs regression.out \
              test/unit/unittest test/fuzz/fuzz_line_protocol test/fuzz/fuzz_http_request \
              bench/parser_bench

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Linux: a version script hides the rest too (what libstdc++'s headers declare visible).
ifeq ($(PORTNAME),linux)
SHLIB_LINK += -Wl,--version-script=$(srcdir)/src/exports.map
$(shlib): src/exports.map
endif

# PGXS tracks no header dependencies: a changed header rebuilds every object, so that no
# object keeps an old struct layout.
$(OBJS): $(SRC_HEADERS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# A regress file missing from the schedule is a build error, not a silently skipped test.
.PHONY: check-schedule
check-schedule:
	@for t in $(REGRESS_TESTS); do \
	  grep -qx "test: $$t" test/schedule || { echo "sql/$$t.sql is not in test/schedule" >&2; exit 1; }; \
	done

# PGXS only defines installcheck when REGRESS is set; we run the schedule ourselves so that
# test order (and the schedule check above) is explicit.
.PHONY: installcheck
installcheck: check-schedule
	$(pg_regress_installcheck) $(REGRESS_OPTS) --schedule=$(srcdir)/test/schedule

# ---- pure C++ tests and tools (no server needed) ----
CXX_TOOL_FLAGS = -std=c++17 -O2 -g -Wall -Wextra $(if $(CI),-Werror) -Isrc

test/unit/unittest: $(PURE_SRCS) $(wildcard test/unit/*.cpp) $(SRC_HEADERS) test/zlib_reference.hpp
	$(CXX) $(CXX_TOOL_FLAGS) -o $@ $(PURE_SRCS) $(wildcard test/unit/*.cpp) -lgtest -lgtest_main -lpthread \
	  $(PURE_LIBS)

.PHONY: unittest
unittest: test/unit/unittest
	./test/unit/unittest

test/fuzz/fuzz_line_protocol: $(PURE_SRCS) test/fuzz/fuzz_line_protocol.cpp $(SRC_HEADERS)
	clang++ -std=c++17 -g -O1 -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ $(PURE_SRCS) test/fuzz/fuzz_line_protocol.cpp $(PURE_LIBS)

test/fuzz/fuzz_http_request: $(PURE_SRCS) test/fuzz/fuzz_http_request.cpp $(SRC_HEADERS) test/zlib_reference.hpp
	clang++ -std=c++17 -g -O1 -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ $(PURE_SRCS) test/fuzz/fuzz_http_request.cpp $(PURE_LIBS)

# FUZZ_SECONDS is the total: each of the two targets runs for half of it.
.PHONY: fuzz fuzz-line-protocol fuzz-http
FUZZ_SECONDS ?= 60
FUZZ_HALF = $(shell echo $$(( ($(FUZZ_SECONDS) + 1) / 2 )))
fuzz: fuzz-line-protocol fuzz-http

fuzz-line-protocol: test/fuzz/fuzz_line_protocol
	mkdir -p test/fuzz/corpus.work
	./test/fuzz/fuzz_line_protocol -max_total_time=$(FUZZ_HALF) -max_len=4096 \
	  test/fuzz/corpus.work test/fuzz/corpus

fuzz-http: test/fuzz/fuzz_http_request
	mkdir -p test/fuzz/corpus_http.work
	./test/fuzz/fuzz_http_request -max_total_time=$(FUZZ_HALF) -max_len=8192 \
	  test/fuzz/corpus_http.work test/fuzz/corpus_http

bench/parser_bench: $(PURE_SRCS) bench/parser_bench.cpp $(SRC_HEADERS)
	$(CXX) -std=c++17 -O2 -DNDEBUG -Isrc -o $@ $(PURE_SRCS) bench/parser_bench.cpp -lbenchmark -lpthread \
	  $(PURE_LIBS)

.PHONY: parser-bench
parser-bench: bench/parser_bench
	./bench/parser_bench

# ---- formatting (.clang-format) ----
FORMAT_SRCS = $(sort $(wildcard src/*.cpp src/*.hpp src/*/*.cpp src/*/*.hpp test/unit/*.cpp \
                                test/fuzz/*.cpp test/*.hpp bench/*.cpp))

.PHONY: format format-check
format:
	clang-format -i $(FORMAT_SRCS)

# TAP, one test per file, so that test/run-tests.sh counts them.
format-check:
	@n=0; bad=0; echo "1..$(words $(FORMAT_SRCS))"; \
	for f in $(FORMAT_SRCS); do n=$$((n+1)); \
	  if clang-format $$f | cmp -s - $$f; then echo "ok $$n - $$f"; \
	  else echo "not ok $$n - $$f (make format)"; bad=1; fi; \
	done; exit $$bad
