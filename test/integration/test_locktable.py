"""
test_locktable.py — the server's shared lock table, filled by another session, makes a
flush fail with "out of shared memory" while it opens its tables.  That says nothing about
the rows: they are kept and written once the other session lets go, none rejected.
"""

import psycopg2

from conftest import send_tcp, wait_for

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
    c.execute("".join(f"CREATE TABLE m{i} (_time timestamptz, v bigint);" for i in range(40)))
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
        # Room for a few locks, not for a flush's 40 tables.
        cur.execute(f"ROLLBACK TO SAVEPOINT s{locked - 8}")
    else:
        raise AssertionError("800 locks fitted: the lock table is larger than planned")
    try:
        retries = stat(c, "flush_retries")
        rejected = stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table")
        send_tcp(c.tcp_port, "".join(f"m{i} v={i}i {T0_NS + i}\n" for i in range(40)))
        wait_for(lambda: stat(c, "flush_retries") >= retries + 2, 30,
                 what="the flush retried while the lock table is full")
        assert stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") == rejected
    finally:
        hog.rollback()
        hog.close()
    wait_for(lambda: sum(c.scalar(f"SELECT count(*) FROM m{i}") for i in range(40)) == 40, 30,
             what="all 40 rows once the locks are free")
    assert stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") == rejected
