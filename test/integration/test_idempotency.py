"""
test_idempotency.py — idempotent writes (docs/idempotency.md): a table whose unique key is
_time plus tags identifies points, and a row whose point exists follows the policy
(influx.on_conflict, or the table's own from influx.set_on_conflict()): merge, replace,
skip or error.

What is checked, with real HTTP requests, TCP streams and influx.insert():
- the same request (and the same TCP stream) sent twice leaves each table as after one
  send, for every policy; `error` rejects the second send's rows (today's behaviour);
- a retry carrying some of the fields merges them (merge) or resets the others (replace);
- two rows of one point in one request are applied in order;
- a partitioned table with the key; a table with triggers sees the row triggers an
  INSERT ... ON CONFLICT DO UPDATE of the same rows fires;
- influx.create_unique_key makes the key (NULLS NOT DISTINCT) and add_columns widens it;
- two senders writing the same points at once: no duplicate, nothing rejected;
- lines without a timestamp share one server time per request;
- privileges: the writer needs UPDATE for merge, only the owner sets a table's policy.

The module's cluster runs with influx.on_conflict = merge; tables that test another policy
set it with influx.set_on_conflict().
"""

import contextlib
import itertools
import threading

import psycopg2
import pytest

from conftest import send_tcp, wait_for
from http_support import (T0_NS, Connection, assert_204, assert_json_error, require_http,
                          telegraf_batch, telegraf_write, write)

CLUSTER_CONF = {
    "influx.on_conflict": "'merge'",
}


@pytest.fixture(scope="module")
def http(listener):
    require_http(listener)
    return listener


def rows(cluster, table, order="_time, host"):
    return cluster.query(f"SELECT * FROM {table} ORDER BY {order}")


def cpu_lines(n, t0=T0_NS, value=0.0, hosts=4):
    """n Telegraf-shaped cpu lines: `hosts` hosts, 2 cpus each, one point per (host, cpu,
    second), every field given."""
    lines = []
    for i in range(n):
        host = f"h{i % hosts}"
        cpu = f"cpu{(i // hosts) % 2}"
        t = t0 + (i // (hosts * 2)) * 1_000_000_000
        lines.append(f"{{m}},cpu={cpu},host={host} usage_user={i % 97 + value},"
                     f"usage_system={i % 13 + value},usage_idle={50 + value} {t}")
    return "\n".join(lines) + "\n"


def make_cpu_table(cluster, name, policy=None):
    cluster.execute(f"""
        DROP TABLE IF EXISTS {name};
        CREATE TABLE {name} (
            _time timestamptz NOT NULL, host text, cpu text,
            usage_user float8, usage_system float8, usage_idle float8,
            UNIQUE NULLS NOT DISTINCT (_time, host, cpu))""")
    if policy is not None:
        cluster.execute("SELECT influx.set_on_conflict(%s, %s)", (name, policy))


def counter(cluster, name):
    return cluster.stat_total(name, kind="worker")


_probes = itertools.count()


@contextlib.contextmanager
def unique_keys(cluster, add_columns=False):
    """influx.create_unique_key on (and influx.add_columns, if asked) for the block: set,
    reloaded, and polled until the workers create a probe measurement's table with a key."""
    cluster.execute("ALTER SYSTEM SET influx.create_unique_key = on")
    if add_columns:
        cluster.execute("ALTER SYSTEM SET influx.add_columns = on")
    cluster.execute("SELECT pg_reload_conf()")
    try:
        def created_with_key():
            name = f"probe_key_{next(_probes)}"
            assert_204(write(cluster.http_port, f"{name},host=a v=1 {T0_NS}\n"))
            return cluster.scalar("SELECT count(*) FROM pg_constraint WHERE conrelid = "
                                  "%s::regclass AND contype = 'u'", (name,)) == 1
        wait_for(created_with_key, 10, what="influx.create_unique_key in force")
        yield
    finally:
        cluster.execute("ALTER SYSTEM RESET influx.create_unique_key")
        cluster.execute("ALTER SYSTEM RESET influx.add_columns")
        cluster.execute("SELECT pg_reload_conf()")


# ---------------------------------------------------------------------------------------
# The same write twice
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["merge", "replace", "skip"])
def test_http_request_sent_twice_changes_nothing(http, policy):
    table = f"twice_http_{policy}"
    make_cpu_table(http, table, policy)
    body = cpu_lines(2000).replace("{m}", table)
    assert_204(write(http.http_port, body))
    first = rows(http, table, "_time, host, cpu")
    assert len(first) == 2000
    xmins = http.query(f"SELECT xmin::text FROM {table} ORDER BY _time, host, cpu")

    assert_204(write(http.http_port, body))
    assert rows(http, table, "_time, host, cpu") == first
    # Equal points are not written again: no new row versions.
    assert http.query(f"SELECT xmin::text FROM {table} ORDER BY _time, host, cpu") == xmins


def test_policy_error_rejects_the_second_send(http):
    table = "twice_http_error"
    make_cpu_table(http, table, "error")
    body = cpu_lines(100).replace("{m}", table)
    assert_204(write(http.http_port, body))
    first = rows(http, table, "_time, host, cpu")
    r = write(http.http_port, body)
    assert_json_error(r, 400, "partial write")
    assert "100 of 100" in r.json()["error"] or "dropped=100" in r.json()["error"]
    assert rows(http, table, "_time, host, cpu") == first


@pytest.mark.parametrize("policy", ["merge", "replace", "skip"])
def test_tcp_stream_sent_twice_changes_nothing(http, policy):
    table = f"twice_tcp_{policy}"
    make_cpu_table(http, table, policy)
    body = cpu_lines(3000).replace("{m}", table)
    send_tcp(http.tcp_port, body)
    wait_for(lambda: http.row_count(table) == 3000, 20, what="first TCP send committed")
    first = rows(http, table, "_time, host, cpu")

    name = "rows_skipped" if policy == "skip" else "rows_merged"
    before = counter(http, name)
    send_tcp(http.tcp_port, body)
    wait_for(lambda: counter(http, name) - before >= 3000, 20,
             what=f"second TCP send counted in {name}")
    assert counter(http, name) - before == 3000
    assert rows(http, table, "_time, host, cpu") == first


def test_module_setting_applies_without_table_policy(http):
    """influx.on_conflict = merge (the module's setting) with no influx.set_on_conflict()."""
    table = "twice_setting"
    make_cpu_table(http, table)
    body = cpu_lines(500).replace("{m}", table)
    assert_204(write(http.http_port, body))
    assert_204(write(http.http_port, body.replace("usage_idle=50", "usage_idle=51")))
    assert http.row_count(table) == 500
    assert http.scalar(f"SELECT count(*) FROM {table} WHERE usage_idle = 51") == 500


def test_insert_function_twice(http):
    table = "twice_insert_fn"
    make_cpu_table(http, table)
    body = cpu_lines(300).replace("{m}", table)
    assert http.scalar("SELECT influx.insert(%s)", (body,)) == 300
    first = rows(http, table, "_time, host, cpu")
    # Rows written: merged onto their points (none of them new).
    assert http.scalar("SELECT influx.insert(%s)", (body,)) == 300
    assert rows(http, table, "_time, host, cpu") == first


# ---------------------------------------------------------------------------------------
# Some of the fields
# ---------------------------------------------------------------------------------------


def test_merge_updates_only_the_fields_a_line_carries(http):
    table = "partial_merge"
    make_cpu_table(http, table, "merge")
    t = T0_NS
    assert_204(write(http.http_port,
                     f"{table},host=a,cpu=c0 usage_user=1,usage_system=2,usage_idle=3 {t}\n"
                     f"{table},host=b,cpu=c0 usage_user=1,usage_system=2,usage_idle=3 {t}\n"))
    assert_204(write(http.http_port,
                     f"{table},host=a,cpu=c0 usage_user=10 {t}\n"
                     f"{table},host=b,cpu=c0 usage_system=20,usage_idle=30 {t}\n"))
    got = http.query(f"SELECT host, usage_user, usage_system, usage_idle FROM {table} "
                     "ORDER BY host")
    assert got == [("a", 10.0, 2.0, 3.0), ("b", 1.0, 20.0, 30.0)]


def test_replace_resets_the_fields_a_line_does_not_carry(http):
    table = "partial_replace"
    make_cpu_table(http, table, "replace")
    http.execute(f"ALTER TABLE {table} ALTER usage_idle SET DEFAULT -1")
    t = T0_NS
    assert_204(write(http.http_port,
                     f"{table},host=a,cpu=c0 usage_user=1,usage_system=2,usage_idle=3 {t}\n"))
    assert_204(write(http.http_port, f"{table},host=a,cpu=c0 usage_user=10 {t}\n"))
    got = http.query(f"SELECT host, usage_user, usage_system, usage_idle FROM {table}")
    assert got == [("a", 10.0, None, -1.0)]


def test_leftover_fields_merge_key_by_key(http):
    table = "partial_jsonb"
    http.execute(f"""CREATE TABLE {table} (_time timestamptz NOT NULL, host text,
                     _fields jsonb, PRIMARY KEY (_time, host))""")
    http.execute("SELECT influx.set_on_conflict(%s, 'merge')", (table,))
    t = T0_NS
    assert_204(write(http.http_port, f"{table},host=a x=1,y=2 {t}\n"))
    assert http.scalar(f"SELECT _fields FROM {table}") == {"x": 1.0, "y": 2.0}
    assert_204(write(http.http_port, f"{table},host=a y=20,z=\"s\" {t}\n"))
    assert http.scalar(f"SELECT _fields FROM {table}") == {"x": 1.0, "y": 20.0, "z": "s"}


def test_one_point_twice_in_one_request_is_applied_in_order(http):
    table = "same_batch"
    make_cpu_table(http, table, "merge")
    t = T0_NS
    body = "".join([
        f"{table},host=a,cpu=c0 usage_user=1,usage_system=1 {t}\n",
        f"{table},host=b,cpu=c0 usage_user=5 {t}\n",
        f"{table},host=a,cpu=c0 usage_system=2,usage_idle=2 {t}\n",
        f"{table},host=a,cpu=c0 usage_user=3 {t}\n",
    ])
    assert_204(write(http.http_port, body))
    got = http.query(f"SELECT host, usage_user, usage_system, usage_idle FROM {table} "
                     "ORDER BY host")
    assert got == [("a", 3.0, 2.0, 2.0), ("b", 5.0, None, None)]


def test_one_point_three_times_in_a_table_with_triggers(http):
    """The statement-only path (a table with triggers) applies repeats in order too."""
    http.execute(TRIGGER_LOG)
    table = "same_batch_trig"
    make_trigger_table(http, table)
    t = T0_NS
    body = "".join([
        f"{table},host=a,cpu=c0 usage_user=1,usage_system=1 {t}\n",
        f"{table},host=a,cpu=c0 usage_system=2 {t}\n",
        f"{table},host=a,cpu=c0 usage_user=3 {t}\n",
    ])
    assert_204(write(http.http_port, body))
    got = http.query(f"SELECT host, usage_user, usage_system FROM {table}")
    assert got == [("a", 3.0, 2.0)]
    calls = http.query("SELECT op, tg_when FROM trigger_log WHERE tbl = %s AND level = 'ROW' "
                       "ORDER BY 1, 2", (table,))
    # One insert and two updates, each with its BEFORE and AFTER call: no attempt that was
    # rolled back left more.
    assert sorted(calls) == sorted([("INSERT", "BEFORE"), ("INSERT", "AFTER")]
                                   + [("INSERT", "BEFORE"), ("UPDATE", "BEFORE"),
                                      ("UPDATE", "AFTER")] * 2)


def test_changed_values_are_written(http):
    """A resend with other values (the statement path, not the equal-row shortcut)."""
    table = "changed_values"
    make_cpu_table(http, table, "merge")
    body = cpu_lines(4000).replace("{m}", table)
    assert_204(write(http.http_port, body))
    before = counter(http, "rows_merged")
    assert_204(write(http.http_port, cpu_lines(4000, value=0.5).replace("{m}", table)))
    assert http.row_count(table) == 4000
    assert http.scalar(f"SELECT count(*) FROM {table} WHERE usage_idle = 50.5") == 4000
    wait_for(lambda: counter(http, "rows_merged") - before >= 4000, 10,
             what="rows_merged counted")


def test_resend_mixed_with_new_points_and_another_table(http):
    """A request whose lines are half resent points (changed values) and half new ones,
    with a table without a key in the same request: the first attempt, written without
    lookups, fails on the key and is written again with them (table_writer.hpp); every line
    lands once and is counted once."""
    table, plain = "mixed_resend", "mixed_plain"
    make_cpu_table(http, table, "merge")
    http.execute(f"DROP TABLE IF EXISTS {plain}")
    assert_204(write(http.http_port, cpu_lines(1000).replace("{m}", table)))
    inserted, merged = counter(http, "rows_inserted"), counter(http, "rows_merged")

    resent = cpu_lines(1000, value=0.5).replace("{m}", table).splitlines()[500:]
    new = cpu_lines(500, t0=T0_NS + 10**13).replace("{m}", table).splitlines()
    others = [f"{plain},host=h{i} v={i}i {T0_NS + i}" for i in range(300)]
    body = "\n".join(x for triple in zip(resent, new, others + [""] * 200) for x in triple if x)
    assert_204(write(http.http_port, body + "\n"))

    assert http.row_count(table) == 1500
    assert http.scalar(f"SELECT count(*) FROM {table} WHERE usage_idle = 50.5") == 500
    assert http.row_count(plain) == 300
    wait_for(lambda: counter(http, "rows_merged") - merged >= 500, 10, what="rows_merged")
    assert counter(http, "rows_merged") - merged == 500
    assert counter(http, "rows_inserted") - inserted == 800


def test_point_committed_by_another_session_during_the_write_is_merged(http):
    """A flush finds an existing point (its first attempt fails) and, while it writes again,
    another session commits a point the flush also carries: that row is merged, never
    rejected. (The write used to isolate rows in subtransactions at once, and the point
    committed between a row's lookup and its insert failed it as a duplicate.)"""
    c = http
    T1 = T0_NS + 10**9
    for t in ("race_u", "race_t"):
        c.execute(f"DROP TABLE IF EXISTS {t}")
        c.execute(f"CREATE TABLE {t} (_time timestamptz NOT NULL, host text, v float8, "
                  f"UNIQUE NULLS NOT DISTINCT (_time, host))")
    c.execute("INSERT INTO race_u VALUES (to_timestamp(%s), 'r', 0)", (T0_NS / 1e9,))
    c.execute("INSERT INTO race_t VALUES (to_timestamp(%s), 'p', 0)", (T0_NS / 1e9,))
    merged, rejected = counter(c, "rows_merged"), counter(c, "rows_rejected_insert")
    x = c.connect()
    try:
        x.autocommit = False
        cur = x.cursor()
        cur.execute("UPDATE race_t SET v = 99 WHERE host = 'p'")  # the flush waits on this row
        send_tcp(c.tcp_port, f"race_u,host=r v=1 {T0_NS}\nrace_t,host=q v=1 {T1}\n"
                             f"race_t,host=p v=2 {T0_NS}\n")
        wait_for(lambda: c.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                  "'influx worker' AND wait_event = 'transactionid'") == 1, 15,
                 what="the flush waiting for the other session")
        cur.execute("INSERT INTO race_t VALUES (to_timestamp(%s), 'q', 5)", (T1 / 1e9,))
        x.commit()
    finally:
        x.close()
    wait_for(lambda: counter(c, "rows_merged") - merged >= 3, 15, what="three rows merged")
    assert c.query("SELECT host, v FROM race_t ORDER BY host") == [("p", 2.0), ("q", 1.0)]
    assert c.query("SELECT host, v FROM race_u") == [("r", 1.0)]
    assert counter(c, "rows_rejected_insert") == rejected


def test_resend_after_many_clean_writes(http):
    """After a resend, a table's writes look up every point for a while, then go back to
    writing without lookups: a resend after that is still merged, not duplicated nor
    rejected."""
    table = "resend_later"
    make_cpu_table(http, table, "merge")
    first = cpu_lines(200).replace("{m}", table)
    assert_204(write(http.http_port, first))
    assert_204(write(http.http_port, first))
    rejected = counter(http, "rows_rejected_insert")
    for k in range(1, 81):
        assert_204(write(http.http_port, cpu_lines(200, t0=T0_NS + k * 10**12).replace("{m}", table)))
    xmins = http.query(f"SELECT xmin::text FROM {table} ORDER BY _time, host, cpu")
    assert_204(write(http.http_port, first))
    assert_204(write(http.http_port, cpu_lines(200, value=0.25).replace("{m}", table)))
    assert http.row_count(table) == 81 * 200
    assert http.scalar(f"SELECT count(*) FROM {table} WHERE usage_idle = 50.25") == 200
    after = http.query(f"SELECT xmin::text FROM {table} ORDER BY _time, host, cpu")
    assert after[200:] == xmins[200:]
    assert counter(http, "rows_rejected_insert") == rejected


# ---------------------------------------------------------------------------------------
# Partitions, triggers
# ---------------------------------------------------------------------------------------


def test_partitioned_table_with_the_key(http):
    table = "part_key"
    http.execute(f"""
        CREATE TABLE {table} (_time timestamptz NOT NULL, host text, cpu text,
            usage_user float8, usage_system float8, usage_idle float8,
            UNIQUE NULLS NOT DISTINCT (_time, host, cpu)) PARTITION BY RANGE (_time);
        CREATE TABLE {table}_a PARTITION OF {table}
            FOR VALUES FROM ('2023-11-14 00:00+00') TO ('2023-11-14 22:14:00+00');
        CREATE TABLE {table}_b (usage_idle float8, cpu text, _time timestamptz NOT NULL,
            usage_system float8, host text, usage_user float8);
        ALTER TABLE {table} ATTACH PARTITION {table}_b
            FOR VALUES FROM ('2023-11-14 22:14:00+00') TO ('2023-11-16 00:00+00');""")
    body = cpu_lines(2000).replace("{m}", table)
    assert_204(write(http.http_port, body))
    first = rows(http, table, "_time, host, cpu")
    assert len(first) == 2000
    assert http.scalar(f"SELECT count(*) FROM {table}_a") > 0
    assert http.scalar(f"SELECT count(*) FROM {table}_b") > 0
    assert_204(write(http.http_port, body))
    assert rows(http, table, "_time, host, cpu") == first
    assert_204(write(http.http_port, cpu_lines(2000, value=0.25).replace("{m}", table)))
    assert http.row_count(table) == 2000
    assert http.scalar(f"SELECT count(*) FROM {table} WHERE usage_idle = 50.25") == 2000


TRIGGER_LOG = """
    CREATE TABLE IF NOT EXISTS public.trigger_log (
        tbl text, op text, tg_when text, level text, host text, usage_user float8);
    CREATE OR REPLACE FUNCTION log_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_LEVEL = 'ROW' THEN
            INSERT INTO public.trigger_log VALUES (TG_TABLE_NAME, TG_OP, TG_WHEN, TG_LEVEL,
                                            NEW.host, NEW.usage_user);
            RETURN NEW;
        END IF;
        INSERT INTO public.trigger_log VALUES (TG_TABLE_NAME, TG_OP, TG_WHEN, TG_LEVEL, NULL, NULL);
        RETURN NULL;
    END $$;
"""


def make_trigger_table(cluster, name):
    make_cpu_table(cluster, name)
    for when in ("BEFORE", "AFTER"):
        for level in ("ROW", "STATEMENT"):
            cluster.execute(f"""CREATE TRIGGER {when.lower()}_{level.lower()}
                                {when} INSERT OR UPDATE ON {name}
                                FOR EACH {level} EXECUTE FUNCTION log_trigger()""")


def test_triggers_fire_as_for_insert_on_conflict(http):
    http.execute(TRIGGER_LOG)
    make_trigger_table(http, "trig_influx")
    make_trigger_table(http, "trig_sql")
    t = T0_NS
    first = [("a", 1.0, 2.0), ("b", 3.0, 4.0)]
    second = [("a", 10.0, None), ("c", 5.0, 6.0)]  # a: merges usage_user; c: new

    def body(table, points):
        out = ""
        for host, user, system in points:
            fields = f"usage_user={user}" + (f",usage_system={system}" if system else "")
            out += f"{table},host={host},cpu=c0 {fields} {t}\n"
        return out

    assert_204(write(http.http_port, body("trig_influx", first)))
    assert_204(write(http.http_port, body("trig_influx", second)))

    # The same rows as a client would write them: INSERT ... ON CONFLICT DO UPDATE.
    for points in (first, second):
        for host, user, system in points:
            cols, sets = "usage_user", "usage_user = EXCLUDED.usage_user"
            vals = [user]
            if system:
                cols += ", usage_system"
                sets += ", usage_system = EXCLUDED.usage_system"
                vals.append(system)
            http.execute(
                f"INSERT INTO trig_sql AS t (_time, host, cpu, {cols}) "
                f"VALUES (to_timestamp({t // 1_000_000_000}), %s, 'c0'{', %s' * len(vals)}) "
                f"ON CONFLICT (_time, host, cpu) DO UPDATE SET {sets}", [host] + vals)

    def row_calls(table):
        return sorted(http.query("SELECT op, tg_when, host, usage_user FROM trigger_log "
                                 "WHERE tbl = %s AND level = 'ROW'", (table,)),
                      key=repr)

    assert row_calls("trig_influx") == row_calls("trig_sql")
    assert ("UPDATE", "BEFORE", "a", 10.0) in row_calls("trig_influx")
    # Statement triggers: INSERT ... ON CONFLICT DO UPDATE fires INSERT and UPDATE ones.
    statements = http.query("SELECT DISTINCT op, tg_when FROM trigger_log "
                            "WHERE tbl = 'trig_influx' AND level = 'STATEMENT' ORDER BY 1, 2")
    assert statements == [("INSERT", "AFTER"), ("INSERT", "BEFORE"),
                          ("UPDATE", "AFTER"), ("UPDATE", "BEFORE")]
    assert rows(http, "trig_influx") == rows(http, "trig_sql")


def test_row_level_security_for_merge(http):
    """With row-level security in force, the writer's UPDATE policy decides (as for an INSERT
    ... ON CONFLICT DO UPDATE): a point it may not update is rejected, the rest lands."""
    table = "rls_merge"
    make_cpu_table(http, table, "merge")
    http.execute(f"""
        DROP ROLE IF EXISTS rls_writer;
        CREATE ROLE rls_writer LOGIN;
        GRANT INSERT, SELECT, UPDATE ON {table} TO rls_writer;
        ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
        CREATE POLICY ins ON {table} FOR INSERT WITH CHECK (true);
        CREATE POLICY sel ON {table} FOR SELECT USING (true);
        CREATE POLICY upd ON {table} FOR UPDATE USING (host <> 'locked');""")
    t = T0_NS
    body = (f"{table},host=locked,cpu=c0 usage_user=1 {t}\n"
            f"{table},host=free,cpu=c0 usage_user=1 {t}\n")
    assert http.scalar("SELECT influx.insert(%s)", (body,)) == 2
    conn = http.connect(user="rls_writer")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT influx.insert(%s)", (body.replace("=1 ", "=2 "),))
            assert cur.fetchone()[0] == 1
    finally:
        conn.close()
    got = http.query(f"SELECT host, usage_user FROM {table} ORDER BY host")
    assert got == [("free", 2.0), ("locked", 1.0)]


# ---------------------------------------------------------------------------------------
# Keys made by pg_influx
# ---------------------------------------------------------------------------------------


def test_create_unique_key_and_widening(http):
    with unique_keys(http, add_columns=True):
        m = "made_key"
        t = T0_NS

        def key_columns():
            return http.scalar("""
                SELECT array_agg(a.attname::text ORDER BY k.ord)
                FROM pg_constraint c
                CROSS JOIN unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                WHERE c.conrelid = %s::regclass AND c.contype = 'u'
                  AND obj_description(c.oid, 'pg_constraint') = 'pg_influx point key'""",
                               (m,))

        body = (f"{m},host=a,region=eu v=1 {t}\n"
                f"{m},host=b v=2 {t}\n")  # no region: NULL, still one point
        assert_204(write(http.http_port, body))
        assert key_columns() == ["_time", "host", "region"]
        assert http.scalar("SELECT indnullsnotdistinct FROM pg_index "
                           "WHERE indrelid = %s::regclass AND indisunique", (m,)) is True
        assert_204(write(http.http_port, body))
        assert http.row_count(m) == 2

        # A new tag: the key takes it in, and points differing in it stay apart.
        assert_204(write(http.http_port, f"{m},host=a,region=eu,rack=r1 v=3 {t}\n"))
        assert key_columns() == ["_time", "host", "region", "rack"]
        assert http.row_count(m) == 3
        assert_204(write(http.http_port, f"{m},host=a,region=eu,rack=r1 v=4 {t}\n"))
        assert http.row_count(m) == 3
        assert http.scalar(f"SELECT v FROM {m} WHERE rack = 'r1'") == 4.0


# ---------------------------------------------------------------------------------------
# Concurrency, server time
# ---------------------------------------------------------------------------------------


def test_two_senders_with_the_same_points(http):
    """Two requests with the same 5,000 points at once go to different workers: each point
    is inserted by one and merged by the other, never duplicated nor rejected."""
    table = "racing"
    make_cpu_table(http, table, "merge")
    rejected = counter(http, "rows_rejected_insert")
    for round_ in range(3):
        body = cpu_lines(5000, t0=T0_NS + round_ * 10**13).replace("{m}", table)
        results = []
        threads = [threading.Thread(target=lambda: results.append(write(http.http_port, body)))
                   for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert [r.status for r in results] == [204, 204], [r.body for r in results]
    assert http.row_count(table) == 15000
    assert counter(http, "rows_rejected_insert") == rejected


def test_lines_without_timestamp_share_the_request_time(http):
    table = "no_time"
    make_cpu_table(http, table, "merge")
    body = "".join(f"{table},host=h{i},cpu=c0 usage_user={i}\n" for i in range(50))
    assert_204(write(http.http_port, body))
    assert http.scalar(f"SELECT count(DISTINCT _time) FROM {table}") == 1
    # A retry of such lines is a new point (a new time), as in InfluxDB.
    assert_204(write(http.http_port, body))
    assert http.scalar(f"SELECT count(DISTINCT _time) FROM {table}") == 2
    assert http.row_count(table) == 100


# ---------------------------------------------------------------------------------------
# Privileges
# ---------------------------------------------------------------------------------------


def test_only_the_owner_sets_a_table_policy(http):
    make_cpu_table(http, "owned_policy")
    http.execute("DROP ROLE IF EXISTS not_owner; CREATE ROLE not_owner LOGIN")
    http.execute("GRANT ALL ON owned_policy TO not_owner")
    conn = http.connect(user="not_owner")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error, match="must be owner"):
                cur.execute("SELECT influx.set_on_conflict('owned_policy', 'replace')")
            with pytest.raises(psycopg2.Error, match="permission denied"):
                cur.execute("INSERT INTO influx.table_option VALUES ('public', 'owned_policy', "
                            "'replace')")
    finally:
        conn.close()
    with pytest.raises(psycopg2.Error, match="invalid on_conflict policy"):
        http.execute("SELECT influx.set_on_conflict('owned_policy', 'upsert')")
    http.execute("SELECT influx.set_on_conflict('owned_policy', 'skip')")
    assert http.query("SELECT on_conflict FROM influx.table_option "
                      "WHERE table_name = 'owned_policy'") == [("skip",)]
    http.execute("SELECT influx.set_on_conflict('owned_policy', NULL)")
    assert http.query("SELECT on_conflict FROM influx.table_option "
                      "WHERE table_name = 'owned_policy'") == []


def test_merge_needs_update_privilege(http):
    table = "no_update"
    make_cpu_table(http, table, "merge")
    http.execute(f"""DROP ROLE IF EXISTS insert_only; CREATE ROLE insert_only LOGIN;
                     GRANT SELECT, INSERT ON {table} TO insert_only""")
    t = T0_NS
    line = f"{table},host=a,cpu=c0 usage_user=1 {t}\n"
    conn = http.connect(user="insert_only")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT influx.insert(%s)", (line,))
            assert cur.fetchone()[0] == 0
            assert "permission denied for column" in " ".join(conn.notices)
    finally:
        conn.close()
    assert http.row_count(table) == 0


# ---------------------------------------------------------------------------------------
# Found by review: each failed before its fix
# ---------------------------------------------------------------------------------------
# An operator the caller defines must never run as the owner of the extension's tables
# (set_on_conflict and drop_token write them as that owner).


def test_set_on_conflict_runs_caller_operator_as_superuser(http):
    http.execute("""
        DROP ROLE IF EXISTS mallory; CREATE ROLE mallory LOGIN;
        DROP SCHEMA IF EXISTS mal CASCADE; CREATE SCHEMA mal AUTHORIZATION mallory;""")
    conn = http.connect(user="mallory")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("""
                CREATE TABLE mal.t (_time timestamptz NOT NULL, host text,
                                    PRIMARY KEY (_time, host));
                CREATE FUNCTION mal.eq(name, name) RETURNS boolean LANGUAGE plpgsql AS $$
                BEGIN
                    IF (SELECT rolsuper FROM pg_catalog.pg_roles
                        WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
                        EXECUTE 'ALTER ROLE mallory SUPERUSER';
                    END IF;
                    RETURN $1::text OPERATOR(pg_catalog.=) $2::text;
                END $$;
                CREATE OPERATOR mal.= (LEFTARG = name, RIGHTARG = name,
                                       FUNCTION = mal.eq);""")
            cur.execute("SELECT influx.set_on_conflict('mal.t', 'merge')")
            cur.execute("SET search_path = mal, pg_catalog")
            cur.execute("SELECT influx.set_on_conflict('mal.t', NULL)")
    finally:
        conn.close()
    assert http.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") is False


def test_drop_token_runs_caller_operator_as_superuser(http):
    http.execute("""
        DROP ROLE IF EXISTS eve; CREATE ROLE eve LOGIN;
        DROP SCHEMA IF EXISTS evil CASCADE; CREATE SCHEMA evil AUTHORIZATION eve;
        SELECT influx.create_token('postgres', 'some token');""")
    conn = http.connect(user="eve")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("""
                CREATE FUNCTION evil.eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
                BEGIN
                    IF (SELECT rolsuper FROM pg_catalog.pg_roles
                        WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
                        EXECUTE 'ALTER ROLE eve SUPERUSER';
                    END IF;
                    RETURN $1 OPERATOR(pg_catalog.=) $2;
                END $$;
                CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint,
                                        FUNCTION = evil.eq);""")
            cur.execute("SET search_path = evil, pg_catalog")
            try:
                cur.execute("SELECT influx.drop_token(12345)")
            except psycopg2.Error:
                pass
    finally:
        conn.close()
    assert http.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'eve'") is False


def test_composite_column_merge(http):
    http.execute("""
        DROP TABLE IF EXISTS comp; DROP TYPE IF EXISTS pair;
        CREATE TYPE pair AS (a int, b int);
        CREATE TABLE comp (_time timestamptz NOT NULL, host text, pos pair, v float8,
                           UNIQUE NULLS NOT DISTINCT (_time, host));""")
    t = T0_NS
    assert_204(write(http.http_port, f'comp,host=a pos="(1,2)",v=1 {t}\n'))
    assert http.query("SELECT pos::text, v FROM comp") == [("(1,2)", 1.0)]
    r = write(http.http_port, f'comp,host=a pos="(3,4)",v=2 {t}\n')
    got = http.query("SELECT pos::text, v FROM comp")
    # INSERT ... ON CONFLICT (_time, host) DO UPDATE would give (3,4), 2.
    assert (r.status, got) == (204, [("(3,4)", 2.0)]), (r.status, r.body, got)


def test_case_insensitive_key_in_one_request(http):
    http.execute("""
        DROP TABLE IF EXISTS ci_key;
        CREATE COLLATION IF NOT EXISTS ci (provider = icu, locale = 'und-u-ks-level2',
                                            deterministic = false);
        CREATE TABLE ci_key (_time timestamptz NOT NULL, host text COLLATE ci, cpu text,
                             usage_user float8, usage_system float8,
                             UNIQUE NULLS NOT DISTINCT (_time, host, cpu));""")
    t = T0_NS
    body = (f"ci_key,host=A,cpu=c0 usage_user=1 {t}\n"
            f"ci_key,host=a,cpu=c0 usage_system=2 {t}\n")
    r = write(http.http_port, body)
    got = http.query("SELECT usage_user, usage_system FROM ci_key")
    # Applied in order, as two INSERT ... ON CONFLICT DO UPDATE statements would.
    assert (r.status, got) == (204, [(1.0, 2.0)]), (r.status, r.body, got)


def test_create_unique_key_with_32_tags(http):
    with unique_keys(http):
        t = T0_NS
        tags = ",".join(f"t{i}=x" for i in range(32))
        r = write(http.http_port, f"many_tags,{tags} v=1 {t}\n")
        exists = http.scalar("SELECT to_regclass('many_tags') IS NOT NULL")
        assert (r.status, exists) == (204, True), (r.status, r.body)


def test_trigger_sees_rows_in_line_order(http):
    http.execute("""
        DROP TABLE IF EXISTS trig_order;
        CREATE TABLE trig_order (id bigserial, _time timestamptz NOT NULL, host text,
                                 a float8, b float8,
                                 UNIQUE NULLS NOT DISTINCT (_time, host));
        CREATE OR REPLACE FUNCTION noop_trigger() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER noop BEFORE INSERT OR UPDATE ON trig_order
            FOR EACH ROW EXECUTE FUNCTION noop_trigger();""")
    t = T0_NS
    body = (f"trig_order,host=h1 a=1 {t}\n"
            f"trig_order,host=h2 b=1 {t}\n"
            f"trig_order,host=h3 a=1 {t}\n")
    assert_204(write(http.http_port, body))
    got = [h for (h,) in http.query("SELECT host FROM trig_order ORDER BY id")]
    assert got == ["h1", "h2", "h3"], got


def run_as(c, user, sql):
    """Runs sql in a session of its own as user (autocommit)."""
    conn = c.connect(user=user)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def test_policy_outlives_the_table(http):
    http.execute("""
        DROP ROLE IF EXISTS alice; CREATE ROLE alice LOGIN;
        DROP ROLE IF EXISTS bob; CREATE ROLE bob LOGIN;
        GRANT CREATE ON SCHEMA public TO alice, bob;""")
    for user, sql in (("alice", "CREATE TABLE public.shared_name (_time timestamptz NOT NULL,"
                                " host text, v float8, PRIMARY KEY (_time, host));"
                                "SELECT influx.set_on_conflict('public.shared_name', 'skip');"
                                "DROP TABLE public.shared_name"),
                      ("bob", "CREATE TABLE public.shared_name (_time timestamptz NOT NULL,"
                              " host text, v float8, PRIMARY KEY (_time, host))")):
        run_as(http, user, sql)
    http.execute("GRANT INSERT, SELECT, UPDATE ON public.shared_name TO postgres")
    t = T0_NS
    assert_204(write(http.http_port, f"shared_name,host=a v=1 {t}\n"))
    assert_204(write(http.http_port, f"shared_name,host=a v=2 {t}\n"))
    # bob never chose a policy: influx.on_conflict (merge) applies, v = 2.
    got = http.query("SELECT v FROM shared_name")
    opt = http.query("SELECT on_conflict FROM influx.table_option "
                     "WHERE table_name = 'shared_name'")
    assert (got, opt) == ([(2.0,)], []), (got, opt)


def test_telegraf_fleet_batch_resent_changes_nothing(http):
    """A Telegraf outputs.influxdb batch (7 measurements, sparse fields, strings with escapes,
    unsigned, booleans; gzip, chunked) into tables created with their point key, sent three
    times as a retrying Telegraf would: every table is as after the first send."""
    with unique_keys(http):
        body, counts = telegraf_batch(0, size=5000, prefix="fleet_")
        conn = Connection(http.http_port)
        try:
            assert_204(telegraf_write(conn, body, db="public"))
            snapshot = {m: http.query(f"SELECT * FROM {m} ORDER BY _time") for m in counts}
            assert {m: len(r) for m, r in snapshot.items()} == counts
            merged = counter(http, "rows_merged")
            for _ in range(2):
                assert_204(telegraf_write(conn, body, db="public"))
            assert {m: http.query(f"SELECT * FROM {m} ORDER BY _time") for m in counts} == snapshot
            wait_for(lambda: counter(http, "rows_merged") - merged == 2 * 5000, 10,
                     what="both resends counted as merged")
        finally:
            conn.close()


def test_a_renamed_schema_does_not_strand_the_kept_statements(http):
    """The statements that write existing points are prepared once per table and kept.
    PostgreSQL parses a kept statement again from its text after any schema change, and
    the text names the table by schema: after ALTER SCHEMA ... RENAME, the kept statements
    named a schema that no longer existed and every changed point was rejected (42P01)
    until the worker restarted.  A statement whose names changed is prepared again."""
    c = http
    c.execute("DROP SCHEMA IF EXISTS renamed_a CASCADE; DROP SCHEMA IF EXISTS renamed_b CASCADE; "
              "CREATE SCHEMA renamed_a")
    make_cpu_table(c, "renamed_a.cpu", "merge")
    assert_204(write(c.http_port, cpu_lines(400).replace("{m}", "cpu"), db="renamed_a"))
    # Changed values of existing points: the statement path, in every worker.
    for k in range(1, 5):
        assert_204(write(c.http_port, cpu_lines(400, value=k / 10).replace("{m}", "cpu"),
                         db="renamed_a"))
    c.execute("ALTER SCHEMA renamed_a RENAME TO renamed_b")
    for k in range(6, 10):
        assert_204(write(c.http_port, cpu_lines(400, value=k / 10).replace("{m}", "cpu"),
                         db="renamed_b"))
    assert c.scalar("SELECT count(*) FROM renamed_b.cpu WHERE usage_idle = 50.9") == 400
    assert c.row_count("renamed_b.cpu") == 400


@pytest.mark.parametrize("move", ["rename", "set schema"])
def test_a_renamed_tables_policy_does_not_pass_to_the_next_table_of_its_name(http, move):
    """alice sets `replace` on her table, then renames it (or moves it to another schema);
    bob creates a table of the old name.  The policy, kept by name, used to stay behind and
    apply to bob's table: his rows replaced instead of merging (a field he had written was
    wiped), a policy only alice, not he, had chosen."""
    name = "renamed_policy_" + move.replace(" ", "_")
    http.execute(f"""
        CREATE SCHEMA {name}_away;
        CREATE ROLE {name}_alice LOGIN; CREATE ROLE {name}_bob LOGIN;
        GRANT CREATE ON SCHEMA public, {name}_away TO {name}_alice, {name}_bob;""")
    away = (f"ALTER TABLE public.{name} RENAME TO {name}_alice" if move == "rename" else
            f"ALTER TABLE public.{name} SET SCHEMA {name}_away")
    for user, sql in ((f"{name}_alice", f"CREATE TABLE public.{name} (_time timestamptz NOT NULL,"
                                f" host text, a bigint, b bigint, PRIMARY KEY (_time, host));"
                                f"SELECT influx.set_on_conflict('public.{name}', 'replace');"
                                f"{away}"),
                      (f"{name}_bob", f"CREATE TABLE public.{name} (_time timestamptz NOT NULL,"
                                      f" host text, a bigint, b bigint, PRIMARY KEY (_time, host))")):
        run_as(http, user, sql)
    http.execute(f"GRANT INSERT, SELECT, UPDATE ON public.{name} TO postgres")
    assert http.query("SELECT schema_name, table_name FROM influx.table_option "
                      "WHERE table_name LIKE %s", (name + "%",)) == []
    assert_204(write(http.http_port, f"{name},host=h a=1i,b=2i {T0_NS}\n"))
    assert_204(write(http.http_port, f"{name},host=h a=5i {T0_NS}\n"))
    # bob never chose a policy: influx.on_conflict (merge) applies, b stays.
    assert http.query(f"SELECT a, b FROM public.{name}") == [(5, 2)]
