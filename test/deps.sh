#!/usr/bin/env bash
# deps.sh — installs every Debian 12 package that building pg_influx and running all of
# its test suites needs.  Idempotent and quiet: when everything is present it only checks;
# `apt-get update` runs only if something is missing.  Needs root.
#
#   test/deps.sh            install what is missing
#   test/deps.sh --check    exit 1 (listing them) if packages are missing; install nothing
set -euo pipefail

PACKAGES=(
    build-essential             # g++, make
    postgresql-15               # server binaries: initdb, pg_ctl, postgres
    postgresql-server-dev-15    # pg_config, PGXS, server headers, pg_regress
    libboost-dev                # Boost.Lockfree and Boost.Beast (header-only)
    libgtest-dev                # make unittest
    libbenchmark-dev            # make parser-bench
    libfast-float-dev           # float parsing in the line-protocol parser
    zlib1g-dev                  # gzip request bodies on the HTTP endpoint (errors, fallback)
    libdeflate-dev              # gzip request bodies on the HTTP endpoint (fast path)
    libssl-dev                  # TLS on the HTTP endpoint (influx.http_tls)
    openssl                     # test certificates for influx.http_tls
    clang                       # make fuzz (libFuzzer)
    libclang-rt-14-dev          # libFuzzer and sanitizer runtimes for clang 14
    clang-format                # make format-check (the .clang-format of this tree: version 14)
    postgresql-15-pgtap         # CREATE EXTENSION pgtap
    pgtap                       # pg_prove
    python3                     # integration tests
    python3-pytest
    python3-psycopg2
    python3-influxdb            # the real InfluxDB client (UDP) used by integration tests
    netcat-openbsd              # nc, for the README examples
    curl                        # HTTP endpoint tests and examples
    influxdb-client             # the influx 1.x CLI, an HTTP client in the integration tests
    sudo                        # README commands are written as `sudo ...`
    procps                      # ps/pgrep used by diagnostics
    golang-go                   # builds the Go InfluxDB client program of test_http_clients.py
    golang-github-influxdata-influxdb1-client-dev  # the Go 1.x client library (GOPATH mode, offline)
    nodejs                      # runs the npm InfluxDB clients of test_http_clients.py
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

# npm (test/integration/node/install.sh): Debian's package, unless the installed nodejs
# already brings it (NodeSource's does, and conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ "${1:-}" == "--check" ]]; then
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "deps.sh: missing packages (${missing[*]}); run as root: sudo test/deps.sh" >&2
    exit 1
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps.sh: apt-get failed" >&2
    exit 1
fi
echo "deps.sh: done"
