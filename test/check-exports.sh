#!/usr/bin/env bash
# check-exports.sh — pg_influx.so exports exactly the symbols PostgreSQL looks up by name.
#
#   test/check-exports.sh [path/to/pg_influx.so]     (default: the installed library)
#
# The entry points are read from the sources, not listed here: the module magic and
# _PG_init, every 'pg_influx_*' symbol that sql/pg_influx.sql binds (and its pg_finfo_*
# record), and every bgworker main that src/ names in bgw_function_name.  Output is TAP:
#   1  nothing else is exported (C++ internals, settings variables, template instances);
#   2  every entry point is exported (a hidden one fails only when PostgreSQL looks for it).
# The exit status is non-zero when either fails.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB=${1:-$(pg_config --pkglibdir)/pg_influx.so}

if [[ ! -f $LIB ]]; then
    echo "1..2"
    echo "not ok 1 - $LIB exists"
    echo "not ok 2 - $LIB exists"
    exit 1
fi

expected=$(
    {
        echo Pg_magic_func
        echo _PG_init
        grep -oE "'MODULE_PATHNAME', *'pg_influx_[a-z0-9_]+'" "$SRC_DIR/sql/pg_influx.sql" \
            | grep -oE "pg_influx_[a-z0-9_]+" | sed 'p; s/^/pg_finfo_/'
        grep -rohE --include='*.cpp' '"pg_influx_[a-z0-9_]+_main"' "$SRC_DIR"/src | tr -d '"'
    } | sort -u
)
exported=$(nm -D --defined-only "$LIB" | awk '{ print $NF }' | sort -u)

extra=$(comm -13 <(echo "$expected") <(echo "$exported"))
missing=$(comm -23 <(echo "$expected") <(echo "$exported"))

echo "1..2"
echo "# $LIB: $(echo "$exported" | grep -c .) exported, $(echo "$expected" | grep -c .) expected"
status=0
if [[ -z $extra ]]; then
    echo "ok 1 - nothing but the entry points is exported"
else
    echo "not ok 1 - nothing but the entry points is exported"
    echo "$extra" | c++filt | sed 's/^/#   unexpected: /'
    status=1
fi
if [[ -z $missing ]]; then
    echo "ok 2 - every entry point is exported"
else
    echo "not ok 2 - every entry point is exported"
    echo "$missing" | sed 's/^/#   missing: /'
    status=1
fi
exit $status
