"""
test_locktable.py — the server's shared lock table, filled by another session, makes a
flush fail with "out of shared memory" while it opens its tables.  That says nothing about
the rows: they are kept and written (fewer tables per transaction, or once the other
session lets go), none rejected.  A batch whose own tables need more locks than the table
holds is written in parts.
"""

import psycopg2

from conftest import Cluster, send_tcp, wait_for

# A small lock table: max_locks_per_transaction x (max_connections + other processes).
CLUSTER_CONF = {"influx.workers": "1", "max_locks_per_transaction": "10",
                "max_connections": "10"}

T0_NS = 1_700_000_000_000_000_000


def stat(c, counter):
    return sum(r.get(counter) or 0 for r in c.stats())


def test_a_full_lock_table_keeps_the_rows(listener):
    c = listener
    for k in range(0, 800, 100):
        c.execute("".join(f"CREATE TABLE lt{i} (a int);" for i in range(k, k + 100)))
    # 80 tables: more than the room left (and its 16 fast-path locks) even if the lines
    # arrive in two or three batches.
    c.execute("".join(f"CREATE TABLE m{i} (_time timestamptz, v bigint);" for i in range(80)))
    hog = c.connect()
    hog.autocommit = False
    cur = hog.cursor()
    locked = 0
    try:
        for i in range(800):
            cur.execute(f"SAVEPOINT s{i}; LOCK TABLE lt{i} IN SHARE MODE")
            locked = i
    except psycopg2.Error as e:
        assert e.pgcode == "53200", e
        # Room for a few locks, not for a flush's 80 tables.
        cur.execute(f"ROLLBACK TO SAVEPOINT s{locked - 8}")
    else:
        raise AssertionError("800 locks fitted: the lock table is larger than planned")
    try:
        retries = stat(c, "flush_retries")
        rejected = stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table")
        send_tcp(c.tcp_port, "".join(f"m{i} v={i}i {T0_NS + i}\n" for i in range(80)))
        # At least one attempt fails; the next ones write fewer tables at a time (see the
        # next test), so the rows may land before the locks are freed, or after.
        wait_for(lambda: stat(c, "flush_retries") >= retries + 1, 30,
                 what="the flush retried while the lock table is full")
        assert stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") == rejected
    finally:
        hog.rollback()
        hog.close()
    wait_for(lambda: sum(c.scalar(f"SELECT count(*) FROM m{i}") for i in range(80)) == 80, 30,
             what="all 80 rows once the locks are free")
    assert stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") == rejected


def test_a_batch_whose_own_tables_fill_the_lock_table_is_written_in_parts():
    """A batch naming 500 tables of 20 partitions each (one line per partition) needs more
    locks than the server's lock table holds. The flush fails with "out of shared memory";
    it used to try the same batch again and again (never committing, filling the lock table
    for every other session at each try). Now each such failure halves the tables the next
    attempt writes and hands the others back, so every row lands."""
    c = Cluster("locktable_parts", {"influx.workers": "1", "max_connections": "10",
                                    "max_locks_per_transaction": "100",
                                    "influx.create_tables": "off",
                                    "influx.flush_interval": "5000", "influx.flush_idle": "1000"})
    tables, days = 500, 20
    t0 = 1_700_006_400  # 2023-11-15 00:00 UTC
    try:
        c.init()
        c.start()
        c.execute("CREATE EXTENSION pg_influx")
        c.wait_listener_running()
        for i in range(tables):
            c.execute(f"CREATE TABLE p{i} (_time timestamptz NOT NULL, host text, v float8) "
                      "PARTITION BY RANGE (_time);" + "".join(
                          f"CREATE TABLE p{i}_{d} PARTITION OF p{i} FOR VALUES FROM "
                          f"(to_timestamp({t0 + d * 86400})) TO (to_timestamp({t0 + (d + 1) * 86400}));"
                          for d in range(days)))
        body = "".join(f"p{i},host=a v={d} {(t0 + d * 86400) * 10**9 + 1}\n"
                       for i in range(tables) for d in range(days))
        send_tcp(c.tcp_port, body)
        wait_for(lambda: c.stat_total("rows_inserted", kind="worker") >= tables * days, 120,
                 what=f"{tables * days} rows")
        assert c.scalar("SELECT count(*) FROM p0") == days
        assert c.scalar(f"SELECT count(*) FROM p{tables - 1}") == days
        assert stat(c, "rows_rejected_insert") == 0 and stat(c, "rows_rejected_table") == 0
    finally:
        c.destroy()
