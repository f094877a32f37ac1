"""
test_http_delivery.py — the HTTP answer stays true when the delivery machinery works hard:
workers terminated while writes wait, lines handed back because their table is locked,
writes for different databases interleaved, and the connection limit.

Every write is answered 204 only once all of its lines are committed, and every row is
there exactly once (rows carry a unique id: a lost or doubled line shows in the counts).
"""

import threading
import time

import pytest

from conftest import wait_for
from http_support import T0_NS, RawConnection, assert_204, request, require_http, url, write

CLUSTER_CONF = {
    # Long enough that a locked table's hand-back and a worker replacement finish in time.
    "influx.http_write_timeout": "15s",
    "influx.workers": "2",
}


@pytest.fixture(scope="module")
def http(listener):
    require_http(listener)
    return listener


def post(port, body, db=None):
    """A write with a longer client timeout than write()'s default."""
    return request(port, "POST", url("/write", db=db), body, timeout=60)


def lines(table, start, n, extra=""):
    return "".join(f"{table},src=t{extra} id={i}i {T0_NS + i}\n" for i in range(start, start + n))


def distinct_ids(c, table):
    return c.scalar(f"SELECT count(DISTINCT id) FROM {table}"), c.scalar(f"SELECT count(*) FROM {table}")


def worker_pids(c):
    return c.backend_pids("influx worker")


def test_terminated_workers_lose_and_double_nothing_and_answers_stay_true(http):
    """Writers keep 8 requests in flight while the workers are terminated again and again:
    each write is answered 204 (its lines moved to a replacement worker count there), and
    every line is in the table once."""
    per_request, requests_per_thread, threads = 400, 12, 8
    answers, errors = [], []

    def writer(t):
        try:
            for k in range(requests_per_thread):
                start = (t * requests_per_thread + k) * per_request
                r = post(http.http_port, lines("dlv_kill", start, per_request))
                answers.append(r.status)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    killed = 0
    deadline = time.monotonic() + 60

    def committed():
        if not http.scalar("SELECT to_regclass('public.dlv_kill') IS NOT NULL"):
            return 0
        return http.scalar("SELECT count(*) FROM public.dlv_kill")

    while any(t.is_alive() for t in ts) and time.monotonic() < deadline:
        before = committed()
        for pid in worker_pids(http):
            http.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed += 1
        wait_for(lambda: len(worker_pids(http)) > 0 or not any(t.is_alive() for t in ts),
                 timeout=15, what="a replacement worker")
        # The next round once the new workers have committed something (or the writers are done).
        wait_for(lambda: committed() > before or not any(t.is_alive() for t in ts),
                 timeout=15, what="rows committed by the replacement workers")
    for t in ts:
        t.join(60)
    assert not errors, errors
    assert killed > 0
    total = per_request * requests_per_thread * threads
    assert answers.count(204) == requests_per_thread * threads, answers
    assert distinct_ids(http, "public.dlv_kill") == (total, total)


def test_lines_handed_back_for_a_locked_table_still_answer_their_request(http):
    """A table locked by another session for longer than a second: the worker hands its
    lines back, commits the other table's, and the listener sends them again.  The write
    is answered once the handed-back lines are committed too -- not before."""
    write(http.http_port, lines("dlv_locked", 0, 1))  # the table exists
    assert http.scalar("SELECT count(*) FROM public.dlv_locked") == 1
    locker = http.connect()
    locker.autocommit = False
    cur = locker.cursor()
    cur.execute("LOCK TABLE public.dlv_locked IN ACCESS EXCLUSIVE MODE")
    result = {}

    def send():
        body = lines("dlv_locked", 1, 500) + lines("dlv_free", 0, 500)
        result["r"] = post(http.http_port, body)
        result["at"] = time.monotonic()

    t = threading.Thread(target=send)
    t.start()
    wait_for(lambda: http.scalar("SELECT to_regclass('public.dlv_free') IS NOT NULL AND "
                                 "(SELECT count(*) FROM public.dlv_free) = 500"),
             timeout=15, what="the free table's rows committed while the other is locked")
    assert t.is_alive(), "answered while some of its lines could not have been committed"
    released = time.monotonic()
    locker.rollback()
    locker.close()
    t.join(30)
    assert_204(result["r"])
    assert result["at"] >= released
    assert distinct_ids(http, "public.dlv_locked") == (501, 501)
    assert distinct_ids(http, "public.dlv_free") == (500, 500)


def test_writes_for_different_databases_interleaved(http):
    """Concurrent writes for two schemas and the default: a worker's batch holds one
    database at a time, so rows never land in another request's schema."""
    http.execute("CREATE SCHEMA dlv_a")
    http.execute("CREATE SCHEMA dlv_b")
    statuses, errors = [], []

    def writer(db, t):
        try:
            for k in range(10):
                start = (t * 10 + k) * 100
                statuses.append(write(http.http_port, lines("dlv_mix", start, 100, extra=db or "x"),
                                      db=db).status)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=writer, args=(db, t))
          for t, db in enumerate(["dlv_a", "dlv_b", None, "dlv_a", "dlv_b", None])]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors and statuses.count(204) == 60, (errors, statuses)
    for schema, src in (("dlv_a", "tdlv_a"), ("dlv_b", "tdlv_b"), ("public", "tx")):
        assert http.query(f"SELECT DISTINCT src FROM {schema}.dlv_mix") == [(src,)], schema
        assert http.scalar(f"SELECT count(*) FROM {schema}.dlv_mix") == 2000, schema


def test_connections_beyond_the_limit_are_answered_503_and_closed(http):
    http.execute("ALTER SYSTEM SET influx.http_max_connections = 3")
    http.execute("SELECT pg_reload_conf()")
    held = []
    try:
        wait_for(lambda: http.scalar("SELECT current_setting('influx.http_max_connections')") == "3",
                 timeout=10)
        for _ in range(3):
            c = RawConnection(http.http_port)
            c.send(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 204
            held.append(c)
        extra = RawConnection(http.http_port)
        r = extra.read_response()
        assert r.status == 503 and r.header("Retry-After") == "1", r
        assert extra.closed_by_server()
        extra.close()
    finally:
        for c in held:
            c.close()
        http.execute("ALTER SYSTEM RESET influx.http_max_connections")
        http.execute("SELECT pg_reload_conf()")
    # Connections are free again: a new one is served.
    wait_for(lambda: request(http.http_port, "GET", "/ping").status == 204, timeout=10)


def test_listener_status_shows_the_http_port_and_connections(http):
    assert http.scalar("SELECT http_port FROM influx.listener_status()") == http.http_port
    with RawConnection(http.http_port) as c:
        c.send(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 204
        wait_for(lambda: http.scalar("SELECT http_connections FROM influx.listener_status()") >= 1,
                 timeout=10, what="the open connection counted")


@pytest.mark.parametrize("db", ["pg_catalog", "information_schema", "influx", "pg_toast"])
def test_system_schemas_are_no_database(http, db):
    """The writer here is a superuser, which may create tables anywhere: a db naming a
    system schema or the extension's own still writes into the default schema."""
    table = f"dlv_sys_{db}"
    r = write(http.http_port, f"{table} v=1 {T0_NS}\n", db=db)
    assert_204(r)
    assert http.scalar(f"SELECT count(*) FROM public.{table}") == 1
    assert http.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE c.relname = %s AND n.nspname <> 'public'", (table,)) == 0
