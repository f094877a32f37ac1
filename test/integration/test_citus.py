"""
test_citus.py — Citus tables (docs/scale-out.md): a coordinator and two worker nodes on this
machine (Citus 13.2.2, built from ../shared/vendor/citus by test/run-tests.sh when missing).

A Citus table's relation on the coordinator is a shell; the rows live in shards on the
workers.  The bulk path would write the shell, where no query sees the rows: pg_influx
writes Citus tables through prepared INSERT ... SELECT statements, which Citus routes.
Checked for TCP, UDP, HTTP and influx.insert(), into a hash-distributed table, a
partitioned distributed table, a reference table and a Citus-local table: every row is
visible to distributed queries, every shell stays empty, and a row the shards refuse (a
CHECK constraint) is rejected alone and counted.  The insertion workers keep the shard
connections a write opens (citus.max_cached_conns_per_worker) instead of opening them again
for every flush.
"""


import os

import psycopg2
import pytest

from conftest import Cluster, send_tcp, send_udp, wait_for
from http_support import T0_NS, assert_204, assert_json_error, require_http, write

CLUSTER_CONF = {
    "shared_preload_libraries": "'citus,pg_influx'",
    "max_worker_processes": "24",
    "citus.shard_count": "4",
}

WORKER_CONF = {
    "shared_preload_libraries": "'citus'",
    "max_worker_processes": "16",
}


@pytest.fixture(scope="module")
def citus(listener):
    """The module's cluster as a Citus coordinator with two worker nodes."""
    workers = []
    try:
        for i in range(2):
            w = Cluster(f"citus_worker{i}", WORKER_CONF)
            w.init()
            w.start()
            workers.append(w)
            w.execute("CREATE EXTENSION citus")
        listener.execute("CREATE EXTENSION IF NOT EXISTS citus")
        listener.execute("SELECT citus_set_coordinator_host('localhost', %s)", (listener.port,))
        for w in workers:
            listener.execute("SELECT citus_add_node('localhost', %s)", (w.port,))
        listener.citus_workers = workers
        yield listener
    finally:
        for w in workers:
            w.destroy()


def shell_bytes(cluster, table):
    """Bytes in the coordinator's own heap of a Citus table (its shell)."""
    return cluster.scalar("SELECT pg_relation_size(%s::regclass)", (table,))


def make_tables(c, name):
    c.execute(f"""
        CREATE TABLE {name}_hash (_time timestamptz NOT NULL, host text, v float8 CHECK (v >= 0));
        SELECT create_distributed_table('{name}_hash', 'host');
        CREATE TABLE {name}_part (_time timestamptz NOT NULL, host text, v float8)
            PARTITION BY RANGE (_time);
        CREATE TABLE {name}_part_a PARTITION OF {name}_part
            FOR VALUES FROM ('2023-01-01') TO ('2023-11-14 22:14:00+00');
        CREATE TABLE {name}_part_b PARTITION OF {name}_part
            FOR VALUES FROM ('2023-11-14 22:14:00+00') TO ('2024-01-01');
        SELECT create_distributed_table('{name}_part', 'host');
        CREATE TABLE {name}_ref (_time timestamptz NOT NULL, host text, v float8);
        SELECT create_reference_table('{name}_ref');
        CREATE TABLE {name}_local (_time timestamptz NOT NULL, host text, v float8);
        SELECT citus_add_local_table_to_metadata('{name}_local');""")
    return [f"{name}_hash", f"{name}_part", f"{name}_ref", f"{name}_local"]


def lines(table, n, t0=T0_NS):
    return "".join(f"{table},host=h{i % 50} v={i} {t0 + i * 1_000_000_000}\n" for i in range(n))


def assert_landed(c, tables, n):
    for t in tables:
        wait_for(lambda: c.scalar(f"SELECT count(*) FROM {t}") == n, 30,
                 what=f"{n} rows in {t} (distributed count)")
        assert c.scalar(f"SELECT sum(v) FROM {t}") == sum(range(n))
    shells = [t for t in tables] + [tables[1] + "_a", tables[1] + "_b"]
    assert {t: shell_bytes(c, t) for t in shells} == {t: 0 for t in shells}


def shard_relations(c, table):
    """(shard id, relation name) of every shard of `table` placed on node c."""
    return c.query("""SELECT s.shardid, %s || '_' || s.shardid
                        FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
                       WHERE s.logicalrelid = %s::regclass
                         AND p.groupid = (SELECT groupid FROM pg_dist_local_group)
                       ORDER BY 1""", (table, table))


def assert_rows_in_their_shards(c, table, column):
    """Every row stored in a shard on node c belongs there by Citus' own hashing."""
    total = 0
    for shardid, relation in shard_relations(c, table):
        misplaced = c.scalar(f"SELECT count(*) FROM {relation} WHERE "
                             f"get_shard_id_for_distribution_column(%s, {column}) <> %s",
                             (table, shardid))
        assert misplaced == 0, f"{misplaced} rows of {relation} belong to another shard"
        total += c.scalar(f"SELECT count(*) FROM {relation}")
    return total


def test_tcp_into_every_kind_of_citus_table(citus):
    tables = make_tables(citus, "tcp")
    send_tcp(citus.tcp_port, "".join(lines(t, 2000) for t in tables))
    assert_landed(citus, tables, 2000)


def test_udp_into_citus_tables(citus):
    tables = make_tables(citus, "udp")
    for t in tables:
        for start in range(0, 200, 20):
            body = "".join(f"{t},host=h{i % 50} v={i} {T0_NS + i * 1_000_000_000}\n"
                           for i in range(start, start + 20))
            send_udp(citus.udp_port, body)
    assert_landed(citus, tables, 200)


def test_http_and_insert_function(citus):
    require_http(citus)
    tables = make_tables(citus, "web")
    for t in tables[:2]:
        assert_204(write(citus.http_port, lines(t, 1000)))
        # 204 = committed: visible at once, no polling.
        assert citus.scalar(f"SELECT count(*) FROM {t}") == 1000
    for t in tables[2:]:
        assert citus.scalar("SELECT influx.insert(%s)", (lines(t, 1000),)) == 1000
    assert_landed(citus, tables, 1000)


def test_a_row_the_shards_refuse_is_rejected_alone(citus):
    require_http(citus)
    c = citus
    c.execute("""CREATE TABLE chk (_time timestamptz NOT NULL, host text, v float8 CHECK (v >= 0));
                 SELECT create_distributed_table('chk', 'host')""")
    before = c.stat_total("rows_rejected_insert", kind="worker")
    body = lines("chk", 100) + f"chk,host=bad v=-1 {T0_NS}\n"
    r = write(c.http_port, body)
    assert_json_error(r, 400, "partial write")
    assert c.scalar("SELECT count(*) FROM chk") == 100
    assert c.stat_total("rows_rejected_insert", kind="worker") == before + 1
    assert shell_bytes(c, "chk") == 0


def rejected_total(c):
    return sum(c.stat_total(k, kind="worker") for k in
               ("rows_rejected_insert", "rows_rejected_table", "rows_rejected_value"))


def test_a_tables_own_code_cannot_read_the_statements_rows(citus):
    """influx.statement_rows() hands a statement's rows out once, to the statement's own
    scan: a table's code that calls it later in the statement (here a column default) gets
    an error, never the rows, and the rows are rejected for the table's error."""
    c = citus
    c.execute("""
        CREATE FUNCTION peek() RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            RETURN (SELECT count(*)
                      FROM influx.statement_rows() AS r (_time timestamptz, host text, v float8));
        END $$;
        CREATE TABLE peek (_time timestamptz NOT NULL, host text, v float8,
                           seen bigint DEFAULT peek());
        SELECT create_distributed_table('peek', 'host')""")
    rejected = c.stat_total("rows_rejected_insert", kind="worker")
    send_tcp(c.tcp_port, lines("peek", 20) + lines("peek_ok", 20))
    wait_for(lambda: c.stat_total("rows_rejected_insert", kind="worker") == rejected + 20, 60,
             what="every row of the table whose default reads the statement's rows rejected")
    wait_for(lambda: c.row_count("peek_ok") == 20, 30, what="the other table's rows")
    assert c.scalar("SELECT count(*) FROM peek") == 0
    assert "statement_rows" in " ".join(r["last_error"] or "" for r in c.stats())


def test_an_immutable_default_cannot_read_the_statements_rows_while_planned(citus):
    """An IMMUTABLE function in a default is evaluated by the planner, and the statement is
    planned after its rows are set out for it: the function must get an error there too,
    not the rows (here it would store how many it saw in every row)."""
    c = citus
    c.execute("""
        CREATE FUNCTION peek_planned() RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN
            RETURN (SELECT count(*)
                      FROM influx.statement_rows() AS r (_time timestamptz, host text, v float8));
        END $$;
        CREATE TABLE peek_planned (_time timestamptz NOT NULL, host text, v float8,
                                   seen bigint DEFAULT peek_planned());
        SELECT create_distributed_table('peek_planned', 'host')""")
    rejected = c.stat_total("rows_rejected_insert", kind="worker")
    send_tcp(c.tcp_port, lines("peek_planned", 20) + lines("peek_planned_ok", 20))
    wait_for(lambda: c.row_count("peek_planned_ok") == 20, 60, what="the other table's rows")
    wait_for(lambda: c.stat_total("rows_rejected_insert", kind="worker") == rejected + 20, 60,
             what="every row of the table whose default reads the statement's rows rejected")
    assert c.scalar("SELECT count(*) FROM peek_planned") == 0


def test_a_table_created_while_a_node_is_down_waits_for_it(citus):
    """The creation hook makes new measurements distributed tables: with a worker node down,
    create_distributed_table fails to connect.  That is the node's outage, not the rows':
    the lines come again until the node is back and the table is created, instead of being
    rejected as a table that cannot be made."""
    c = citus
    original = c.scalar("SELECT pg_get_functiondef('influx.create_measurement_table'::regproc)")
    c.execute("""
        CREATE OR REPLACE FUNCTION influx.create_measurement_table(
            schema_name name, measurement text, tag_keys text[], field_keys text[],
            field_types text[])
        RETURNS regclass LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        DECLARE
            t regclass;
        BEGIN
            EXECUTE format('CREATE TABLE %I.%I (_time timestamptz NOT NULL, host text, v float8)',
                           schema_name, measurement);
            t := format('%I.%I', schema_name, measurement)::regclass;
            PERFORM create_distributed_table(t, 'host');
            RETURN t;
        END $$""")
    try:
        before = rejected_total(c)
        retries = c.stat_total("flush_retries", kind="worker")
        node = c.citus_workers[0]
        node.stop()
        try:
            send_tcp(c.tcp_port, lines("born_in_outage", 200))
            wait_for(lambda: c.stat_total("flush_retries", kind="worker") >= retries + 10, 90,
                     what="the new table's lines tried again and again")
            assert rejected_total(c) == before
        finally:
            node.start()
        wait_for(lambda: c.scalar("SELECT count(*) FROM pg_class WHERE relname = "
                                  "'born_in_outage'") == 1, 90, what="the table created")
        wait_for(lambda: c.scalar("SELECT count(*) FROM born_in_outage") == 200, 90,
                 what="every row once the node is back")
        assert rejected_total(c) == before
        assert c.scalar("SELECT count(*) FROM pg_dist_partition "
                        "WHERE logicalrelid = 'born_in_outage'::regclass") == 1
    finally:
        c.execute(original)


def test_a_subtransaction_left_half_begun_narrows_down_and_writes_the_rows(citus):
    """A table's own default opens a subtransaction (a PL/pgSQL exception block) for each
    row, which Citus cannot start while its COPY to a shard is in the middle of a statement:
    it fails with 08006 "another command is already in progress" and leaves the
    subtransaction half begun, which only an abort of the whole flush cleans up.  Every node
    answers Citus' connection check, so it is no outage.  The flush narrows the failing
    range down, an attempt at a time, until ranges of one row, which Citus writes: every row
    lands, none is rejected, and the other table's rows land too.  (Such a table used to
    kill the worker at each try; then its rows were rejected whole.)"""
    c = citus
    c.execute("""
        CREATE FUNCTION guarded() RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            RETURN 1;
        EXCEPTION WHEN others THEN
            RETURN -1;
        END $$;
        CREATE TABLE guarded (_time timestamptz NOT NULL, host text, v float8,
                              g bigint DEFAULT guarded());
        SELECT create_distributed_table('guarded', 'host')""")
    rejected = rejected_total(c)
    send_tcp(c.tcp_port, lines("guarded", 30) + lines("guarded_ok", 30))
    wait_for(lambda: c.row_count("guarded") == 30, 90, what="the 30 rows written one by one")
    wait_for(lambda: c.row_count("guarded_ok") == 30, 30, what="the other table's rows")
    assert c.scalar("SELECT count(*) FROM guarded WHERE g = 1") == 30
    assert rejected_total(c) == rejected


def test_half_begun_narrowing_of_one_table_leaves_the_others_their_own_budget(citus):
    """Each table of a flush narrows its half-begun failures down on a budget of its own
    (enough halvings for its rows, and more): six such tables whose lines come interleaved,
    so that every flush holds all six and each needs several halvings, all land row by row.
    (With one budget of 24 attempts for the whole flush, the rows of the tables narrowed
    last were rejected whole, never tried alone.)"""
    c = citus
    c.execute("""
        CREATE OR REPLACE FUNCTION guarded() RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            RETURN 1;
        EXCEPTION WHEN others THEN
            RETURN -1;
        END $$""")
    tables = [f"guarded_{k}" for k in range(6)]
    for t in tables:
        c.execute(f"""
            CREATE TABLE {t} (_time timestamptz NOT NULL, host text, v float8,
                              g bigint DEFAULT guarded());
            SELECT create_distributed_table('{t}', 'host')""")
    rejected = rejected_total(c)
    per_table = [lines(t, 400).splitlines(keepends=True) for t in tables]
    send_tcp(c.tcp_port, "".join(line for row in zip(*per_table) for line in row))
    wait_for(lambda: sum(c.row_count(t) for t in tables) + rejected_total(c) - rejected
             >= 400 * len(tables), 240, what="every row written or rejected")
    assert rejected_total(c) == rejected
    for t in tables:
        assert c.scalar(f"SELECT count(*) FROM {t} WHERE g = 1") == 400


def test_a_writer_without_usage_on_a_column_types_schema_writes(citus):
    """The statement that reads influx.statement_rows() names every column's type; a role
    that may insert into the table but not use the schema of a column's type (a domain)
    gets its rows written through array parameters instead, which name no type."""
    c = citus
    c.execute("""
        CREATE SCHEMA reading_types;
        CREATE DOMAIN reading_types.celsius AS float8 CHECK (VALUE > -273.15);
        CREATE TABLE room (_time timestamptz NOT NULL, host text, v reading_types.celsius);
        SELECT create_distributed_table('room', 'host');
        CREATE ROLE room_writer LOGIN;
        GRANT INSERT, SELECT ON room TO room_writer""")
    conn = c.connect(user="room_writer")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT has_schema_privilege('reading_types', 'USAGE')")
            assert cur.fetchone()[0] is False
            cur.execute("SELECT influx.insert(%s)", (lines("room", 300),))
            assert cur.fetchone()[0] == 300
    finally:
        conn.close()
    assert c.scalar("SELECT count(*) FROM room") == 300
    assert shell_bytes(c, "room") == 0


def most_connections_of_a_worker(c):
    """The most connections one insertion worker holds open to one Citus worker node."""
    influx_pids = set(c.backend_pids("influx worker"))
    most = 0
    for node in c.citus_workers:
        names = node.query("SELECT application_name FROM pg_stat_activity "
                           "WHERE application_name LIKE 'citus_internal gpid=%'")
        # gpid = node id * 10^10 + the pid on the node the connection comes from
        pids = [int(name.split("=", 1)[1]) % 10**10 for (name,) in names]
        most = max([most] + [pids.count(p) for p in influx_pids])
    return most


def worker_node_backends(c):
    """Backend pids on the worker nodes serving the insertion workers' connections."""
    influx_pids = set(c.backend_pids("influx worker"))
    found = set()
    for node in c.citus_workers:
        for pid, name in node.query("SELECT pid, application_name FROM pg_stat_activity "
                                    "WHERE application_name LIKE 'citus_internal gpid=%'"):
            if int(name.split("=", 1)[1]) % 10**10 in influx_pids:
                found.add((node.port, pid))
    return found


def test_insertion_workers_write_each_node_over_one_kept_connection(citus):
    """A write into a table with two shards per node goes to each node over one connection
    (citus.multi_shard_modify_mode = sequential in the insertion workers: one participant
    per node in the flush's two-phase commit, not one per shard), and the connection is
    kept for the next flush instead of being opened again."""
    require_http(citus)
    citus.execute("""CREATE TABLE keep_conns (_time timestamptz NOT NULL, host text, v float8);
                     SELECT create_distributed_table('keep_conns', 'host')""")
    assert_204(write(citus.http_port, lines("keep_conns", 2000)))
    assert most_connections_of_a_worker(citus) == 1
    first = wait_for(lambda: worker_node_backends(citus), 10, what="the kept connections")
    for t0 in (T0_NS + 10**13, T0_NS + 2 * 10**13):
        assert_204(write(citus.http_port, lines("keep_conns", 2000, t0)))
    assert worker_node_backends(citus) >= first
    assert citus.scalar("SELECT count(*) FROM keep_conns") == 6000


def test_an_administrators_citus_settings_are_kept(citus):
    """citus.multi_shard_modify_mode and citus.max_cached_conns_per_worker set by the
    administrator are left alone: in parallel mode an insertion worker opens and keeps a
    connection per shard, and keeps just one per node when the administrator says so."""
    require_http(citus)
    c = citus
    c.execute("""CREATE TABLE keep_one (_time timestamptz NOT NULL, host text, v float8);
                 SELECT create_distributed_table('keep_one', 'host')""")

    def restart_with(settings):
        for name, value in settings.items():
            c.execute(f"ALTER SYSTEM SET {name} = {value}" if value is not None
                      else f"ALTER SYSTEM RESET {name}")
        c.execute("SELECT pg_reload_conf()")
        old = set(c.backend_pids("influx worker"))
        c.execute("SELECT influx.restart_workers()")
        wait_for(lambda: (lambda now: now and not (now & old))(set(c.backend_pids("influx worker"))),
                 30, what="new insertion workers")

    try:
        restart_with({"citus.multi_shard_modify_mode": "parallel"})
        assert_204(write(c.http_port, lines("keep_one", 2000)))
        assert most_connections_of_a_worker(c) >= 2
        restart_with({"citus.max_cached_conns_per_worker": "1"})
        assert_204(write(c.http_port, lines("keep_one", 2000, T0_NS + 10**13)))
        assert most_connections_of_a_worker(c) == 1
    finally:
        restart_with({"citus.multi_shard_modify_mode": None,
                      "citus.max_cached_conns_per_worker": None})


def test_a_worker_node_stopped_during_ingest_loses_nothing(citus):
    """A Citus worker node stops while lines for a distributed table arrive (a restart, a
    crash): the writes fail with connection errors, which say nothing about the rows.
    They used to be retried a few times and then isolated and rejected like bad rows (every
    row for the table lost). Now the table's lines are handed back and come again until
    the node is back; the rows of a plain table in the same batches land meanwhile; not a
    row is rejected."""
    c = citus
    c.execute("""CREATE TABLE outage (_time timestamptz NOT NULL, host text, v float8);
                 SELECT create_distributed_table('outage', 'host');
                 CREATE TABLE outage_local (_time timestamptz NOT NULL, host text, v float8)""")
    rejected = rejected_total(c)
    send_tcp(c.tcp_port, lines("outage", 1000))
    wait_for(lambda: c.scalar("SELECT count(*) FROM outage") == 1000, 30,
             what="the rows written while every node is up")
    node = c.citus_workers[1]
    node.stop()
    try:
        t1 = T0_NS + 10_000 * 1_000_000_000
        send_tcp(c.tcp_port, lines("outage", 5000, t1) + lines("outage_local", 500, t1))
        # The plain table's rows go on landing while the distributed table's wait.
        wait_for(lambda: c.scalar("SELECT count(*) FROM outage_local") == 500, 60,
                 what="the plain table's rows while a node is down")
        assert rejected_total(c) == rejected
    finally:
        node.start()
    wait_for(lambda: c.scalar("SELECT count(*) FROM outage") == 6000, 90,
             what="every row once the node is back")
    assert c.scalar("SELECT count(DISTINCT _time) FROM outage") == 6000
    assert rejected_total(c) == rejected
    assert shell_bytes(c, "outage") == 0


def influx_on_worker_node(c):
    """Worker node 0 of the module's cluster with pg_influx running (started once)."""
    node = c.citus_workers[0]
    if getattr(node, "influx_running", False):
        return node
    with open(f"{node.data}/postgresql.conf", "a") as f:
        f.write("shared_preload_libraries = 'citus,pg_influx'\n"
                "influx.create_tables = off\ninflux.add_columns = off\n")
    node.stop()
    node.start()
    # Citus refuses extension commands on a worker node unless this session keeps them local.
    node.execute("SET citus.enable_metadata_sync = off; CREATE EXTENSION IF NOT EXISTS pg_influx")
    node.wait_listener_running()
    node.influx_running = True
    return node


def test_pg_influx_on_a_worker_node_writes_distributed_tables(citus):
    """Citus 11+ takes writes on every node: pg_influx preloaded on a worker node writes the
    same distributed table as the coordinator's (its metadata is synced there), the rows of
    the shards placed on it straight into them and the others through Citus' statements,
    never the node's shell; table creation stays on the coordinator, so a new measurement
    sent to the worker node is refused with the reason, not created."""
    c = citus
    node = influx_on_worker_node(c)
    c.execute("""CREATE TABLE spread (_time timestamptz NOT NULL, host text, v float8);
                 SELECT create_distributed_table('spread', 'host')""")
    wait_for(lambda: node.scalar("SELECT count(*) FROM pg_dist_partition "
                                 "WHERE logicalrelid = 'spread'::regclass"), 30,
             what="the table's metadata on the worker node")
    rejected = node.stat_total("rows_rejected_table", kind="worker")
    t1 = T0_NS + 100_000 * 1_000_000_000
    send_tcp(node.tcp_port, lines("spread", 3000) + lines("spread_unknown", 10))
    send_tcp(c.tcp_port, lines("spread", 3000, t1))
    wait_for(lambda: c.scalar("SELECT count(*) FROM spread") == 6000, 60,
             what="the rows sent to both nodes, counted from the coordinator")
    assert node.scalar("SELECT count(*) FROM spread") == 6000
    assert c.scalar("SELECT count(DISTINCT _time) FROM spread") == 6000
    assert shell_bytes(c, "spread") == 0
    assert shell_bytes(node, "spread") == 0
    wait_for(lambda: node.stat_total("rows_rejected_table", kind="worker") == rejected + 10, 30,
             what="the unknown measurement refused on the worker node")
    assert c.scalar("SELECT to_regclass('spread_unknown')") is None
    assert assert_rows_in_their_shards(node, "spread", "host") > 0
    assert assert_rows_in_their_shards(c.citus_workers[1], "spread", "host") > 0


def test_shards_moved_away_during_ingest_lose_and_repeat_nothing(citus):
    """While pg_influx on a worker node writes rows straight into the shards placed there,
    Citus moves those shards to the other node (citus_move_shard_placement): a write holds
    Citus' share lock on the shards' metadata, which the move takes exclusively before it
    switches a placement, and every write reads the placements again under that lock, so no
    row lands in a placement the move has left behind, and none twice."""
    import threading
    c = citus
    node = influx_on_worker_node(c)
    other = c.citus_workers[1]
    c.execute("""CREATE TABLE moving (_time timestamptz NOT NULL, host text, v float8);
                 SELECT create_distributed_table('moving', 'host')""")
    wait_for(lambda: node.scalar("SELECT count(*) FROM pg_dist_partition "
                                 "WHERE logicalrelid = 'moving'::regclass"), 30,
             what="the table's metadata on the worker node")
    local = [r[0] for r in shard_relations(node, "moving")]
    assert local, "no shard of the table on worker node 0"
    moved = threading.Event()
    sent = [0]

    def stream():
        k = 0
        while not moved.is_set() or k < 5:
            t = T0_NS + k * 1000 * 1_000_000_000
            send_tcp(node.tcp_port, lines("moving", 1000, t))
            k += 1
        sent[0] = k * 1000

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        wait_for(lambda: c.scalar("SELECT count(*) FROM moving") > 0, 60,
                 what="the first rows before the moves")
        for shardid in local:
            c.execute("SELECT citus_move_shard_placement(%s, 'localhost', %s, 'localhost', %s, "
                      "shard_transfer_mode => 'block_writes')", (shardid, node.port, other.port))
    finally:
        moved.set()
        sender.join()
    assert shard_relations(node, "moving") == []
    wait_for(lambda: c.scalar("SELECT count(*) FROM moving") >= sent[0], 90,
             what=f"the {sent[0]} rows sent")
    assert c.scalar("SELECT count(*) FROM moving") == sent[0]
    assert c.scalar("SELECT count(DISTINCT _time) FROM moving") == sent[0]
    assert assert_rows_in_their_shards(other, "moving", "host") == sent[0]


def single_node_citus(c, table):
    """Starts cluster c as a single-node Citus (the shards on the coordinator) with
    pg_influx running, and makes `table` a distributed table there."""
    c.init()
    c.start()
    c.execute("CREATE EXTENSION citus")
    c.execute("CREATE EXTENSION pg_influx")
    c.wait_listener_running()
    c.execute("SELECT citus_set_coordinator_host('localhost', %s)", (c.port,))
    c.execute("SELECT citus_set_node_property('localhost', %s, 'shouldhaveshards', true)",
              (c.port,))
    c.execute(f"""
        CREATE TABLE {table} (_time timestamptz NOT NULL, host text, v float8);
        SELECT create_distributed_table('{table}', 'host')""")


def test_rows_for_shards_on_this_node_go_straight_into_them():
    """Rows whose shard is placed on the node pg_influx runs on are written into the shard
    relation by the bulk path (no statement, no connection): into the shard Citus' own hash
    chooses, for a text, a varchar and a bigint distribution column; through a shard whose
    columns are numbered differently from the table's (a column dropped before the table was
    distributed); with the shards' constraints (a row a CHECK refuses is rejected alone);
    never the shell.  A router query (one shard, chosen by the value) finds every row."""
    c = Cluster("citus_local_shards", {"shared_preload_libraries": "'citus,pg_influx'",
                                       "max_worker_processes": "24", "citus.shard_count": "6"})
    try:
        single_node_citus(c, "by_text")
        c.execute("""
            CREATE TABLE by_varchar (_time timestamptz NOT NULL, gone int, host varchar(20),
                                     v float8 CHECK (v >= 0));
            ALTER TABLE by_varchar DROP COLUMN gone;
            SELECT create_distributed_table('by_varchar', 'host');
            CREATE TABLE by_bigint (_time timestamptz NOT NULL, host text, n bigint, v float8);
            SELECT create_distributed_table('by_bigint', 'n');""")
        n = 3000
        body = (lines("by_text", n) + lines("by_varchar", n)
                + "".join(f"by_bigint,host=h n={i * 7919 - 10**6}i,v={i} {T0_NS + i * 10**9}\n"
                          for i in range(n)))
        send_tcp(c.tcp_port, body)
        for table in ("by_text", "by_varchar", "by_bigint"):
            wait_for(lambda: c.scalar(f"SELECT count(*) FROM {table}") == n, 60,
                     what=f"{n} rows in {table}")
            assert c.scalar(f"SELECT sum(v) FROM {table}") == sum(range(n))
            assert shell_bytes(c, table) == 0
        assert assert_rows_in_their_shards(c, "by_text", "host") == n
        assert assert_rows_in_their_shards(c, "by_varchar", "host") == n
        assert assert_rows_in_their_shards(c, "by_bigint", "n") == n
        for host in ("h0", "h7", "h49"):
            assert c.scalar("SELECT count(*) FROM by_text WHERE host = %s", (host,)) == n // 50
        assert c.scalar("SELECT count(*) FROM by_bigint WHERE n = %s", (42 * 7919 - 10**6,)) == 1

        # A trigger on one shard only (as run_command_on_shards makes them): that table's
        # rows go through Citus, which runs the trigger; the others' still come straight.
        trigger_shard = shard_relations(c, "by_text")[0][1]
        c.execute(f"""
            CREATE TABLE fired (host text);
            CREATE FUNCTION note_host() RETURNS trigger LANGUAGE plpgsql AS
                $$BEGIN INSERT INTO public.fired VALUES (NEW.host); RETURN NEW; END$$;
            CREATE TRIGGER note_host BEFORE INSERT ON {trigger_shard}
                FOR EACH ROW EXECUTE FUNCTION note_host();""")
        t2 = T0_NS + 2 * 10**6 * 10**9
        send_tcp(c.tcp_port, lines("by_text", n, t2))
        wait_for(lambda: c.scalar("SELECT count(*) FROM by_text") == 2 * n, 60,
                 what="the rows of a table one of whose shards has a trigger")
        assert c.scalar(f"SELECT count(*) FROM {trigger_shard} WHERE _time >= "
                        "to_timestamp(%s)", (t2 / 1e9,)) == c.scalar("SELECT count(*) FROM fired")
        assert c.scalar("SELECT count(*) FROM fired") > 0
        assert assert_rows_in_their_shards(c, "by_text", "host") == 2 * n

        # A partition named by the measurement: its partition constraint holds (a row out of
        # its range is rejected), as through Citus.
        c.execute("""
            CREATE TABLE parted (_time timestamptz NOT NULL, host text, v float8)
                PARTITION BY RANGE (_time);
            CREATE TABLE parted_a PARTITION OF parted
                FOR VALUES FROM ('2023-01-01') TO ('2023-11-14 22:14:00+00');
            CREATE TABLE parted_b PARTITION OF parted
                FOR VALUES FROM ('2023-11-14 22:14:00+00') TO ('2024-01-01');
            SELECT create_distributed_table('parted', 'host');""")
        before = c.stat_total("rows_rejected_insert", kind="worker")
        send_tcp(c.tcp_port, lines("parted_a", 100, T0_NS - 200 * 10**9)
                 + lines("parted_a", 5, T0_NS + 100 * 10**9))
        wait_for(lambda: c.stat_total("rows_rejected_insert", kind="worker") == before + 5, 60,
                 what="the rows out of the partition's range rejected")
        assert c.scalar("SELECT count(*) FROM parted_a") == 100
        assert c.scalar("SELECT count(*) FROM parted_b") == 0

        if c.http_port:
            rejected = c.stat_total("rows_rejected_insert", kind="worker")
            t1 = T0_NS + 10**6 * 10**9
            r = write(c.http_port, lines("by_varchar", 100, t1) + f"by_varchar,host=bad v=-1 {t1}\n")
            assert_json_error(r, 400, "partial write")
            assert c.scalar("SELECT count(*) FROM by_varchar") == n + 100
            assert c.stat_total("rows_rejected_insert", kind="worker") == rejected + 1
    finally:
        c.destroy()


def test_pg_influx_may_be_preloaded_before_citus():
    """Citus refuses to load after a library that set the planner hook ("Citus has to be
    loaded first"): pg_influx sets its hook only when its first statement serves rows, so a
    server with shared_preload_libraries = 'pg_influx,citus' starts, and writes a
    distributed table (single-node Citus: the shards on the coordinator)."""
    c = Cluster("preload_order", {"shared_preload_libraries": "'pg_influx,citus'",
                                  "max_worker_processes": "24"})
    try:
        single_node_citus(c, "ordered")
        send_tcp(c.tcp_port, lines("ordered", 500))
        wait_for(lambda: c.scalar("SELECT count(*) FROM ordered") == 500, 60)
        assert shell_bytes(c, "ordered") == 0
    finally:
        c.destroy()


def test_a_coordinator_refusing_its_own_connections_holds_the_rows():
    """Citus writes the shards on the coordinator through connections to itself when it
    does not execute locally; a coordinator that refuses them (out of connections, a
    pg_hba.conf rule) is out of reach like any node, not a fault of the rows: rows that go
    through Citus' statements (here: a table with a point key and an on-conflict policy)
    are held and land once it accepts again.  The check of the nodes used to skip the
    coordinator's own group, found every (other) node answering and rejected the rows as bad.
    Rows of a plain table need no connection at all: its shards are on this node and take
    them directly, at once."""
    c = Cluster("citus_loopback", {"shared_preload_libraries": "'citus,pg_influx'",
                                   "max_worker_processes": "24",
                                   "citus.enable_local_execution": "off"})

    def sql(statement, params=None):
        # Through the Unix socket: the test's own session is not refused with Citus' ones.
        conn = psycopg2.connect(host=c.dir, port=c.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                # Counting needs no connection to itself either (the workers' setting is off).
                cur.execute("SET citus.enable_local_execution = on")
                cur.execute(statement, params)
                return cur.fetchone()[0] if cur.description else None
        finally:
            conn.close()

    def rejected():
        return sql("SELECT sum(rows_rejected_insert + rows_rejected_table + rows_rejected_value) "
                   "FROM influx.stats() WHERE kind = 'worker'")

    try:
        single_node_citus(c, "direct")
        sql("""CREATE TABLE loopback (_time timestamptz NOT NULL, host text, v float8,
                                      UNIQUE (host, _time));
               SELECT create_distributed_table('loopback', 'host');
               SELECT influx.set_on_conflict('loopback', 'skip')""")
        send_tcp(c.tcp_port, lines("loopback", 100))
        wait_for(lambda: sql("SELECT count(*) FROM loopback") == 100, 60,
                 what="rows written while the coordinator accepts its own connections")
        before = rejected()
        hba = os.path.join(c.data, "pg_hba.conf")
        with open(hba) as f:
            original = f.read()
        with open(hba, "w") as f:
            f.write("host all all all reject\n" + original)
        sql("SELECT pg_reload_conf()")
        # Citus keeps the connections it has: new ones are refused from the next flush on.
        sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND client_addr IS NOT NULL")
        # The plain table's rows go into its shards here, with no connection: at once.
        send_tcp(c.tcp_port, lines("direct", 300))
        wait_for(lambda: sql("SELECT count(*) FROM direct") == 300, 60,
                 what="the plain table's rows while the coordinator refuses connections")
        retries = sql("SELECT sum(flush_retries) FROM influx.stats() WHERE kind = 'worker'")
        t1 = T0_NS + 10_000 * 1_000_000_000
        send_tcp(c.tcp_port, lines("loopback", 500, t1))
        wait_for(lambda: sql("SELECT sum(flush_retries) FROM influx.stats() "
                             "WHERE kind = 'worker'") >= retries + 5 or rejected() > before, 90,
                 what="the rows tried again while the coordinator refuses connections")
        assert rejected() == before, "rows were rejected while the coordinator refused connections"
        assert sql("SELECT count(*) FROM loopback") == 100
        with open(hba, "w") as f:
            f.write(original)
        sql("SELECT pg_reload_conf()")
        wait_for(lambda: sql("SELECT count(*) FROM loopback") == 600, 90,
                 what="every row once the coordinator accepts connections again")
        assert rejected() == before
        assert shell_bytes(c, "direct") == 0 and shell_bytes(c, "loopback") == 0
    finally:
        c.destroy()
