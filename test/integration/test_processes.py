"""
test_processes.py — the listener and its workers as PostgreSQL sees them:
influx.listener_status(), influx.stats(), pg_stat_activity, and the replacement of a
worker that was terminated.
"""

from conftest import send_tcp, wait_for

WORKERS = 2


def test_listener_status_reports_running_and_bound_ports(listener):
    s = listener.listener_status()
    assert s["status"].startswith("running")
    assert s["pid"] is not None and s["pid"] > 0
    assert s["udp_port"] == listener.udp_port
    assert s["tcp_port"] == listener.tcp_port
    assert s["workers_wanted"] == WORKERS
    assert s["started_at"] is not None


def test_listener_status_counts_running_workers(listener):
    wait_for(
        lambda: listener.listener_status()["workers_running"] == WORKERS,
        timeout=10,
        what="workers_running == influx.workers",
    )


def test_pg_stat_activity_shows_listener_and_workers(listener):
    wait_for(
        lambda: len(listener.backend_pids("influx worker")) == WORKERS,
        timeout=10,
        what="two 'influx worker' backends",
    )
    # The listener connects without a database (docs/architecture.md), so only its pid is
    # checked; the workers connect to influx.database.
    listeners = listener.backend_pids("influx listener")
    assert listeners == [listener.listener_status()["pid"]]
    assert listener.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker' AND datname = 'postgres'"
    ) == WORKERS


def test_stats_has_a_row_per_process(listener):
    wait_for(
        lambda: len([r for r in listener.stats() if r["kind"] == "worker" and r["pid"]]) == WORKERS,
        timeout=10,
        what="a stats row per worker",
    )
    running = [r for r in listener.stats() if r["pid"] is not None]
    kinds = sorted(r["kind"] for r in running)
    assert kinds == ["listener"] + ["worker"] * WORKERS
    lpid = listener.listener_status()["pid"]
    assert [r["pid"] for r in running if r["kind"] == "listener"] == [lpid]
    assert sorted(r["pid"] for r in running if r["kind"] == "worker") == listener.backend_pids("influx worker")
    indexes = [r["worker"] for r in running if r["kind"] == "worker"]
    assert len(set(indexes)) == WORKERS and None not in indexes


def test_stats_count_lines_and_rows(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE stats_probe (_time timestamptz, v int8)")
    lines_before = listener.stat_total("lines_received", kind="listener")
    rows_before = listener.stat_total("rows_inserted")
    batches_before = listener.stat_total("batches")
    send_tcp(listener.tcp_port, "".join(f"stats_probe v={i}i\n" for i in range(10)))
    wait_for(lambda: listener.row_count("stats_probe") == 10, timeout=5, what="10 rows")
    wait_for(
        lambda: listener.stat_total("rows_inserted") >= rows_before + 10,
        timeout=5,
        what="rows_inserted to grow by 10",
    )
    assert listener.stat_total("lines_received", kind="listener") >= lines_before + 10
    assert listener.stat_total("batches") > batches_before
    assert listener.stat_total("bytes_received", kind="listener") > 0


def test_terminated_worker_is_replaced(listener, db):
    old = wait_for(
        lambda: (lambda p: p if len(p) == WORKERS else None)(listener.backend_pids("influx worker")),
        timeout=10,
        what="two workers",
    )
    victim = old[0]
    assert listener.scalar("SELECT pg_terminate_backend(%s)", (victim,))
    new = wait_for(
        lambda: (
            lambda p: p if len(p) == WORKERS and victim not in p else None
        )(listener.backend_pids("influx worker")),
        timeout=30,
        what="a replacement worker",
    )
    assert victim not in new
    # The replacement works: lines still land.
    with db.cursor() as cur:
        cur.execute("CREATE TABLE after_replace (_time timestamptz, v int8)")
    send_tcp(listener.tcp_port, "".join(f"after_replace v={i}i\n" for i in range(20)))
    wait_for(lambda: listener.row_count("after_replace") == 20, timeout=10, what="20 rows")
