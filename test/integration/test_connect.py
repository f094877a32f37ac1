"""
test_connect.py — workers that cannot connect are never handed lines: with CONNECT revoked
from influx.role the listener reports itself degraded, holds what it received (TCP
backpressure), and delivers every line once CONNECT is granted again.  Idle TCP connections
are closed after influx.tcp_idle_timeout.
"""

import socket
import threading

import pytest

from conftest import GATE_LOCK, create_gate_function, send_tcp, wait_for

CLUSTER_CONF = {
    "influx.role": "'writer'",
    "influx.tcp_idle_timeout": "2",
    "influx.workers": "1",
    # A small ring, so that a test can fill it.
    "influx.queue_size": "64kB",
}

T0_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def writer(ext):
    """The cluster, once role `writer` exists and its workers run."""
    c = ext
    c.execute("""
        CREATE ROLE writer LOGIN;
        CREATE TABLE conn_rows (_time timestamptz, host text, v bigint);
        GRANT INSERT ON conn_rows TO writer;
    """)
    c.execute("SELECT pg_reload_conf()")
    wait_for(lambda: (c.listener_status() or {}).get("workers_running") == 1, 30,
             what="the worker connected as writer")
    return c


def test_revoked_connect_holds_lines_until_granted(writer):
    c = writer
    n = 20_000
    c.execute("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
    c.execute("GRANT CONNECT ON DATABASE postgres TO postgres")
    granted = False
    try:
        c.execute("SELECT influx.restart_workers()")

        def degraded():
            s = c.listener_status()
            return (s["status"].startswith("degraded") and "writer" in s["status"]
                    and s["workers_running"] == 0)

        wait_for(degraded, 30, what="the listener to report itself degraded, naming the role")
        sent = threading.Thread(
            target=send_tcp,
            args=(c.tcp_port, "".join(f"conn_rows,host=h v={i}i {T0_NS + i}\n" for i in range(n))),
            daemon=True)
        sent.start()
        wait_for(lambda: c.stat_total("lines_received", "listener") > 0, 10,
                 what="the listener to read lines")
        # No worker can take them: nothing is inserted, rejected, or lost.
        assert c.row_count("conn_rows") == 0
        assert c.stat_total("rows_rejected_table") + c.stat_total("rows_rejected_insert") == 0
        c.execute("GRANT CONNECT ON DATABASE postgres TO PUBLIC")
        granted = True
        wait_for(lambda: c.listener_status()["status"] == "running", 30,
                 what="the listener running again")
        sent.join(60)
        wait_for(lambda: c.scalar("SELECT count(*) = %s AND count(DISTINCT v) = %s FROM conn_rows",
                                  (n, n)), 60, what=f"{n} distinct rows")
        assert c.stat_total("lines_lost") == 0
    finally:
        if not granted:
            c.execute("GRANT CONNECT ON DATABASE postgres TO PUBLIC")


def test_idle_connection_is_closed_and_counted(writer):
    c = writer
    before = c.stat_total("connections_closed_idle")
    rejected = c.stat_total("lines_rejected_syntax")
    s = socket.create_connection(("127.0.0.1", c.tcp_port), timeout=30)
    try:
        s.sendall(b"conn_rows,host=idle v=1")  # a line never finished
        s.settimeout(15)
        # The server closes its side: recv returns b"" (or the connection is reset).
        try:
            data = s.recv(1)
        except ConnectionResetError:
            data = b""
        assert data == b""
    finally:
        s.close()
    wait_for(lambda: c.stat_total("connections_closed_idle") == before + 1, 5,
             what="the idle close counted")
    assert c.stat_total("lines_rejected_syntax") == rejected + 1
    assert c.scalar("SELECT count(*) FROM conn_rows WHERE host = 'idle'") == 0


def test_shutdown_during_a_worker_replacement_loses_nothing(writer):
    """influx.restart_workers() while the old worker is held in a flush and its ring is full,
    with replacements that cannot connect, then a fast shutdown: what the listener holds
    goes to the old worker, which is still draining, not into the ring of a replacement
    that will never start.  Every line is in its table after the restart."""
    c = writer
    n = 20_000
    c.execute("""
        CREATE TABLE gate (_time timestamptz, f double precision);
        GRANT INSERT ON gate TO writer;
        CREATE TABLE repl (_time timestamptz, host text, v bigint);
        GRANT INSERT ON repl TO writer;
    """)
    create_gate_function(c, "gate_wait", "trigger")
    c.execute("CREATE TRIGGER gate_wait AFTER INSERT ON gate FOR EACH ROW EXECUTE FUNCTION gate_wait()")
    holder = c.connect()
    holder.cursor().execute("SELECT pg_advisory_lock(%s)", (GATE_LOCK,))
    stopped = False
    try:
        send_tcp(c.tcp_port, f"gate f=1 {T0_NS}\n")
        wait_for(lambda: c.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker' "
            "AND wait_event = 'advisory'") == 1, 20, what="the worker held at the gate")
        sender = threading.Thread(
            target=send_tcp,
            args=(c.tcp_port, "".join(f"repl,host=h v={i}i {T0_NS + i}\n" for i in range(n))),
            daemon=True)
        sender.start()
        wait_for(lambda: c.stat_total("queue_full") > 0, 20, what="the old ring to fill up")
        c.execute("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
        c.execute("GRANT CONNECT ON DATABASE postgres TO postgres")
        c.execute("SELECT influx.restart_workers()")
        wait_for(lambda: "writer" in c.listener_status()["status"], 30,
                 what="the replacement failing to connect")
        sender.join(30)
        assert not sender.is_alive()
        # The gate stays closed: the fast shutdown ends its holder's session, and the old
        # worker goes on with its flush and its ring.
        c.stop("fast")
        stopped = True
    finally:
        if not stopped:
            holder.close()
    c.start()
    try:
        assert c.scalar("SELECT count(*) = %s AND count(DISTINCT v) = %s FROM repl", (n, n))
        assert c.scalar("SELECT count(*) FROM gate") == 1
    finally:
        c.execute("GRANT CONNECT ON DATABASE postgres TO PUBLIC")
        wait_for(lambda: c.listener_status()["status"] == "running", 30)
