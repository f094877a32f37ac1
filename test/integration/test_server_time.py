"""
test_server_time.py — lines without a timestamp get the server's time once per unit a
sender sent (docs/idempotency.md): one time per HTTP request, one per TCP or UDP chunk, even
when a worker reads that chunk in pieces: a flush takes at most its share of the lock
table in tables (src/ingest/insert.cpp MaxTablesPerFlush), so a chunk naming more
measurements than that is read in two flushes.
"""

import pytest

from conftest import send_tcp, send_udp, wait_for
from http_support import assert_204, require_http, write

CLUSTER_CONF = {"influx.create_tables": "on"}


def lines(table, n):
    return "".join(f"{table},host=h{i} v={i}\n" for i in range(n))


def test_tcp_chunk_read_in_pieces_shares_one_time(listener):
    listener.execute("CREATE TABLE tcp_now (_time timestamptz, host text, v float8)")
    body = lines("tcp_now", 200)  # ~3 kB: one read, one chunk, 8 batches of 25
    send_tcp(listener.tcp_port, body)
    wait_for(lambda: listener.row_count("tcp_now") == 200, 20, what="200 rows")
    assert listener.scalar("SELECT count(DISTINCT _time) FROM tcp_now") == 1


def test_udp_datagram_read_in_pieces_shares_one_time(listener):
    listener.execute("CREATE TABLE udp_now (_time timestamptz, host text, v float8)")
    send_udp(listener.udp_port, lines("udp_now", 60))  # ~1 kB: one datagram
    wait_for(lambda: listener.row_count("udp_now") == 60, 20, what="60 rows")
    assert listener.scalar("SELECT count(DISTINCT _time) FROM udp_now") == 1


def test_http_request_shares_one_time(listener):
    require_http(listener)
    listener.execute("CREATE TABLE http_now (_time timestamptz, host text, v float8)")
    assert_204(write(listener.http_port, lines("http_now", 500)))
    assert listener.scalar("SELECT count(DISTINCT _time) FROM http_now") == 1
    assert listener.row_count("http_now") == 500


def flush_table_cap(c):
    """The most tables a worker's flush takes (MaxTablesPerFlush, before it has learned
    that tables lock more than two relations): a quarter of the lock table, per worker,
    two locks per table."""
    s = {name: int(c.scalar(f"SHOW {name}")) for name in (
        "max_locks_per_transaction", "max_connections", "autovacuum_max_workers",
        "max_worker_processes", "max_wal_senders", "max_prepared_transactions", "influx.workers")}
    backends = (s["max_connections"] + s["autovacuum_max_workers"] + 1 + s["max_worker_processes"]
                + s["max_wal_senders"])
    entries = s["max_locks_per_transaction"] * (backends + s["max_prepared_transactions"])
    return min(max(entries // 4 // max(s["influx.workers"], 1) // 2, 16), 4096)


def test_chunk_with_more_tables_than_a_flush_shares_one_time(listener):
    """More measurements in one TCP chunk than a flush takes: two flushes, one time."""
    n = flush_table_cap(listener) + 20
    body = "".join(f"many_{i:04d},host=h v={i}\n" for i in range(n))  # one read
    send_tcp(listener.tcp_port, body)

    def tables():
        return listener.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'many\\_%' "
                               "AND relkind = 'r'")
    wait_for(lambda: tables() == n, 60, what=f"{n} tables")
    union = " UNION ".join(f"SELECT _time FROM many_{i:04d}" for i in range(n))
    wait_for(lambda: listener.scalar(f"SELECT count(*) FROM ({union.replace('UNION', 'UNION ALL')}) u") == n,
             30, what=f"{n} rows")
    # Written by more than one transaction, still one time.
    assert listener.scalar(f"SELECT count(DISTINCT xmin::text) FROM ({union.replace('SELECT _time', 'SELECT xmin')}) u") >= 2
    assert listener.scalar(f"SELECT count(DISTINCT _time) FROM ({union}) u") == 1
