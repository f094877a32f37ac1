"""
test_fleet.py — traffic shaped like a Telegraf fleet's (bench/fleet.py: 40 hosts, cpu, mem,
disk, net, docker, syslog, postgresql, … and 300 prometheus families; sparse fields, every
value type, escapes, multi-line strings) lands complete and exact, over concurrent TCP
connections and through influx.insert(); so does one batch naming over 1,000 distinct
measurements, over TCP and in one influx.insert() call.

Every stored row is compared with the value the generator meant (not only counted), and
the influx.stats() counters must reconcile with what was sent.
"""

import collections
import datetime
import os
import sys
import threading
from decimal import Decimal

import pytest
from psycopg2 import sql

from conftest import send_tcp, wait_for

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import fleet  # noqa: E402

CLUSTER_CONF = {
    # A burst is one batch per worker: never cut by size (batch_size far above anything sent
    # here) nor by age (flush_interval 20 s), only by the end of the burst (flush_idle: 1 s
    # without new data). So the 1,000-measurement TCP test (which lowers influx.workers to 1
    # first) hands one worker a single batch naming all of them. The worker itself still
    # commits such a batch in several transactions: it flushes once a batch names as many
    # tables as its share of the lock table allows (MaxTablesPerFlush in
    # src/ingest/insert.cpp: 256 to 4,096), so that test checks that transactions wrote far
    # more than 64 tables each, not one.
    "influx.batch_size": "1000000",
    "influx.flush_interval": "20s",
    "influx.flush_idle": "1s",
    "influx.workers": "2",
    # Telegraf's fields are sparse: a field first seen in a later batch needs its column.
    "influx.add_columns": "on",
}

SEED = 7
FLEET = dict(hosts=40, intervals=2, seed=SEED, prometheus_families=300)
CONNECTIONS = 8
# Enough families that the measurements (untyped summaries and histograms are three each,
# plus the ~22 plugin measurements) pass 1,000.
WIDE_FAMILIES = 920

REJECTS = ("lines_rejected_syntax", "lines_rejected_too_long", "rows_rejected_value",
           "rows_rejected_insert", "rows_rejected_table")
COUNTERS = ("lines_received", "rows_inserted", "batches", "errors") + REJECTS

_cache = {}


def fleet_points(**kw):
    key = tuple(sorted(kw.items()))
    if key not in _cache:
        points = fleet.generate_points(**kw)
        lines = [fleet.to_line(p) for p in points]
        expected = dict(collections.Counter(p.measurement for p in points))
        _cache[key] = (points, lines, expected)
    return _cache[key]


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

def counters(c):
    rows = c.stats()
    return {(kind, k): sum(r[k] or 0 for r in rows if r["kind"] == kind)
            for kind in ("listener", "worker") for k in COUNTERS}


def delta(before, after):
    return {k: after[k] - before[k] for k in before}


def table_counts(c, schema, names=None):
    """{table: count(*)} for every table of schema (one round trip)."""
    rows = c.query(
        "SELECT c.relname, (xpath('/row/n/text()', query_to_xml(format("
        "'SELECT count(*) AS n FROM %%I.%%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')"
        + (" AND c.relname = ANY(%s)" if names is not None else ""),
        (schema, list(names)) if names is not None else (schema,))
    return dict(rows)


def ts(ns):
    return datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        microseconds=ns // 1000)


def expected_tables(points):
    """{measurement: list of {column: value}} as the generator meant them."""
    out = collections.defaultdict(list)
    for p in points:
        row = {"_time": ts(p.ts)}
        row.update(p.tags)
        for f in p.fields:
            row[f.key] = f.value
        out[p.measurement].append(row)
    return out


def value_problems(c, schema, points, limit=20):
    """Differences between the stored rows and the generator's points, table by table:
    every column of every row, compared as a multiset."""
    problems = []
    conn = c.connect()
    try:
        with conn.cursor() as cur:
            for table, rows in sorted(expected_tables(points).items()):
                cur.execute(sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
                cols = [d[0] for d in cur.description]
                keys = set().union(*rows)
                if set(cols) != keys:
                    problems.append(f"{table}: columns missing {sorted(keys - set(cols))}, "
                                    f"unexpected {sorted(set(cols) - keys)}")
                    continue
                got = collections.Counter(cur.fetchall())
                want = collections.Counter(tuple(r.get(k) for k in cols) for r in rows)
                if got != want:
                    missing, extra = want - got, got - want
                    problems.append(f"{table} ({cols}): {sum(missing.values())} rows not stored as sent, e.g. "
                                    f"{list(missing)[:2]}; {sum(extra.values())} stored rows not sent, e.g. "
                                    f"{list(extra)[:2]}")
                if len(problems) >= limit:
                    break
    finally:
        conn.close()
    return problems


def send_concurrently(port, payloads):
    errors = []

    def sender(data):
        try:
            send_tcp(port, data)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=sender, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "a sender is stuck"
    assert not errors, errors


def wait_all_accounted(c, before, n, timeout, what):
    """Polls influx.stats() until the workers have inserted or rejected n more rows; on a
    timeout, prints what the processes were doing and the end of the server log."""
    def done():
        d = delta(before, counters(c))
        return d[("worker", "rows_inserted")] + sum(d[("worker", k)] for k in REJECTS) >= n
    try:
        wait_for(done, timeout, interval=0.2, what=what)
    except pytest.fail.Exception:
        print("counter deltas:", {k: v for k, v in delta(before, counters(c)).items() if v})
        for r in c.stats():
            print("influx.stats:", {k: v for k, v in r.items() if v})
        for r in c.query("SELECT pid, backend_type, state, wait_event_type, wait_event, left(query, 200) "
                         "FROM pg_stat_activity WHERE backend_type LIKE 'influx%'"):
            print("pg_stat_activity:", r)
        print(c.log_tail(80))
        raise
    return delta(before, counters(c))


def assert_reconciled(d, n):
    """Lines received = rows inserted + rows rejected, by reason; nothing rejected."""
    got = {k: v for k, v in d.items() if v}
    assert d[("listener", "lines_received")] == n, got
    assert d[("worker", "lines_received")] == n, got
    assert d[("worker", "rows_inserted")] + sum(d[("worker", k)] for k in REJECTS) == n, got
    assert {k: d[("worker", k)] for k in REJECTS} == {k: 0 for k in REJECTS}, got
    assert d[("listener", "lines_rejected_too_long")] == 0, got
    assert d[("worker", "rows_inserted")] == n, got
    assert d[("listener", "errors")] == 0 and d[("worker", "errors")] == 0, got


def set_workers(c, n):
    if n is None:
        c.execute("ALTER SYSTEM RESET influx.workers")
        n = int(CLUSTER_CONF["influx.workers"])
    else:
        c.execute(f"ALTER SYSTEM SET influx.workers = {int(n)}")
    c.reload()

    def settled():
        s = c.listener_status()
        running = c.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker'")
        return s["workers_wanted"] == n and s["workers_running"] == n and running == n
    wait_for(settled, 30, what=f"influx.workers = {n} in force")


# ---------------------------------------------------------------------------------------
# The generator itself
# ---------------------------------------------------------------------------------------

def test_generator_is_deterministic_and_shaped_like_a_fleet():
    points, lines, expected = fleet_points(**FLEET)
    again, again_expected = fleet.generate(**FLEET)
    assert again == lines and again_expected == expected
    small = dict(hosts=3, intervals=2, prometheus_families=20)
    assert fleet.generate(seed=1, **small) == fleet.generate(seed=1, **small)
    assert fleet.generate(seed=1, **small)[0] != fleet.generate(seed=2, **small)[0]
    assert sum(expected.values()) == len(lines)
    for m in ("cpu", "mem", "swap", "disk", "diskio", "net", "netstat", "processes", "system", "kernel",
              "chrony", "docker", "docker_container_cpu", "docker_container_mem", "docker_container_status",
              "nginx", "postgresql", "http_response", "x509_cert", "syslog", "site_check",
              "go_gc_duration_seconds", "http_requests_total", "node_cpu_seconds_total"):
        assert expected.get(m), m
    assert len(expected) > 300
    assert all(len(m) <= 63 and m == m.lower() for m in expected)
    # Every kind of field value and the escapes the tests below look for are in the traffic.
    kinds = collections.Counter(f.kind for p in points for f in p.fields)
    assert set(kinds) == {"float", "integer", "unsigned", "boolean", "string"}
    assert {f.text for p in points for f in p.fields if f.kind == "boolean"} >= {
        "t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"}
    text = "\n".join(lines)
    for needle in (r"path=/mnt/backup\ volume", r"path=/srv/data\=archive\,2023", r"runtime\,ms=",
                   r"exit\=code=", r"last\ error=", r"com.example.build\ id=build\=1234\,ok", "e-05,",
                   "quantile=0.5", "le=+Inf", ",+Inf=", "=-", "u,", "i,", '\\"', "\\\\"):
        assert needle in text, needle
    assert any("\n" in line for line in lines)  # a raw newline inside a quoted string
    assert any(f.value >= 2**53 for p in points for f in p.fields if f.kind == "unsigned")


# ---------------------------------------------------------------------------------------
# Over TCP
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tcp_fleet(listener):
    """The fleet's traffic sent once over concurrent TCP connections, all of it accounted
    for by the workers: returns the influx.stats() deltas."""
    c = listener
    points, lines, expected = fleet_points(**FLEET)
    # One connection per group of agents, each agent's lines in the order it sends them.
    groups = collections.defaultdict(list)
    for p, line in zip(points, lines):
        groups[p.host_index % CONNECTIONS].append(line)
    payloads = [("\n".join(g) + "\n").encode() for _, g in sorted(groups.items())]
    assert len(payloads) == CONNECTIONS

    before = counters(c)
    send_concurrently(c.tcp_port, payloads)
    return wait_all_accounted(c, before, len(lines), 180, f"{len(lines)} fleet rows")


def test_fleet_over_concurrent_tcp_connections_lands_exactly(listener, tcp_fleet):
    c = listener
    points, lines, expected = fleet_points(**FLEET)
    assert_reconciled(tcp_fleet, len(lines))
    counts = table_counts(c, "public", expected)
    assert {m: counts.get(m, 0) for m in expected} == expected
    assert value_problems(c, "public", points) == []


def test_fleet_spot_values_over_tcp(listener, tcp_fleet):
    """A few stored values of the fleet's traffic, checked against literals."""
    c = listener
    points, lines, _ = fleet_points(**FLEET)
    t0 = fleet.DEFAULT_START_NS

    # syslog: quotes, backslashes, a comma, '=', a raw newline and a tab inside the quotes,
    # non-ASCII, and a backslash right before the closing quote.
    wire = ('message="user \\"bob\\" logged in from C:\\\\Users\\\\bob, cmd=\\"ls -la\\"\n'
            '\tdone ✓ 日本語 é \\\\"')
    assert sum(wire in line for line in lines) == 1
    assert c.query(
        "SELECT message, sdid, \"exampleSDID@32473_iut\", appname, severity_code FROM syslog "
        "WHERE hostname = 'web-eu-0000' AND _time = to_timestamp(%s) + interval '1 microsecond'",
        (t0 // 10**9,)) == [
        ('user "bob" logged in from C:\\Users\\bob, cmd="ls -la"\n\tdone ✓ 日本語 é \\', True, "3", "sshd", 6)]

    # An unsigned counter beyond 2^53, exactly (no detour through a double).
    cpu_line = next(line for p, line in zip(points, lines)
                    if p.measurement == "docker_container_cpu" and p.host_index == 0)
    wire_value = int(cpu_line.split("usage_system=", 1)[1].split("u", 1)[0])
    assert wire_value > 2**53
    container = next(p.tags["container_name"] for p in points
                     if p.measurement == "docker_container_cpu" and p.host_index == 0)
    stored = c.scalar("SELECT usage_system FROM docker_container_cpu WHERE host = 'web-eu-0000' "
                      "AND container_name = %s AND _time = to_timestamp(%s)", (container, t0 // 10**9))
    assert isinstance(stored, (int, Decimal)) and stored == wire_value

    # Booleans spelled T and FALSE; keys with escaped comma, '=' and space.
    assert "site_check,check=backup\\ nightly," in lines[[p.measurement for p in points].index("site_check")]
    assert c.query(
        "SELECT ok, degraded, \"runtime,ms\" > 0, \"exit=code\", pg_typeof(ok)::text FROM site_check "
        "WHERE host = 'web-eu-0000' AND \"check\" = 'backup nightly' AND _time = to_timestamp(%s)",
        (t0 // 10**9,)) == [(True, False, True, 0, "boolean")]

    # Tag values with an escaped space, '=' and comma; a tag key with an escaped space; a
    # tag value with backslashes that stay literal.
    assert c.query("SELECT path, count(*) FROM disk WHERE host = 'web-eu-0000' AND path IN "
                   "('/mnt/backup volume', '/srv/data=archive,2023') GROUP BY path ORDER BY path") == [
        ("/mnt/backup volume", 2), ("/srv/data=archive,2023", 2)]
    assert c.query("SELECT DISTINCT \"com.example.build id\", \"com.example.path\" FROM docker_container_status "
                   "WHERE host = 'web-eu-0000' AND \"com.example.build id\" IS NOT NULL") == [
        ("build=1234,ok", "C:\\ProgramData\\app")]
    assert c.scalar("SELECT count(*) FROM http_response WHERE server = "
                    "'https://api.example.com/health?probe=1&verbose=true' AND host = 'web-eu-0000'") == 2


def send_to_one_worker(c, lines, expected, timeout):
    """Sends the lines over TCP with influx.workers at 1 (so that one worker's batch names
    every measurement, see CLUSTER_CONF) and returns the counters' deltas once all are
    accounted for."""
    set_workers(c, 1)
    try:
        before = counters(c)
        send_tcp(c.tcp_port, ("\n".join(lines) + "\n").encode())
        return wait_all_accounted(c, before, len(lines), timeout,
                                  f"{len(lines)} rows of {len(expected)} measurements")
    finally:
        set_workers(c, None)


def tables_per_transaction(c, expected):
    """[(xmin, tables it wrote)] over the measurements' tables in public."""
    return c.query("SELECT x, count(DISTINCT m) FROM (" + " UNION ALL ".join(
        f"SELECT xmin::text AS x, '{m}' AS m FROM public.{m}" for m in sorted(expected)) + ") s GROUP BY x")


def test_a_tcp_batch_of_over_1000_measurements_lands_completely(listener):
    c = listener
    points, lines, expected = fleet_points(hosts=1, intervals=1, seed=SEED, prometheus_families=WIDE_FAMILIES,
                                           name_prefix="w_", start_ns=fleet.DEFAULT_START_NS + 3600 * 10**9)
    assert len(expected) >= 1000
    d = send_to_one_worker(c, lines, expected, 180)
    assert_reconciled(d, len(lines))
    counts = table_counts(c, "public", expected)
    missing = {m: (n, counts.get(m, 0)) for m, n in expected.items() if counts.get(m, 0) != n}
    assert missing == {}
    # What the test is for: transactions that each wrote far more than 64 tables (a batch
    # of over 64 measurements once hung a worker), all of them by the one worker.
    per_xact = tables_per_transaction(c, expected)
    assert max(n for _, n in per_xact) >= 200, per_xact
    assert d[("worker", "batches")] == len(per_xact), per_xact
    assert value_problems(c, "public", points) == []


def test_one_agents_gather_of_339_measurements_is_one_transaction(listener):
    """A Telegraf agent's gather names every measurement of its inputs at once (339 here).
    A worker used to commit every 256 tables, which on a fleet's interleaved stream made
    transactions of a few hundred rows each (0.46x COPY); the cap now follows the server's
    lock table (488 tables with the defaults and two workers)."""
    c = listener
    points, lines, expected = fleet_points(hosts=1, intervals=1, seed=SEED, prometheus_families=300,
                                           name_prefix="g_", start_ns=fleet.DEFAULT_START_NS + 7200 * 10**9)
    assert len(expected) > 256
    d = send_to_one_worker(c, lines, expected, 60)
    assert_reconciled(d, len(lines))
    per_xact = tables_per_transaction(c, expected)
    assert [n for _, n in per_xact] == [len(expected)]
    assert d[("worker", "batches")] == 1


# ---------------------------------------------------------------------------------------
# Through influx.insert()
# ---------------------------------------------------------------------------------------

def insert_in_one_call(c, schema, lines, **args):
    conn = c.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            cur.execute("SET statement_timeout = '60s'")
            named = "".join(f", {k} => %({k})s" for k in args)
            cur.execute(f"SELECT influx.insert(%(lines)s, schema_name => %(schema)s{named})",
                        dict(args, lines="\n".join(lines) + "\n", schema=schema))
            n = cur.fetchone()[0]
        return n, list(conn.notices)
    finally:
        conn.close()


def test_fleet_through_one_sql_insert_call(ext):
    c = ext
    points, lines, expected = fleet_points(**FLEET)
    before = counters(c)
    n, notices = insert_in_one_call(c, "fleet_sql", lines, add_columns=True)
    assert notices == []
    assert n == len(lines)
    counts = table_counts(c, "fleet_sql")
    assert counts == expected
    assert value_problems(c, "fleet_sql", points) == []
    # influx.insert() runs in the session, not in the workers.
    assert delta(before, counters(c))[("worker", "rows_inserted")] == 0


def test_over_1000_measurements_in_one_sql_insert_call(ext):
    c = ext
    points, lines, expected = fleet_points(hosts=1, intervals=1, seed=SEED + 1, prometheus_families=WIDE_FAMILIES)
    assert len(expected) >= 1000
    n, notices = insert_in_one_call(c, "fleet_sql_wide", lines)
    assert notices == []
    assert n == len(lines)
    assert table_counts(c, "fleet_sql_wide") == expected
    assert value_problems(c, "fleet_sql_wide", points) == []
