#!/usr/bin/env bash
# cluster.sh — a throw-away PostgreSQL 15 cluster with pg_influx preloaded, for trying
# pg_influx by hand.
#
#   sudo test/cluster.sh start     install packages, build, install, initdb (first time),
#                                  start, CREATE EXTENSION, wait for the listener
#   sudo test/cluster.sh stop      stop the cluster (data is kept)
#   sudo test/cluster.sh status    server and listener status
#   sudo test/cluster.sh psql [..] psql into the cluster (extra arguments go to psql)
#   sudo test/cluster.sh destroy   stop the cluster and delete its directory
#
# The cluster runs as the unprivileged `postgres` user; the commands need root only to
# install packages and the extension, and to switch to that user.  Environment overrides:
#   PG_INFLUX_CLUSTER_DIR (default /tmp/pg_influx_cluster), PG_INFLUX_PG_PORT (5499),
#   PG_INFLUX_UDP_PORT (8089), PG_INFLUX_TCP_PORT (8094), PG_INFLUX_SKIP_BUILD=1 (reuse the
#   installed extension), PG_INFLUX_WAIT_SECONDS (60).
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_DIR=${PG_INFLUX_CLUSTER_DIR:-/tmp/pg_influx_cluster}
DATA_DIR=$CLUSTER_DIR/data
LOG_FILE=$CLUSTER_DIR/server.log
PG_PORT=${PG_INFLUX_PG_PORT:-5499}
UDP_PORT=${PG_INFLUX_UDP_PORT:-8089}
TCP_PORT=${PG_INFLUX_TCP_PORT:-8094}
HTTP_PORT=${PG_INFLUX_HTTP_PORT:-8086}
WAIT_SECONDS=${PG_INFLUX_WAIT_SECONDS:-60}
PG_USER=postgres

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*"; }

pg_bindir() {
    if command -v pg_config >/dev/null 2>&1; then
        pg_config --bindir
    else
        echo /usr/lib/postgresql/15/bin
    fi
}

# Runs a command as the cluster's owner, from a directory that user can read.
as_pg() {
    if [[ $(id -un) == "$PG_USER" ]]; then
        (cd / && "$@")
    elif [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        die "run as root (sudo $0 ...) or as the $PG_USER user"
    fi
}

psql_q() {
    as_pg "$BINDIR/psql" -X -q -h localhost -p "$PG_PORT" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 "$@"
}

is_running() {
    [[ -f $DATA_DIR/PG_VERSION ]] && as_pg "$BINDIR/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

build_and_install() {
    if [[ ${PG_INFLUX_SKIP_BUILD:-0} == 1 ]]; then
        say "PG_INFLUX_SKIP_BUILD=1: using the installed extension"
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "start installs packages and the extension: run it as root (sudo $0 start)"
    say "checking packages"
    "$SRC_DIR/test/deps.sh"
    BINDIR=$(pg_bindir)
    say "building"
    make -C "$SRC_DIR" -s -j"$(nproc)" >/dev/null
    say "installing the extension"
    make -C "$SRC_DIR" -s install >/dev/null
}

init_cluster() {
    if [[ -f $DATA_DIR/PG_VERSION ]]; then
        return
    fi
    say "creating the cluster in $DATA_DIR (owner $PG_USER)"
    mkdir -p "$CLUSTER_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$PG_USER": "$CLUSTER_DIR"
    fi
    chmod 700 "$CLUSTER_DIR"
    as_pg "$BINDIR/initdb" -D "$DATA_DIR" -U postgres --auth=trust -E UTF8 --no-locale \
        >"$CLUSTER_DIR/initdb.log" 2>&1 || { cat "$CLUSTER_DIR/initdb.log" >&2; die "initdb failed"; }
    as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null <<CONF

# ---- pg_influx throw-away cluster (test/cluster.sh) ----
port = $PG_PORT
listen_addresses = 'localhost'
unix_socket_directories = '$CLUSTER_DIR'
shared_preload_libraries = 'pg_influx'
max_worker_processes = 16
influx.database = 'postgres'
influx.udp_port = $UDP_PORT
influx.tcp_port = $TCP_PORT
influx.http_port = $HTTP_PORT
CONF
}

wait_for_listener() {
    local deadline=$((SECONDS + WAIT_SECONDS)) status=""
    say "waiting (up to ${WAIT_SECONDS}s) for the influx listener"
    while ((SECONDS < deadline)); do
        status=$(psql_q -At -c "SELECT status FROM influx.listener_status()" 2>/dev/null || true)
        if [[ $status == running* ]]; then
            say "listener: $status"
            return 0
        fi
        sleep 0.2
    done
    echo "cluster.sh: the listener is not running after ${WAIT_SECONDS}s (last status: '${status:-unknown}')" >&2
    echo "--- last lines of $LOG_FILE ---" >&2
    tail -n 30 "$LOG_FILE" >&2 || true
    return 1
}

cmd_start() {
    build_and_install
    init_cluster
    if is_running; then
        say "already running (port $PG_PORT); to load a new build: $0 stop && $0 start"
    else
        say "starting PostgreSQL on port $PG_PORT (log: $LOG_FILE)"
        as_pg "$BINDIR/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$WAIT_SECONDS" start >/dev/null \
            || { tail -n 30 "$LOG_FILE" >&2; die "PostgreSQL did not start"; }
    fi
    psql_q -c "CREATE EXTENSION IF NOT EXISTS pg_influx" \
        || die "CREATE EXTENSION pg_influx failed (see $LOG_FILE)"
    wait_for_listener
    cat <<MSG

pg_influx is listening: UDP $UDP_PORT, TCP $TCP_PORT (localhost); PostgreSQL on port $PG_PORT.

Send a line:
    echo 'cpu,host=a usage=1.5' | nc -q1 localhost $TCP_PORT
See it:
    psql -h localhost -p $PG_PORT -U postgres -c 'select * from influx_metrics.cpu'
Counters:
    psql -h localhost -p $PG_PORT -U postgres -c 'select * from influx.stats'
Stop:
    sudo $0 stop
MSG
}

cmd_stop() {
    if is_running; then
        say "stopping"
        as_pg "$BINDIR/pg_ctl" -D "$DATA_DIR" -m fast -w stop >/dev/null
        say "stopped"
    else
        say "not running"
    fi
}

cmd_status() {
    if ! is_running; then
        say "PostgreSQL is not running (cluster dir: $CLUSTER_DIR)"
        return 3
    fi
    say "PostgreSQL is running on port $PG_PORT (data: $DATA_DIR, log: $LOG_FILE)"
    psql_q -x -c "SELECT * FROM influx.listener_status()" \
        || say "influx.listener_status() failed (is the extension created?)"
}

cmd_psql() {
    is_running || die "not running: sudo $0 start"
    if [[ $(id -u) -eq 0 ]]; then
        exec runuser -u "$PG_USER" -- "$BINDIR/psql" -X -h localhost -p "$PG_PORT" -U postgres -d postgres "$@"
    fi
    exec "$BINDIR/psql" -X -h localhost -p "$PG_PORT" -U postgres -d postgres "$@"
}

cmd_destroy() {
    cmd_stop
    if [[ -d $CLUSTER_DIR ]]; then
        rm -rf "$CLUSTER_DIR"
        say "removed $CLUSTER_DIR"
    fi
}

BINDIR=$(pg_bindir)
case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    psql) shift; cmd_psql "$@" ;;
    destroy) cmd_destroy ;;
    *) echo "usage: $0 start|stop|status|psql [psql args]|destroy" >&2; exit 2 ;;
esac
