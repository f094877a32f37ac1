#!/usr/bin/env bash
# crosscheck.sh — the COPY comparison with plain tools only (psql, nc, awk), as a check on
# bench/run.py.  Needs a running server with pg_influx preloaded and listening (for example
# `sudo test/cluster.sh start`); run as a user that can connect as a superuser.
#
#   PGHOST=localhost PGPORT=5499 INFLUX_TCP_PORT=8094 bench/crosscheck.sh [rounds]
#
# Each round: server-side COPY (FORMAT binary) of 1M cpu rows into cpu_copy, timed by the
# server's clock around the statement and its commit; then the same rows as line protocol
# over 4 nc connections into cpu, timed from starting nc until the commit of the last of
# its rows (with track_commit_timestamp = on; else until the statement start of the first
# count(*) that sees 1M rows); then the rows of both tables are compared.  The table `cpu`
# in the target schema is replaced.
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${1:-3}
TCP=${INFLUX_TCP_PORT:-8094}
PSQL=(psql -X -At -v ON_ERROR_STOP=1 -U "${PGUSER:-postgres}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

make -s loadgen
./loadgen --mode binary --lines 1000000 --out "$WORK/cpu.bin" --quiet
./loadgen --mode lp --lines 1000000 --out "$WORK/cpu.lp" --quiet
chmod 644 "$WORK/cpu.bin"
for k in 0 1 2 3; do awk -v k=$k 'NR % 4 == k' "$WORK/cpu.lp" > "$WORK/cpu.$k.lp"; done

COLS="(_time timestamptz NOT NULL, host text, cpu text, usage_user float8, usage_system float8,
       usage_idle float8, usage_nice float8, usage_iowait float8, usage_irq float8,
       usage_softirq float8, usage_steal float8, usage_guest float8, usage_guest_nice float8)"
now() { date +%s.%N; }
COMMIT_TS=$("${PSQL[@]}" -c "SHOW track_commit_timestamp")
echo "pg_influx's clock stops at: $([[ $COMMIT_TS == on ]] && echo "the last commit's timestamp (track_commit_timestamp)" || echo "the start of the first count(*) that sees every row (set track_commit_timestamp = on for the exact commit time)")"
for round in $(seq "$ROUNDS"); do
    "${PSQL[@]}" -q -c "DROP TABLE IF EXISTS cpu, cpu_copy" -c "CREATE TABLE cpu $COLS" \
        -c "CREATE TABLE cpu_copy $COLS" -c "CHECKPOINT"
    # COPY is timed by the server, from before the statement to after its commit, so that
    # starting psql counts for neither loader.
    { read -r t0; read -r t1; } < <("${PSQL[@]}" -q -c "SELECT extract(epoch FROM clock_timestamp())" \
        -c "COPY cpu_copy FROM '$WORK/cpu.bin' (FORMAT binary)" \
        -c "SELECT extract(epoch FROM clock_timestamp())")
    "${PSQL[@]}" -q -c "CHECKPOINT"
    t2=$(now)
    for k in 0 1 2 3; do nc -q0 127.0.0.1 "$TCP" < "$WORK/cpu.$k.lp" & done
    wait
    # The clock stops when the count(*) that first sees every row started (the server's
    # statement_timestamp(), same clock as `date`): its snapshot, taken right then, already
    # held them.  Neither starting psql nor the scan (~45 ms at 1M rows) is counted, but
    # polls are that far apart.  With track_commit_timestamp on, the stop is exact instead:
    # the commit time of the last transaction that wrote rows of the table.
    deadline=$((SECONDS + 300))
    while :; do
        IFS='|' read -r n t3 < <("${PSQL[@]}" -c "SELECT count(*), extract(epoch FROM statement_timestamp()) FROM cpu")
        [[ $n == 1000000 ]] && break
        ((SECONDS < deadline)) || { echo "crosscheck: timed out waiting for rows" >&2; exit 1; }
        sleep 0.01
    done
    if [[ $COMMIT_TS == on ]]; then
        t3=$("${PSQL[@]}" -c "SELECT extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) FROM cpu")
    fi
    differing=$("${PSQL[@]}" -c "SELECT (SELECT count(*) FROM (TABLE cpu EXCEPT ALL TABLE cpu_copy) a)
                                      + (SELECT count(*) FROM (TABLE cpu_copy EXCEPT ALL TABLE cpu) b)")
    awk -v r="$round" -v c="$(echo "$t1 - $t0" | bc)" -v i="$(echo "$t3 - $t2" | bc)" -v d="$differing" \
        'BEGIN { printf "round %d: COPY binary %.0f rows/s, pg_influx via nc %.0f rows/s (%.2fx), rows differing: %d\n", r, 1e6/c, 1e6/i, c/i, d }'
done
