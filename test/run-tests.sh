#!/usr/bin/env bash
# run-tests.sh — builds pg_influx with CI warnings (errors) and runs every test suite:
#
#   format       make format-check             every C++ source is as .clang-format formats it
#   exports      test/check-exports.sh         the installed pg_influx.so exports only entry points
#   unittest     make unittest                 GoogleTest, pure C++ (parser, chunking, ...)
#   fuzz         make fuzz                     libFuzzer smoke runs: parser, HTTP reader (2 tests)
#   regress      make installcheck             pg_regress, temporary preloaded instance
#   pgtap        pg_prove test/pgtap/*.sql     SQL API contract, throw-away cluster
#   integration  pytest test/integration       end-to-end: sockets, clients, processes
#
# Each suite's pass/fail counts are collected; the last line of output is
# "N passed, N failed" over all suites, and the exit status is non-zero if anything
# failed.  A suite with no tests yet counts 0/0; a suite whose runner breaks counts at
# least one failure.  Logs go to $PG_INFLUX_RESULTS_DIR (default log/test-results).
#
# Run as root (it installs packages and the extension; the servers themselves run as the
# unprivileged `postgres` user):   sudo test/run-tests.sh
#
# Environment: FUZZ_SECONDS (30), PG_INFLUX_SUITES (space-separated subset of the suites
# above, default all), PG_INFLUX_SKIP_BUILD=1 (skip deps/build/install), PYTEST_ARGS.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR=${PG_INFLUX_RESULTS_DIR:-$SRC_DIR/log/test-results}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
SUITES=${PG_INFLUX_SUITES:-format exports unittest fuzz regress pgtap integration}
PG_USER=postgres
PYTHON=/usr/bin/python3

TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()
TMP_DIRS=()
PGTAP_DATA=""

say() { echo "run-tests: $*"; }

cleanup() {
    if [[ -n $PGTAP_DATA && -f $PGTAP_DATA/postmaster.pid ]]; then
        as_pg "$BINDIR/pg_ctl" -D "$PGTAP_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    local d
    for d in "${TMP_DIRS[@]}"; do
        rm -rf "$d"
    done
}
trap cleanup EXIT

as_pg() { (cd / && runuser -u "$PG_USER" -- "$@"); }

# record SUITE PASSED FAILED NOTE — adds a suite's counts to the totals.
record() {
    local suite=$1 passed=$2 failed=$3 note=${4:-}
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    local line
    line=$(printf '%-12s %5d passed, %5d failed' "$suite" "$passed" "$failed")
    [[ -n $note ]] && line+="  ($note)"
    SUMMARY+=("$line")
    say "$line"
}

want() { [[ " $SUITES " == *" $1 "* ]]; }

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------------------
# Preparation: packages, CI build, install
# ---------------------------------------------------------------------------------------

if [[ $(id -u) -ne 0 ]]; then
    echo "run-tests: run as root (sudo $0): it installs packages and the extension" >&2
    exit 2
fi

rm -rf "$RESULTS_DIR"
mkdir -p "$RESULTS_DIR"
cd "$SRC_DIR"

BUILD_OK=1
if [[ ${PG_INFLUX_SKIP_BUILD:-0} != 1 ]]; then
    say "checking packages (test/deps.sh)"
    "$SRC_DIR/test/deps.sh"
    # Citus (test_citus.py): not packaged by Debian; built once per machine from the source
    # kept beside this repository (../shared/vendor/citus, about 5 minutes on 2 cores).
    citus_install="${PG_INFLUX_CITUS_INSTALL:-$SRC_DIR/../shared/vendor/citus/install.sh}"
    if [[ -x $citus_install ]] && ! "$citus_install" --check; then
        say "building Citus ($citus_install)"
        "$citus_install"
    fi
    say "building with CI=1 (warnings are errors); log: $RESULTS_DIR/build.log"
    if make CI=1 -j"$(nproc)" >"$RESULTS_DIR/build.log" 2>&1 \
        && make install >>"$RESULTS_DIR/build.log" 2>&1; then
        say "build and install: ok"
        # PostgreSQL loads the library lazily bound: a missing symbol of our own only shows
        # when the server refuses to start.  Catch it here, with its name.
        undefined=$(nm -D --undefined-only pg_influx.so | awk '{print $2}' | grep '^_ZN6influx' | c++filt || true)
        if [[ -n $undefined ]]; then
            BUILD_OK=0
            echo "$undefined" | tee -a "$RESULTS_DIR/build.log"
            record build 0 1 "pg_influx.so has undefined pg_influx symbols"
        fi
    else
        BUILD_OK=0
        tail -n 40 "$RESULTS_DIR/build.log"
        record build 0 1 "make CI=1 && make install failed; see build.log"
    fi
fi
BINDIR=$(pg_config --bindir)

# ---------------------------------------------------------------------------------------
# Checks that print TAP ("ok N" / "not ok N"): run_tap SUITE COMMAND...; the log is
# SUITE.log, failing lines are shown, a command that fails without a failing test counts
# as one failure.
run_tap() {
    local suite=$1 log=$RESULTS_DIR/$1.log rc=0 passed failed
    shift
    say "$suite: $*"
    "$@" >"$log" 2>&1 || rc=$?
    passed=$(grep -cE '^ok [0-9]+' "$log" || true)
    failed=$(grep -cE '^not ok [0-9]+' "$log" || true)
    [[ $failed -gt 0 ]] && grep -E '^not ok|^#' "$log" | head -n 40
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        tail -n 10 "$log"
        record "$suite" "$passed" 1 "$* failed (exit $rc); see $suite.log"
        return
    fi
    record "$suite" "$passed" "$failed"
}

# formatting — make format-check (one test per C++ source)
run_format() {
    run_tap format make -s format-check
}

# exported symbols — test/check-exports.sh on the installed library (2 tests)
run_exports() {
    run_tap exports "$SRC_DIR/test/check-exports.sh" "$(pg_config --pkglibdir)/pg_influx.so"
}

# ---------------------------------------------------------------------------------------
# (a) unit tests — GoogleTest
# ---------------------------------------------------------------------------------------
run_unittest() {
    local log=$RESULTS_DIR/unittest.log rc=0 passed=0 failed=0
    if ! compgen -G "test/unit/*.cpp" >/dev/null; then
        record unittest 0 0 "no tests yet"
        return
    fi
    say "unittest: make unittest"
    timeout 900 make CI=1 unittest >"$log" 2>&1 || rc=$?
    passed=$(sed -n 's/^\[  PASSED  \] \([0-9]\+\) tests\?\..*/\1/p' "$log" | tail -n1)
    failed=$(sed -n 's/^\[  FAILED  \] \([0-9]\+\) tests\?,.*/\1/p' "$log" | tail -n1)
    passed=${passed:-0}
    failed=${failed:-0}
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        tail -n 30 "$log"
        record unittest "$passed" 1 "runner failed (exit $rc); see unittest.log"
        return
    fi
    [[ $failed -gt 0 ]] && grep '^\[  FAILED  \]' "$log" | sort -u || true
    record unittest "$passed" "$failed"
}

# ---------------------------------------------------------------------------------------
# (b) fuzz smoke run — libFuzzer, one test per target, FUZZ_SECONDS split between them
# ---------------------------------------------------------------------------------------
run_fuzz() {
    local passed=0 failed=0 note="" target name log rc
    if [[ ! -f test/fuzz/fuzz_line_protocol.cpp ]]; then
        record fuzz 0 0 "no fuzz target yet"
        return
    fi
    # make target:binary; `make fuzz` runs both, each for half of FUZZ_SECONDS
    for target in fuzz-line-protocol:fuzz_line_protocol fuzz-http:fuzz_http_request; do
        name=${target#*:}
        [[ -f test/fuzz/$name.cpp ]] || continue
        log=$RESULTS_DIR/$name.log
        rc=0
        say "fuzz: make ${target%%:*} FUZZ_SECONDS=$FUZZ_SECONDS"
        timeout $((FUZZ_SECONDS + 600)) make "${target%%:*}" FUZZ_SECONDS="$FUZZ_SECONDS" \
            >"$log" 2>&1 || rc=$?
        if [[ $rc -eq 0 ]]; then
            passed=$((passed + 1))
            note+="${note:+; }$name: $(grep -o 'Done [0-9]* runs' "$log" | tail -n1 || true)"
        else
            grep -E 'ERROR|SUMMARY|error|check failed' "$log" | head -n 20 || true
            tail -n 20 "$log"
            failed=$((failed + 1))
            note+="${note:+; }$name: exit $rc, see $name.log (crash inputs: crash-* in the source dir)"
        fi
    done
    record fuzz "$passed" "$failed" "$note"
}

# ---------------------------------------------------------------------------------------
# (c) pg_regress — make installcheck on a copy of the tree owned by postgres
# (initdb refuses to run as root; a copy leaves the shared tree untouched)
# ---------------------------------------------------------------------------------------
run_regress() {
    local log=$RESULTS_DIR/regress.log rc=0 passed=0 failed=0 copy n m
    if [[ ! -f test/schedule ]] || ! grep -q '^test:' test/schedule; then
        record regress 0 0 "no test/schedule entries yet"
        return
    fi
    if [[ $BUILD_OK -eq 0 ]]; then
        record regress 0 1 "not run: build failed"
        return
    fi
    copy=$(mktemp -d /tmp/pg_influx_regress.XXXXXX)
    TMP_DIRS+=("$copy")
    tar -C "$SRC_DIR" --exclude=./.git --exclude=./log --exclude=./tmp_check --exclude=./results \
        -cf - . | tar -C "$copy" -xf -
    chown -R "$PG_USER": "$copy"
    say "regress: make installcheck (as $PG_USER, in $copy)"
    timeout 1200 runuser -u "$PG_USER" -- make -C "$copy" installcheck >"$log" 2>&1 || rc=$?
    if grep -qE '^ *All [0-9]+ tests passed' "$log"; then
        passed=$(sed -nE 's/^ *All ([0-9]+) tests passed.*/\1/p' "$log" | tail -n1)
    elif grep -qE '^ *[0-9]+ of [0-9]+ tests (failed|passed)' "$log"; then
        read -r n m < <(sed -nE 's/^ *([0-9]+) of ([0-9]+) tests failed.*/\1 \2/p' "$log" | tail -n1)
        if [[ -n ${n:-} ]]; then
            failed=$n
            passed=$((m - n))
        else
            # "N of M tests passed, K failed test(s) ignored."
            read -r n m < <(sed -nE 's/^ *([0-9]+) of ([0-9]+) tests passed.*/\1 \2/p' "$log" | tail -n1)
            passed=$n
            failed=0
        fi
    else
        passed=$(grep -cE '\.\.\. ok' "$log" || true)
        failed=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$log" || true)
    fi
    for f in regression.diffs regression.out; do
        [[ -f $copy/$f ]] && cp "$copy/$f" "$RESULTS_DIR/$f"
    done
    [[ -f $copy/tmp_check/log/postmaster.log ]] && cp "$copy/tmp_check/log/postmaster.log" "$RESULTS_DIR/regress-postmaster.log"
    if [[ -f $RESULTS_DIR/regression.diffs && -s $RESULTS_DIR/regression.diffs ]]; then
        echo "----- regression.diffs -----"
        head -n 400 "$RESULTS_DIR/regression.diffs"
        echo "----- end of regression.diffs -----"
    fi
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        tail -n 30 "$log"
        record regress "$passed" 1 "runner failed (exit $rc); see regress.log"
        return
    fi
    record regress "$passed" "$failed"
}

# ---------------------------------------------------------------------------------------
# (d) pgTAP — pg_prove against a throw-away preloaded cluster
# ---------------------------------------------------------------------------------------
run_pgtap() {
    local log=$RESULTS_DIR/pgtap.log rc=0 passed=0 failed=0 dir port udp tcp
    local files=()
    mapfile -t files < <(compgen -G "test/pgtap/*.sql" | sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        record pgtap 0 0 "no tests yet"
        return
    fi
    if [[ $BUILD_OK -eq 0 ]]; then
        record pgtap 0 1 "not run: build failed"
        return
    fi
    dir=$(mktemp -d /tmp/pg_influx_pgtap.XXXXXX)
    TMP_DIRS+=("$dir")
    chown "$PG_USER": "$dir"
    PGTAP_DATA=$dir/data
    port=$(free_port)
    udp=$(free_port)
    tcp=$(free_port)
    http=$(free_port)
    say "pgtap: cluster on port $port (influx UDP $udp, TCP $tcp, HTTP $http)"
    if ! as_pg "$BINDIR/initdb" -D "$PGTAP_DATA" -U postgres --auth=trust -E UTF8 --no-locale >"$log" 2>&1; then
        cat "$log"
        record pgtap 0 1 "initdb failed"
        return
    fi
    as_pg tee -a "$PGTAP_DATA/postgresql.conf" >/dev/null <<CONF
port = $port
listen_addresses = 'localhost'
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_influx'
max_worker_processes = 16
fsync = off
influx.database = 'postgres'
influx.udp_port = $udp
influx.tcp_port = $tcp
influx.http_port = $http
influx.flush_interval = 50
CONF
    if ! as_pg "$BINDIR/pg_ctl" -D "$PGTAP_DATA" -l "$dir/server.log" -w -t 60 start >>"$log" 2>&1; then
        cp "$dir/server.log" "$RESULTS_DIR/pgtap-server.log" 2>/dev/null || true
        tail -n 30 "$dir/server.log" || true
        record pgtap 0 1 "server did not start; see pgtap-server.log"
        return
    fi
    if ! as_pg "$BINDIR/psql" -X -q -h localhost -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION pg_influx' >>"$log" 2>&1; then
        tail -n 10 "$log"
        cp "$dir/server.log" "$RESULTS_DIR/pgtap-server.log" 2>/dev/null || true
        record pgtap 0 1 "CREATE EXTENSION failed; see pgtap.log"
        as_pg "$BINDIR/pg_ctl" -D "$PGTAP_DATA" -m fast -w stop >/dev/null 2>&1 || true
        return
    fi
    say "pgtap: pg_prove ${files[*]}"
    timeout 900 pg_prove --verbose -h localhost -p "$port" -U postgres -d postgres "${files[@]}" \
        >>"$log" 2>&1 || rc=$?
    as_pg "$BINDIR/pg_ctl" -D "$PGTAP_DATA" -m fast -w stop >/dev/null 2>&1 || true
    cp "$dir/server.log" "$RESULTS_DIR/pgtap-server.log" 2>/dev/null || true
    passed=$(grep -cE '^ *ok [0-9]+' "$log" || true)
    failed=$(grep -cE '^ *not ok [0-9]+' "$log" || true)
    # Tests planned but never run (a file that died half-way) are failures too.
    local missing
    missing=$(sed -nE 's/.*You planned ([0-9]+) tests? but ran ([0-9]+).*/\1 \2/p' "$log" \
        | awk '$1 > $2 { s += $1 - $2 } END { print s + 0 }')
    failed=$((failed + missing))
    if [[ $failed -gt 0 || $rc -ne 0 ]]; then
        grep -E '^ *not ok|^# |Bad plan|Failed|Dubious|ERROR' "$log" | head -n 60 || true
    fi
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        tail -n 20 "$log"
        record pgtap "$passed" 1 "pg_prove failed (exit $rc); see pgtap.log"
        return
    fi
    record pgtap "$passed" "$failed"
}

# ---------------------------------------------------------------------------------------
# (e) integration — pytest (Debian's python, for python3-influxdb and psycopg2)
# ---------------------------------------------------------------------------------------
run_integration() {
    local log=$RESULTS_DIR/integration.log rc=0 passed=0 failed=0 summary
    if ! compgen -G "test/integration/test_*.py" >/dev/null; then
        record integration 0 0 "no tests yet"
        return
    fi
    if [[ $BUILD_OK -eq 0 ]]; then
        record integration 0 1 "not run: build failed"
        return
    fi
    say "integration: $PYTHON -m pytest test/integration"
    # shellcheck disable=SC2086
    PYTHONDONTWRITEBYTECODE=1 PG_INFLUX_TEST_LOGDIR="$RESULTS_DIR/integration" \
        timeout 2400 "$PYTHON" -m pytest -p no:cacheprovider -rfE -v ${PYTEST_ARGS:-} \
        --junitxml="$RESULTS_DIR/integration.xml" test/integration >"$log" 2>&1 || rc=$?
    summary=$(grep -E '^=+ .*(passed|failed|error|no tests ran|skipped).* =+$' "$log" | tail -n1 || true)
    passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || true)
    failed=$(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+' || true)
    local errors
    errors=$(grep -oE '[0-9]+ errors?' <<<"$summary" | grep -oE '[0-9]+' || true)
    passed=${passed:-0}
    failed=$((${failed:-0} + ${errors:-0}))
    if [[ $failed -gt 0 ]]; then
        sed -n '/short test summary info/,$p' "$log"
    fi
    if [[ $rc -eq 5 && $passed -eq 0 && $failed -eq 0 ]]; then
        record integration 0 0 "no tests collected"
        return
    fi
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        tail -n 30 "$log"
        record integration "$passed" 1 "pytest failed (exit $rc); see integration.log"
        return
    fi
    record integration "$passed" "$failed" "${summary//=/}"
}

for suite in format exports unittest fuzz regress pgtap integration; do
    if want "$suite"; then
        "run_$suite" || record "$suite" 0 1 "runner crashed"
    fi
done

echo
say "summary (logs in $RESULTS_DIR):"
for line in "${SUMMARY[@]}"; do
    echo "  $line"
done
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[[ $TOTAL_FAILED -eq 0 ]]
