"""
test_delivery.py — the delivery contract: what the listener received over TCP is committed
or rejected for a reason about the data, never lost because a worker was stuck, cancelled,
terminated or replaced, and never written twice.

Every test sends lines with distinct values and checks both count(*) and count(DISTINCT):
a lost line and a duplicated one both show.
"""

import threading

import psycopg2
import pytest

from conftest import send_tcp, wait_for

CLUSTER_CONF = {
    "influx.workers": "1",
    # Rows of a locked table stay in the worker's flush; keep the batch small enough that
    # the ring, not the batch, holds most of what is sent.
    "influx.batch_size": "500",
    # A small ring, so that a test can fill it.
    "influx.queue_size": "256kB",
}

T0_NS = 1_700_000_000_000_000_000


def lines(table, start, count):
    return "".join(f"{table},host=h v={i}i {T0_NS + i}\n" for i in range(start, start + count))


def stat(c, counter):
    """Sum of an influx.stats() counter over all rows."""
    return sum(r.get(counter) or 0 for r in c.stats())


def worker_pids(c):
    return c.backend_pids("influx worker")


def exact(c, table, n):
    """True once `table` holds exactly n rows with n distinct values."""
    return c.scalar(f"SELECT count(*) = %s AND count(DISTINCT v) = %s FROM {table}", (n, n))


def workers_waiting_on_a_lock(c):
    return c.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker' "
                    "AND wait_event_type = 'Lock'")


class HeldTransaction:
    """Another session's open transaction that has run `sql`, until release() rolls it
    back."""

    def __init__(self, c, sql):
        self.conn = c.connect()
        self.conn.autocommit = False
        self.conn.cursor().execute(sql)

    def release(self):
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


def HeldLock(c, table):
    """LOCK TABLE ... ACCESS EXCLUSIVE: a worker's flush hands the table's lines back (or,
    when it cannot, waits) until release()."""
    return HeldTransaction(c, f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")


def HeldKey(c, table):
    """An uncommitted row with v = 0 in a table with UNIQUE (v): a worker inserting v = 0
    waits for that transaction (a lock on a transaction, not on the table, so the worker
    cannot hand the table's lines back) until release() rolls it back."""
    return HeldTransaction(c, f"INSERT INTO {table} (v) VALUES (0)")


def keyed_table(c, table):
    c.execute(f"CREATE TABLE {table} (_time timestamptz, host text, v bigint UNIQUE)")


def restart_workers(c):
    old = set(worker_pids(c))
    c.execute("SELECT influx.restart_workers()")
    wait_for(lambda: len(worker_pids(c)) == 1 and not set(worker_pids(c)) & old, 20,
             what="a new worker")


def test_insert_with_hundreds_of_measurements_returns(listener):
    """influx.insert() with more than 64 measurements in one call returns (it used to loop
    forever in the batch's group table, deaf to statement_timeout and cancels)."""
    c = listener
    c.execute("CREATE SCHEMA many")
    text = "".join(f"m{i} v={i}i 1\n" for i in range(300))
    result = {}

    def run():
        conn = c.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET statement_timeout = '30s'")
                cur.execute("SELECT influx.insert(%s, schema_name => 'many')", (text,))
                result["rows"] = cur.fetchone()[0]
        except psycopg2.Error as e:
            result["error"] = str(e)
        finally:
            conn.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "influx.insert() with 300 measurements did not return in 60 s"
    assert result == {"rows": 300}
    assert c.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'many'") == 300


def test_terminate_stops_a_worker_waiting_on_a_lock_and_its_rows_land(listener):
    """pg_terminate_backend() stops a worker whose flush waits on a lock within seconds;
    its rows are rolled back and handed to the replacement, and land once, after the lock."""
    c = listener
    keyed_table(c, "tlock")
    held = HeldKey(c, "tlock")
    try:
        send_tcp(c.tcp_port, lines("tlock", 0, 300))
        wait_for(lambda: workers_waiting_on_a_lock(c) == 1, 20, what="the worker at the lock")
        pid = worker_pids(c)[0]
        rerouted = stat(c, "lines_rerouted")
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: pid not in worker_pids(c), 5,
                 what="the terminated worker to exit while the lock is still held")
        wait_for(lambda: stat(c, "lines_rerouted") >= rerouted + 300, 10,
                 what="its lines handed to another worker")
    finally:
        held.release()
    wait_for(lambda: exact(c, "tlock", 300), 30, what="300 distinct rows after the lock")
    assert stat(c, "lines_lost") == 0


def test_cancel_of_a_flush_keeps_its_rows(listener):
    """pg_cancel_backend() of a worker in a flush cancels that flush; its rows are tried
    again, not rejected."""
    c = listener
    keyed_table(c, "clock")
    rejected = stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table")
    retries = stat(c, "flush_retries")
    held = HeldKey(c, "clock")
    try:
        send_tcp(c.tcp_port, lines("clock", 0, 200))
        wait_for(lambda: workers_waiting_on_a_lock(c) == 1, 20, what="the worker at the lock")
        pid = worker_pids(c)[0]
        c.execute("SELECT pg_cancel_backend(%s)", (pid,))
        wait_for(lambda: stat(c, "flush_retries") > retries, 10, what="a retried flush")
        wait_for(lambda: workers_waiting_on_a_lock(c) == 1, 20, what="the retry at the lock")
        assert worker_pids(c) == [pid]
    finally:
        held.release()
    wait_for(lambda: exact(c, "clock", 200), 30, what="200 distinct rows after the lock")
    assert stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") == rejected


def test_lock_timeout_keeps_rows_and_retries(listener):
    """lock_timeout (set for the database) makes a flush give up its lock wait; the rows
    are kept and tried again with backoff until the table is free, none rejected."""
    c = listener
    keyed_table(c, "ltlock")
    c.execute("ALTER DATABASE postgres SET lock_timeout = '100ms'")
    try:
        restart_workers(c)
        rejected = stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table")
        retries = stat(c, "flush_retries")
        held = HeldKey(c, "ltlock")
        try:
            send_tcp(c.tcp_port, lines("ltlock", 0, 200))
            wait_for(lambda: stat(c, "flush_retries") >= retries + 3, 20,
                     what="three flushes retried after lock_timeout")
            assert "lock timeout" in " ".join(r["last_error"] or "" for r in c.stats())
        finally:
            held.release()
        wait_for(lambda: exact(c, "ltlock", 200), 30, what="200 distinct rows after the lock")
        assert (stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table")
                == rejected)
    finally:
        c.execute("ALTER DATABASE postgres RESET lock_timeout")
        restart_workers(c)


def test_a_reload_while_a_flush_waits_to_retry_keeps_its_schema(listener):
    """A flush waiting to be tried again answers configuration reloads, which free and set
    influx.schema's string again: the flush used to keep a pointer to the old string and
    then looked its table up in whatever the memory held next (another setting's value),
    rejecting every row as "schema ... does not exist".  The flush keeps its own copy."""
    c = listener
    keyed_table(c, "reloaded")
    c.execute("ALTER DATABASE postgres SET lock_timeout = '100ms'")
    try:
        restart_workers(c)
        rejected = stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table")
        held = HeldKey(c, "reloaded")
        try:
            send_tcp(c.tcp_port, lines("reloaded", 0, 200))
            # Reloads during the first retries (after three, the table is handed back).
            for k in range(2):
                retries = stat(c, "flush_retries")
                wait_for(lambda: stat(c, "flush_retries") > retries or
                         stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") > rejected,
                         20, what="a flush retried after lock_timeout")
                c.execute("SELECT pg_reload_conf()")
        finally:
            held.release()
        wait_for(lambda: exact(c, "reloaded", 200) or
                 stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") > rejected, 30,
                 what="200 distinct rows after the lock")
        assert stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") == rejected, \
            [r["last_error"] for r in c.stats()]
        assert exact(c, "reloaded", 200)
    finally:
        c.execute("ALTER DATABASE postgres RESET lock_timeout")
        restart_workers(c)


def test_statement_timeout_of_the_database_bounds_a_flush(listener):
    """statement_timeout set for the database applies to each flush transaction: a flush
    that runs over is rolled back and tried again, and lands once it fits."""
    c = listener
    c.execute("""
        CREATE TABLE slowflag (on_ boolean);
        INSERT INTO slowflag VALUES (true);
        CREATE TABLE stslow (_time timestamptz, host text, v bigint);
        CREATE FUNCTION stslow_wait() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Table code runs with search_path = pg_catalog, pg_temp (docs/security.md).
            IF EXISTS (SELECT 1 FROM public.slowflag) THEN PERFORM pg_sleep(2); END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER stslow_wait AFTER INSERT ON stslow
            FOR EACH STATEMENT EXECUTE FUNCTION stslow_wait();
    """)
    c.execute("ALTER DATABASE postgres SET statement_timeout = '300ms'")
    try:
        restart_workers(c)
        retries = stat(c, "flush_retries")
        send_tcp(c.tcp_port, lines("stslow", 0, 50))
        wait_for(lambda: stat(c, "flush_retries") >= retries + 1, 20,
                 what="a flush cancelled by statement_timeout")
        assert "statement_timeout" in " ".join(r["last_error"] or "" for r in c.stats())
        assert c.row_count("stslow") == 0
        c.execute("DELETE FROM slowflag")
        wait_for(lambda: exact(c, "stslow", 50), 30, what="50 distinct rows once it fits")
    finally:
        c.execute("ALTER DATABASE postgres RESET statement_timeout")
        restart_workers(c)


def test_worker_terminated_with_a_full_ring_loses_nothing(listener, gate):
    """A worker that exits with a flush in progress and a full ring behind it: the rows of
    its uncommitted batch and everything in its ring go to its replacement, once each."""
    c = listener
    close, open_ = gate
    c.execute("CREATE TABLE fullring (_time timestamptz, host text, v bigint)")
    n = 60_000
    close()
    try:
        send_tcp(c.tcp_port, "gate f=1 1\n")
        wait_for(lambda: c.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker' "
            "AND wait_event = 'advisory'") == 1, 20, what="the worker held at the gate")
        sender = threading.Thread(target=send_tcp, args=(c.tcp_port, lines("fullring", 0, n)),
                                  daemon=True)
        sender.start()
        wait_for(lambda: stat(c, "queue_full") > 0, 20, what="the ring to fill up")
        pid = worker_pids(c)[0]
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: pid not in worker_pids(c), 10, what="the worker to exit")
    finally:
        open_()
    sender.join(60)
    wait_for(lambda: exact(c, "fullring", n), 60, what=f"{n} distinct rows")
    assert c.scalar("SELECT count(*) FROM gate") >= 1
    assert stat(c, "lines_rerouted") > 0
    assert stat(c, "lines_lost") == 0


def test_terminate_during_a_synchronous_standby_wait_commits_once(listener):
    """A worker whose commit waits for a synchronous standby that never answers exits when
    terminated; its rows were committed locally, and the listener (asking the commit log)
    does not send them again: they are in the table once."""
    c = listener
    c.execute("CREATE TABLE syncrep (_time timestamptz, host text, v bigint)")
    c.execute("ALTER SYSTEM SET synchronous_standby_names = 'nosuchstandby'")
    c.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: c.scalar("SELECT current_setting('synchronous_standby_names')")
                 == "nosuchstandby", 10)
        send_tcp(c.tcp_port, lines("syncrep", 0, 100))
        wait_for(lambda: c.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker' "
            "AND wait_event = 'SyncRep'") == 1, 20, what="the worker waiting for the standby")
        pid = worker_pids(c)[0]
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: pid not in worker_pids(c), 5, what="the worker to exit")
    finally:
        c.execute("ALTER SYSTEM RESET synchronous_standby_names")
        c.execute("SELECT pg_reload_conf()")
    wait_for(lambda: len(worker_pids(c)) == 1, 20, what="a replacement worker")
    # Whatever else happens now, the 100 rows are there once.
    send_tcp(c.tcp_port, lines("syncrep", 100, 1))
    wait_for(lambda: c.row_count("syncrep") >= 101, 20, what="the next row")
    assert exact(c, "syncrep", 101)


def test_chunks_sent_while_a_worker_dies_are_written_once(listener):
    """Lines stream while the only worker is made to exit in the middle of a flush: the
    chunk the listener was offering when it found the ring detached goes to the next ring
    and nowhere else; every line lands exactly once."""
    c = listener
    keyed_table(c, "dblk")
    c.execute("CREATE TABLE dstream (_time timestamptz, host text, v bigint)")
    held = HeldKey(c, "dblk")
    sent = [0]
    stop = threading.Event()

    def sender():
        import socket
        import time
        s = socket.create_connection(("127.0.0.1", c.tcp_port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        i = 0
        while not stop.is_set():
            s.sendall(f"dstream,host=h v={i}i {T0_NS + i}\n".encode())
            i += 1
            time.sleep(0.0005)  # pacing: a line every half millisecond
        sent[0] = i
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()

    t = threading.Thread(target=sender, daemon=True)
    try:
        send_tcp(c.tcp_port, lines("dblk", 0, 1))
        wait_for(lambda: workers_waiting_on_a_lock(c) == 1, 20, what="the worker at the lock")
        pid = worker_pids(c)[0]
        t.start()
        wait_for(lambda: stat(c, "lines_received") > 500, 20, what="the stream flowing")
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(lambda: pid not in worker_pids(c), 10, what="the worker to exit")
        rerouted = stat(c, "lines_rerouted")
        wait_for(lambda: len(worker_pids(c)) == 1, 20, what="a replacement")
    finally:
        held.release()
    received = stat(c, "lines_received")
    wait_for(lambda: stat(c, "lines_received") > received + 500, 20, what="more of the stream")
    stop.set()
    t.join(30)
    n = sent[0]
    wait_for(lambda: c.scalar("SELECT count(DISTINCT v) FROM dstream") == n, 30,
             what=f"all {n} streamed lines")
    wait_for(lambda: stat(c, "rows_inserted") >= n + 1, 10, what="the counters")
    assert c.scalar("SELECT count(*) FROM dstream") == n, "a line was written twice"
    assert exact(c, "dblk", 1)
    assert rerouted > 0


def test_a_row_that_always_times_out_is_rejected_alone(listener):
    """A row whose trigger always runs over statement_timeout fails its flush every time: after
    a few retries the flush isolates the failure, rejects that row and writes the others."""
    c = listener
    c.execute("""
        CREATE TABLE poison (_time timestamptz, host text, v bigint);
        CREATE FUNCTION poison_slow() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.v = 7 THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$;
        CREATE TRIGGER poison_slow BEFORE INSERT ON poison FOR EACH ROW EXECUTE FUNCTION poison_slow();
    """)
    c.execute("ALTER DATABASE postgres SET statement_timeout = '300ms'")
    try:
        restart_workers(c)
        rejected = stat(c, "rows_rejected_insert")
        send_tcp(c.tcp_port, lines("poison", 0, 100))
        wait_for(lambda: stat(c, "rows_rejected_insert") == rejected + 1, 60,
                 what="the slow row rejected alone")
        conn = c.connect()
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = 0")
            cur.execute("SELECT count(*), count(DISTINCT v), bool_and(v <> 7) FROM poison")
            assert cur.fetchone() == (99, 99, True)
        conn.close()
    finally:
        c.execute("ALTER DATABASE postgres RESET statement_timeout")
        restart_workers(c)


def test_a_long_lock_under_statement_timeout_rejects_nothing(listener):
    """A table locked for many times statement_timeout: a flush that waits for the lock times
    out again and again, which is not the rows' doing (and a worker that can hand the lines
    back does so instead); once the lock goes, every row lands and none was rejected."""
    c = listener
    c.execute("CREATE TABLE stlock (_time timestamptz, host text, v bigint)")
    c.execute("ALTER DATABASE postgres SET statement_timeout = '200ms'")
    try:
        restart_workers(c)
        rejected = stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table")
        retries = stat(c, "flush_retries")
        rerouted = stat(c, "lines_rerouted")
        held = HeldLock(c, "stlock")
        try:
            send_tcp(c.tcp_port, lines("stlock", 0, 200))
            # The worker either waits for the lock and times out again and again, or hands
            # the lines back to be sent again: neither may reject a row.
            wait_for(lambda: stat(c, "flush_retries") >= retries + 6
                     or stat(c, "lines_rerouted") >= rerouted + 600, 30,
                     what="flushes timed out at the lock, or lines handed back three times")
        finally:
            held.release()
        conn = c.connect()
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = 0")

            def landed():
                cur.execute("SELECT count(*) = 200 AND count(DISTINCT v) = 200 FROM stlock")
                return cur.fetchone()[0]

            wait_for(landed, 30, what="200 distinct rows after the lock")
        conn.close()
        assert stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") == rejected
    finally:
        c.execute("ALTER DATABASE postgres RESET statement_timeout")
        restart_workers(c)


def test_out_of_memory_raised_for_one_row_rejects_that_row(listener):
    """53200 that is not the lock table (here raised by a trigger for one row) is about the
    rows: that row is rejected alone, the others land, nothing is retried forever."""
    c = listener
    c.execute("""
        CREATE TABLE oomrow (_time timestamptz, host text, v bigint);
        CREATE FUNCTION oomrow_check() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.v = 7 THEN RAISE EXCEPTION 'no memory for this one' USING ERRCODE = '53200'; END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER oomrow_check AFTER INSERT ON oomrow FOR EACH ROW EXECUTE FUNCTION oomrow_check();
    """)
    rejected = stat(c, "rows_rejected_insert")
    send_tcp(c.tcp_port, lines("oomrow", 0, 100))
    wait_for(lambda: exact(c, "oomrow", 99), 30, what="the 99 other rows")
    assert c.scalar("SELECT count(*) FROM oomrow WHERE v = 7") == 0
    wait_for(lambda: stat(c, "rows_rejected_insert") == rejected + 1, 10, what="the row rejected")


def test_a_connection_error_raised_by_a_local_tables_trigger_rejects_its_row(listener):
    """SQLSTATE class 08 from a local table's own code (here a trigger, for one row) is not a
    remote node out of reach: the row is rejected alone, the others land, and the table's
    lines are not handed back to come again forever."""
    c = listener
    c.execute("""
        CREATE TABLE conn08 (_time timestamptz, host text, v bigint);
        CREATE FUNCTION conn08_check() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.v = 7 THEN RAISE EXCEPTION 'lost it' USING ERRCODE = '08006'; END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER conn08_check AFTER INSERT ON conn08 FOR EACH ROW EXECUTE FUNCTION conn08_check();
    """)
    rejected = stat(c, "rows_rejected_insert")
    send_tcp(c.tcp_port, lines("conn08", 0, 100))
    wait_for(lambda: exact(c, "conn08", 99), 30, what="the 99 other rows")
    assert c.scalar("SELECT count(*) FROM conn08 WHERE v = 7") == 0
    wait_for(lambda: stat(c, "rows_rejected_insert") == rejected + 1, 10, what="the row rejected")


def test_a_locked_table_does_not_hold_up_the_others(listener):
    """While one table is locked by another session, lines for other tables that arrive in
    the same batches keep landing: the locked table's lines are handed back to the
    listener and sent again until the lock goes; then they land, once each."""
    c = listener
    c.execute("CREATE TABLE hbl (_time timestamptz, host text, v bigint)")
    c.execute("CREATE TABLE hbo (_time timestamptz, host text, v bigint)")
    held = HeldLock(c, "hbl")
    try:
        rerouted = stat(c, "lines_rerouted")
        for k in range(5):
            send_tcp(c.tcp_port, lines("hbl", k * 100, 100) + lines("hbo", k * 100, 100))
            wait_for(lambda: exact(c, "hbo", (k + 1) * 100), 20,
                     what=f"the other table's rows of batch {k} while the lock is held")
        wait_for(lambda: stat(c, "lines_rerouted") > rerouted, 10,
                 what="the locked table's lines handed back")
        assert workers_waiting_on_a_lock(c) == 0
    finally:
        held.release()
    wait_for(lambda: exact(c, "hbl", 500), 30, what="the locked table's 500 rows after the lock")
    assert exact(c, "hbo", 500)


def test_handed_back_lines_keep_the_precision_they_arrived_under(listener):
    """TCP lines in seconds arrive under influx.precision = 's'; their table is locked, so
    they are handed back and sent again; meanwhile a reload sets influx.precision = 'ms'.
    They were read again under the new precision: the same timestamps landed in 1970
    (silently), where the other table's rows of the same lines landed in 2023.  Now a
    line keeps the precision it arrived under."""
    c = listener
    c.execute("CREATE TABLE prec_locked (_time timestamptz, host text, v bigint);"
              "CREATE TABLE prec_free (_time timestamptz, host text, v bigint)")
    c.execute("ALTER SYSTEM SET influx.precision = 's'")
    c.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: c.scalar("SELECT setting FROM pg_settings "
                                  "WHERE name = 'influx.precision'") == "s", 10)
        held = HeldLock(c, "prec_locked")
        try:
            rerouted = stat(c, "lines_rerouted")
            t0 = 1_700_000_000
            send_tcp(c.tcp_port, "".join(f"prec_locked,host=a v={i}i {t0 + i}\n"
                                         f"prec_free,host=a v={i}i {t0 + i}\n"
                                         for i in range(100)))
            wait_for(lambda: exact(c, "prec_free", 100), 20, what="the free table's rows")
            wait_for(lambda: stat(c, "lines_rerouted") >= rerouted + 100, 20,
                     what="the locked table's lines handed back")
            c.execute("ALTER SYSTEM SET influx.precision = 'ms'")
            c.execute("SELECT pg_reload_conf()")
            wait_for(lambda: c.scalar("SELECT setting FROM pg_settings "
                                      "WHERE name = 'influx.precision'") == "ms", 10)
            # Handed back again after the reload (the listener has it in force too).
            wait_for(lambda: stat(c, "lines_rerouted") >= rerouted + 300, 20,
                     what="the lines handed back again after the reload")
        finally:
            held.release()
        wait_for(lambda: exact(c, "prec_locked", 100) or
                 stat(c, "rows_rejected_value") + stat(c, "lines_rejected_syntax") > 0, 30,
                 what="the locked table's rows after the lock")
        assert c.query("SELECT v, _time FROM prec_locked ORDER BY v") == \
            c.query("SELECT v, _time FROM prec_free ORDER BY v")
        assert c.scalar("SELECT min(_time) FROM prec_locked")
        assert c.scalar("SELECT extract(year FROM min(_time)) FROM prec_locked") == 2023
    finally:
        c.execute("ALTER SYSTEM RESET influx.precision")
        c.execute("SELECT pg_reload_conf()")


def test_a_trigger_that_keeps_raising_a_serialization_failure_holds_only_its_table(listener):
    """Errors that only contention causes (lock timeout, deadlock, serialization failure)
    are retried for as long as they last -- but a table's own code can raise them at will,
    for some row, every time.  That held the whole flush: every other table's rows (every
    other role's HTTP requests) waited for good.  After a few failures in a row the table
    that fails so is handed back, as a locked table is, and the others commit; its rows
    come again and land once the trigger lets them."""
    c = listener
    c.execute("""
        CREATE TABLE poisoned (_time timestamptz, host text, v bigint);
        CREATE TABLE bystander (_time timestamptz, host text, v bigint);
        CREATE FUNCTION poisoned_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.v = 13 THEN
                RAISE EXCEPTION 'thirteen' USING ERRCODE = 'serialization_failure';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER guard BEFORE INSERT ON poisoned FOR EACH ROW
            EXECUTE FUNCTION poisoned_guard();""")
    rejected = stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table")
    for k in range(3):
        send_tcp(c.tcp_port, lines("poisoned", k * 10, 10) + lines("bystander", k * 100, 100))
        wait_for(lambda: exact(c, "bystander", (k + 1) * 100), 30,
                 what=f"the other table's rows of batch {k} while one table keeps failing")
    # The rows written with v = 13 (lines 10-19, and any sent with them) are held.
    assert c.scalar("SELECT count(*) FROM poisoned WHERE v BETWEEN 10 AND 19") == 0
    c.execute("DROP TRIGGER guard ON poisoned")
    wait_for(lambda: exact(c, "poisoned", 30), 30, what="the held table's rows once it takes them")
    assert stat(c, "rows_rejected_insert") + stat(c, "rows_rejected_table") == rejected
