"""
test_faults.py — process-level faults: crashes, terminations, fast shutdown, reloads and
misconfiguration.  Each test drives a real cluster and asserts what users rely on: the
listener and workers come back by themselves, and nothing a closed TCP connection
delivered is lost.
"""

import os
import signal
import socket

from conftest import Cluster, TcpStream, peak_memory_kb, reset_peak_memory, send_tcp, send_udp, wait_for

CLUSTER_CONF = {"influx.workers": "2"}


def lines(measurement, start, count, host="h"):
    return "".join(
        f"{measurement},host={host}{i % 10} v={i}i,f={i}.25 {1_600_000_000_000_000_000 + i}\n"
        for i in range(start, start + count)
    )


def exact_rows(cluster, table, expected):
    """True once `table` holds exactly `expected` distinct v values 0..expected-1."""
    if cluster.row_count(table) != expected:
        return False
    row = cluster.query(f"SELECT count(DISTINCT v), min(v), max(v) FROM {table}")[0]
    return row == (expected, 0, expected - 1)


def new_cluster(name, conf):
    c = Cluster(name, conf)
    c.init()
    c.start()
    return c


def test_worker_kill9_crash_restart_recovers(listener):
    """kill -9 of a worker: the server crash-restarts, listener and workers come back."""
    send_tcp(listener.tcp_port, lines("k9", 0, 1000))
    wait_for(lambda: listener.row_count("k9") == 1000, 15, what="rows before the crash")
    old_gen = listener.listener_status()["generation"]
    victim = listener.backend_pids("influx worker")[0]
    os.kill(victim, signal.SIGKILL)

    def back():
        s = listener.listener_status()
        return (
            s["status"].startswith("running")
            and s["generation"] != old_gen
            and len(listener.backend_pids("influx worker")) == 2
        )

    wait_for(back, 60, interval=0.2, what="listener and workers after crash restart")
    send_tcp(listener.tcp_port, lines("k9", 1000, 1000))
    wait_for(lambda: exact_rows(listener, "k9", 2000), 20, what="ingestion after the crash")


def test_terminate_listener_restarts_with_fresh_workers(listener):
    old_listener = listener.backend_pids("influx listener")
    old_workers = listener.backend_pids("influx worker")
    listener.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE backend_type = 'influx listener'"
    )

    def fresh():
        lp = listener.backend_pids("influx listener")
        wp = listener.backend_pids("influx worker")
        return (
            lp and lp != old_listener and len(wp) == 2 and not set(wp) & set(old_workers)
            and listener.listener_status()["status"].startswith("running")
        )

    wait_for(fresh, 30, interval=0.2, what="a new listener with new workers")
    send_tcp(listener.tcp_port, lines("after_term", 0, 500))
    wait_for(lambda: exact_rows(listener, "after_term", 500), 15)


def test_terminated_worker_flushes_what_it_had(listener):
    """pg_terminate_backend of a worker while data flows: nothing handed over is lost."""
    listener.execute("CREATE TABLE IF NOT EXISTS termflow (_time timestamptz, host text, v bigint, f float8)")
    with TcpStream(listener.tcp_port) as s:
        for k in range(10):
            s.send(lines("termflow", k * 2000, 2000))
            if k == 3:
                listener.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE backend_type = 'influx worker'"
                )
    wait_for(lambda: exact_rows(listener, "termflow", 20000), 30, what="all 20000 rows")
    wait_for(lambda: len(listener.backend_pids("influx worker")) == 2, 15)


def test_fast_shutdown_keeps_everything_a_closed_connection_sent():
    """pg_ctl stop -m fast right after the sender closed: every line is there after restart."""
    c = new_cluster("fastshutdown", {"influx.flush_interval": "5000", "influx.flush_idle": "0",
                                     "influx.batch_size": "1000000"})
    try:
        c.execute("CREATE EXTENSION pg_influx")
        c.wait_listener_running()
        c.execute("CREATE TABLE shut (_time timestamptz, host text, v bigint, f float8)")
        data = lines("shut", 0, 50000).encode()
        with socket.create_connection(("127.0.0.1", c.tcp_port)) as s:
            s.sendall(data)
        # No wait for rows: the long flush interval (and no idle flush) keeps them in the
        # workers' batches.
        c.stop("fast")
        c.start()
        assert exact_rows(c, "shut", 50000)
    finally:
        c.destroy()


def test_reload_changes_ports_and_worker_count(listener):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        new_tcp = s.getsockname()[1]
    listener.execute(f"ALTER SYSTEM SET influx.tcp_port = {new_tcp}")
    listener.execute("ALTER SYSTEM SET influx.workers = 3")
    listener.execute("SELECT pg_reload_conf()")
    wait_for(lambda: listener.listener_status()["tcp_port"] == new_tcp, 15)
    wait_for(lambda: len(listener.backend_pids("influx worker")) == 3, 15)
    send_tcp(new_tcp, lines("newport", 0, 300))
    wait_for(lambda: exact_rows(listener, "newport", 300), 15)
    listener.execute("ALTER SYSTEM RESET influx.tcp_port")
    listener.execute("ALTER SYSTEM SET influx.workers = 1")
    listener.execute("SELECT pg_reload_conf()")
    wait_for(lambda: listener.listener_status()["tcp_port"] == listener.tcp_port, 15)
    wait_for(lambda: len(listener.backend_pids("influx worker")) == 1, 15)
    send_tcp(listener.tcp_port, lines("newport", 300, 300))
    wait_for(lambda: exact_rows(listener, "newport", 600), 15)
    listener.execute("ALTER SYSTEM RESET influx.workers")
    listener.execute("SELECT pg_reload_conf()")
    wait_for(lambda: len(listener.backend_pids("influx worker")) == 2, 15)


def test_port_taken_is_a_status_not_a_crash():
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    c = new_cluster("porttaken", {"influx.tcp_port": str(port), "influx.listen_addresses": "'127.0.0.1'"})
    try:
        c.execute("CREATE EXTENSION pg_influx")

        def reported():
            s = c.listener_status()
            return s["status"].startswith("error") and str(port) in s["status"]

        wait_for(reported, 15, what="status naming the taken port")
        assert c.scalar("SELECT 1") == 1  # the server itself is fine
        blocker.close()
        wait_for(lambda: c.listener_status()["status"].startswith("running"), 20,
                 what="the listener binding once the port is free")
    finally:
        blocker.close()
        c.destroy()


def test_missing_database_and_role_without_login_are_reported():
    c = new_cluster("baddb", {"influx.database": "'no_such_db'"})
    try:
        c.execute("CREATE EXTENSION pg_influx")
        wait_for(lambda: "no_such_db" in c.listener_status()["status"], 15)
        assert c.listener_status()["workers_running"] == 0
        c.execute("CREATE ROLE nologin_role NOLOGIN")
        c.execute("ALTER SYSTEM SET influx.database = 'postgres'")
        c.execute("ALTER SYSTEM SET influx.role = 'nologin_role'")
        c.execute("SELECT pg_reload_conf()")
        wait_for(lambda: "not permitted to log in" in c.listener_status()["status"], 30)
        c.execute("ALTER ROLE nologin_role LOGIN SUPERUSER")
        c.execute("SELECT pg_reload_conf()")
        wait_for(lambda: c.listener_status()["status"].startswith("running"), 30)
        wait_for(lambda: len(c.backend_pids("influx worker")) == 2, 30)
    finally:
        c.destroy()


def test_too_few_worker_slots_is_reported():
    # Slots: the logical replication launcher, the listener, and room for one worker.
    c = new_cluster("fewslots", {"max_worker_processes": "3", "influx.workers": "4"})
    try:
        c.execute("CREATE EXTENSION pg_influx")
        wait_for(lambda: "max_worker_processes" in (c.listener_status()["status"] or ""), 15)
        assert c.scalar("SELECT 1") == 1
        # The one worker that fits still ingests.
        send_tcp(c.tcp_port, lines("fewslots", 0, 100))
        wait_for(lambda: exact_rows(c, "fewslots", 100), 20)
    finally:
        c.destroy()


def test_connections_over_the_limit_are_refused_and_counted():
    c = new_cluster("maxconn", {"influx.max_connections": "3"})
    try:
        c.execute("CREATE EXTENSION pg_influx")
        c.wait_listener_running()
        held = [TcpStream(c.tcp_port) for _ in range(3)]
        wait_for(lambda: c.stat_total("connections_accepted") >= 3, 10)
        extra = socket.create_connection(("127.0.0.1", c.tcp_port))
        wait_for(lambda: c.stat_total("connections_refused") >= 1, 10)
        extra.close()
        for s in held:
            s.send(lines("maxconn", 0, 10))
            s.close()
        wait_for(lambda: c.row_count("maxconn") == 30, 15)
    finally:
        c.destroy()


def test_hostile_bytes_do_not_hurt_and_good_lines_land(listener):
    garbage = bytes(range(256)) * 64 + b"\x00\x00\xff\xfe\n" + b"\n".join(
        [b"m\xff\xfe,t=1 f=1", b"m,t=\x00 f=2", b"=,= ==", b"m f=1 notatime", b"m,t f=1"]
    )
    before = listener.stat_total("lines_rejected_syntax")
    send_tcp(listener.tcp_port, garbage + b"\n" + lines("survivor", 0, 100).encode())
    send_udp(listener.udp_port, garbage[:8000])
    send_udp(listener.udp_port, lines("survivor", 100, 100))
    wait_for(lambda: exact_rows(listener, "survivor", 200), 15)
    assert listener.stat_total("lines_rejected_syntax") > before
    assert listener.listener_status()["status"].startswith("running")


def test_unterminated_quote_stays_within_its_connection_or_datagram(listener):
    """A '\n' inside an open quote belongs to the string (as in InfluxDB), but the open
    quote of one sender never swallows another sender's lines."""
    send_tcp(listener.tcp_port, b'q f="unterminated\n')
    send_udp(listener.udp_port, b'q f="unterminated\n')
    send_tcp(listener.tcp_port, lines("afterquote", 0, 50))
    send_udp(listener.udp_port, lines("afterquote", 50, 50))
    wait_for(lambda: exact_rows(listener, "afterquote", 100), 15)


def test_huge_line_without_newline_is_bounded(listener):
    """A 100 MiB line with no newline: rejected and counted; memory does not follow it."""
    before = listener.stat_total("lines_rejected_too_long")
    lpid = listener.backend_pids("influx listener")[0]
    reset_peak_memory(lpid)
    with TcpStream(listener.tcp_port) as s:
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            s.send(chunk)
        s.send(b"\n" + lines("afterhuge", 0, 10).encode())
    wait_for(lambda: exact_rows(listener, "afterhuge", 10), 30)
    assert listener.stat_total("lines_rejected_too_long") == before + 1
    hwm_kb = peak_memory_kb(lpid)
    assert hwm_kb < 64 * 1024, f"listener peak memory {hwm_kb} kB"
