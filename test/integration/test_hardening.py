"""
test_hardening.py — the guarantees of docs/reliability.md and docs/security.md under
load and abuse: DDL during a stream, bad rows mixed into good ones, backpressure while a
table is locked, errors during a flush, privileges of influx.role, the default bind, hostile
names and connection patterns.  Every test drives a real preloaded cluster over real sockets.
"""

import socket
import threading
import time

from conftest import (Cluster, TcpStream, log_since, log_size, peak_memory_kb, reset_peak_memory,
                      send_tcp, two_batches_through_the_gate, wait_for, workers_at_the_gate)

# log_lock_waits: a deadlock between processes is logged ("detected deadlock"), which
# test_opposite_orders_of_new_tables_do_not_deadlock looks for.
CLUSTER_CONF = {"influx.workers": "2", "influx.max_connections": "50", "log_lock_waits": "on"}


def lines(measurement, start, count, extra=""):
    return "".join(
        f"{measurement},host=h{i % 10} v={i}i{extra} {1_600_000_000_000_000_000 + i * 1000}\n"
        for i in range(start, start + count)
    )


def worker_pids(c):
    return c.backend_pids("influx worker")


def test_ddl_during_a_tcp_stream(listener):
    """ALTER/RENAME/TRUNCATE/DROP/re-create while lines stream in: no worker dies, and
    rows after each change follow the catalog."""
    c = listener
    c.execute("CREATE TABLE ddl (_time timestamptz, host text, v bigint)")
    pids = worker_pids(c)
    inserted_before = c.stat_total("rows_inserted", "worker")
    stop = threading.Event()
    sent = [0]

    def stream():
        with TcpStream(c.tcp_port) as s:
            i = 0
            # Until stopped (the cap only keeps clear of the tail's values below): a stream
            # that ran out before the table was re-created left nothing to arrive after it.
            while not stop.is_set() and i < 9_000_000:
                s.send(lines("ddl", i, 500))
                i += 500
                sent[0] = i

    t = threading.Thread(target=stream)
    t.start()
    try:
        wait_for(lambda: c.row_count("ddl") > 0, 15)
        c.execute("ALTER TABLE ddl ADD COLUMN note text DEFAULT 'added'")
        c.execute("ALTER TABLE ddl RENAME COLUMN host TO hostname")
        c.execute("ALTER TABLE ddl ALTER COLUMN v TYPE numeric")
        c.execute("TRUNCATE ddl")
        c.execute("ALTER TABLE ddl DROP COLUMN note")
        # One transaction: otherwise a worker may auto-create "ddl" in between.
        c.execute("BEGIN; DROP TABLE ddl; CREATE TABLE ddl (_time timestamptz, host text, "
                  "v int8, extra text DEFAULT 'new shape'); COMMIT")
        mark = c.scalar("SELECT count(*) FROM ddl")
        wait_for(lambda: c.scalar("SELECT count(*) FROM ddl") > mark + 100, 20,
                 what="rows in the re-created table")
    finally:
        stop.set()
        t.join()
    # Every line of the stream is written before the test ends (through each change, into
    # whichever table was there); nothing of it is left to drain into the next tests.
    wait_for(lambda: c.stat_total("rows_inserted", "worker") - inserted_before >= sent[0], 120,
             what=f"all {sent[0]} streamed lines written")
    assert c.stat_total("rows_inserted", "worker") - inserted_before == sent[0]
    assert c.scalar("SELECT count(*) FROM ddl WHERE extra IS DISTINCT FROM 'new shape'") == 0
    assert worker_pids(c) == pids, "a worker was restarted"
    # The stream's tail lands completely in the new table.
    send_tcp(c.tcp_port, lines("ddl", 10_000_000, 1000))
    wait_for(lambda: c.scalar("SELECT count(*) FROM ddl WHERE v >= 10000000") == 1000, 15)


def test_bad_rows_mixed_into_a_stream(listener):
    c = listener
    c.execute(
        """
        CREATE TABLE mixed (_time timestamptz, host text NOT NULL, v bigint CHECK (v <> 7),
                            w int2, UNIQUE (v));
        CREATE FUNCTION mixed_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.v = 13 THEN RAISE EXCEPTION 'thirteen is unlucky'; END IF; RETURN NULL; END $$;
        CREATE TRIGGER mixed_guard AFTER INSERT ON mixed FOR EACH ROW EXECUTE FUNCTION mixed_guard();
        """
    )
    pids = worker_pids(c)
    before = {k: c.stat_total(k) for k in ("rows_rejected_insert", "rows_rejected_value",
                                            "lines_rejected_syntax")}
    good = lines("mixed", 100, 2000)
    bad = (
        "mixed,host=a v=7i 1\n"            # CHECK
        "mixed v=8i 2\n"                   # NOT NULL host
        "mixed,host=a v=13i 3\n"           # trigger raises
        "mixed,host=a v=100i 4\n"          # duplicate of a good row's v (unique)
        "mixed,host=a v=9i,w=70000i 5\n"   # does not fit int2
        "mixed,host=a v=10i,w=\"x\" 6\n"   # string into int2
        "mixed,host=a v= 7\n"              # syntax
    )
    half = good.index("\n", len(good) // 2) + 1
    payload = good[:half] + bad + good[half:]
    send_tcp(c.tcp_port, payload)
    wait_for(lambda: c.row_count("mixed") == 2000, 20, what="all 2000 good rows")

    def counted():
        return (
            c.stat_total("rows_rejected_insert") - before["rows_rejected_insert"] == 4
            and c.stat_total("rows_rejected_value") - before["rows_rejected_value"] == 2
            and c.stat_total("lines_rejected_syntax") - before["lines_rejected_syntax"] == 1
        )

    wait_for(counted, 10, what="every bad row counted with its class")
    assert c.scalar("SELECT count(DISTINCT v) FROM mixed") == 2000
    assert worker_pids(c) == pids, "a worker was restarted"


def test_backpressure_while_the_table_is_locked(listener):
    """The target table is locked while lines stream: nothing is lost, the sender is held
    back, and the listener's memory stays bounded."""
    c = listener
    c.execute("CREATE TABLE locked (_time timestamptz, host text, v bigint)")
    n = 1_000_000
    payload = lines("locked", 0, n).encode()
    lock_conn = c.connect()
    lock_conn.autocommit = False
    cur = lock_conn.cursor()
    cur.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
    done = threading.Event()
    elapsed = [None]

    def sender():
        t0 = time.monotonic()
        send_tcp(c.tcp_port, payload)
        elapsed[0] = time.monotonic() - t0
        done.set()

    lpid = c.backend_pids("influx listener")[0]
    reset_peak_memory(lpid)
    t = threading.Thread(target=sender)
    t.start()
    wait_for(lambda: c.stat_total("queue_full") > 0, 30, what="the rings to fill up")
    assert not done.is_set(), "the sender was not held back while the table was locked"
    lock_conn.rollback()
    lock_conn.close()
    t.join(120)
    wait_for(lambda: c.row_count("locked") == n, 120, what="all rows after the lock")
    assert c.scalar("SELECT count(DISTINCT v) FROM locked") == n
    hwm_kb = peak_memory_kb(lpid)
    assert hwm_kb < 64 * 1024, f"listener peak memory {hwm_kb} kB"


def test_role_privileges_are_honoured(listener):
    c = listener
    c.execute(
        """
        CREATE ROLE ingest LOGIN;
        CREATE TABLE allowed (_time timestamptz, host text, v bigint);
        CREATE TABLE denied (_time timestamptz, host text, v bigint);
        CREATE TABLE rls (_time timestamptz, host text, v bigint);
        GRANT INSERT ON allowed, rls TO ingest;
        ALTER TABLE rls ENABLE ROW LEVEL SECURITY;
        """
    )
    c.execute("ALTER SYSTEM SET influx.role = 'ingest'")
    c.execute("ALTER SYSTEM SET influx.create_tables = off")
    c.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: c.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker' "
            "AND usename = 'ingest'") == 2, 30, what="workers connected as ingest")
        before = c.stat_total("rows_rejected_table")
        before_policy = c.stat_total("rows_rejected_insert")
        send_tcp(c.tcp_port, lines("allowed", 0, 50) + lines("denied", 0, 50)
                 + lines("rls", 0, 50) + lines("nosuchtable", 0, 50))
        wait_for(lambda: c.row_count("allowed") == 50, 15)
        wait_for(lambda: c.stat_total("rows_rejected_table") >= before + 100, 15)
        # Row-level security with no policy for the role denies every row, row by row.
        wait_for(lambda: c.stat_total("rows_rejected_insert") >= before_policy + 50, 15)
        assert c.row_count("denied") == 0
        assert c.row_count("rls") == 0
        assert c.scalar("SELECT to_regclass('nosuchtable')") is None
    finally:
        c.execute("ALTER SYSTEM RESET influx.role")
        c.execute("ALTER SYSTEM RESET influx.create_tables")
        c.execute("SELECT pg_reload_conf()")
        wait_for(lambda: c.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker' "
            "AND usename = 'postgres'") == 2, 30)


def _listening_addresses(port):
    found = []
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True),
                     ("/proc/net/udp", False), ("/proc/net/udp6", True)):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    addr, p = parts[1].split(":")
                    if int(p, 16) == port:
                        found.append(addr)
        except OSError:
            pass
    return found


def test_default_bind_is_loopback_only(listener):
    for port in (listener.tcp_port, listener.udp_port):
        addrs = _listening_addresses(port)
        assert addrs, f"nothing bound on {port}"
        loopback = {"0100007F", "00000000000000000000000001000000"}
        assert set(addrs) <= loopback, f"port {port} bound on {addrs}"


def test_hostile_names_are_plain_identifiers(listener):
    c = listener
    c.execute("CREATE TABLE victim (x int)")
    names = [
        'semi\\;colon"DROP\\ TABLE\\ victim;--',
        "dotted.name",
        "pg_class",
        "x" * 63,
    ]
    payload = "".join(f"{n},tag\\ key=1 f=1 1\n" for n in names)
    payload += "y" * 64 + " f=1 1\n"  # longer than a PostgreSQL name: rejected, not truncated
    send_tcp(c.tcp_port, payload)
    wait_for(lambda: c.scalar(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relname IN (%s, 'dotted.name', 'pg_class', %s)",
        # A backslash before ';' stays literal in a measurement; '\ ' is an escaped space.
        ('semi\\;colon"DROP TABLE victim;--', "x" * 63)) == 4, 15,
        what="four safely named tables")
    assert c.scalar("SELECT to_regclass('victim')") is not None
    assert c.scalar("SELECT count(*) FROM public.pg_class") == 1
    assert c.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'yyyy%'") == 0


def test_conflicting_types_and_bad_timestamps(listener):
    c = listener
    before_value = c.stat_total("rows_rejected_value")
    before_syntax = c.stat_total("lines_rejected_syntax")
    send_tcp(c.tcp_port,
             "conflict f=1.5 1\n"               # creates f double precision
             "conflict f=2i 2\n"                # integer into float: fine
             "conflict f=\"text\" 3\n"          # string into float: row rejected
             "conflict f=true 4\n"              # boolean into float: row rejected
             "conflict f=1 99999999999999999999\n")  # timestamp out of range: line rejected
    wait_for(lambda: c.row_count("conflict") == 2, 15)
    wait_for(lambda: c.stat_total("rows_rejected_value") == before_value + 2, 10)
    assert c.stat_total("lines_rejected_syntax") == before_syntax + 1
    assert sorted(r[0] for r in c.query("SELECT f FROM conflict")) == [1.5, 2.0]


def test_many_slow_and_half_open_connections(listener):
    c = listener
    before_refused = c.stat_total("connections_refused")
    idle = [socket.create_connection(("127.0.0.1", c.tcp_port)) for _ in range(45)]  # half-open
    wait_for(lambda: c.stat_total("connections_accepted") >= 45, 15)
    # A slow sender trickles one line byte by byte while a fast one delivers.
    slow = socket.create_connection(("127.0.0.1", c.tcp_port))
    slow.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    line = b"trickle,host=slow v=1i 1\n"
    for b in line[:-5]:
        slow.send(bytes([b]))
    send_tcp(c.tcp_port, lines("fastlane", 0, 500))
    wait_for(lambda: c.row_count("fastlane") == 500, 15)
    for b in line[-5:]:
        slow.send(bytes([b]))
    wait_for(lambda: c.row_count("trickle") == 1, 15)
    # 46 connections are open (limit 50): of 20 more, at least 16 are refused and counted.
    extra = [socket.create_connection(("127.0.0.1", c.tcp_port)) for _ in range(20)]
    wait_for(lambda: c.stat_total("connections_refused") >= before_refused + 16, 15,
             what="connections over influx.max_connections refused")
    for s in extra + idle + [slow]:
        s.close()
    wait_for(lambda: c.listener_status()["tcp_connections"] == 0, 15,
             what="the listener to see every connection closed")
    assert c.listener_status()["status"].startswith("running")


def test_closed_connections_free_their_slots_at_once(listener):
    """Clients that close just before others connect do not count against
    influx.max_connections: closes the listener sees together with new connections are
    handled first."""
    c = listener
    full = [socket.create_connection(("127.0.0.1", c.tcp_port)) for _ in range(50)]
    wait_for(lambda: c.listener_status()["tcp_connections"] == 50, 15)
    refused = c.stat_total("connections_refused")
    for s in full:
        s.close()
    fresh = [socket.create_connection(("127.0.0.1", c.tcp_port)) for _ in range(3)]
    for k, s in enumerate(fresh):
        s.sendall(lines(f"afterclose{k}", 0, 200).encode())
        s.shutdown(socket.SHUT_WR)
    for k in range(3):
        wait_for(lambda k=k: c.row_count(f"afterclose{k}") == 200, 15, what=f"afterclose{k}")
    for s in fresh:
        s.close()
    assert c.stat_total("connections_refused") == refused


def test_listener_survives_a_fuzzed_tcp_stream(listener):
    """Seeded random mutations of valid lines and raw random bytes, cut into random segment
    sizes over several connections, while a clean connection sends good lines: the good
    lines all land, no process restarts, and the rejected lines are counted."""
    import random

    c = listener
    rng = random.Random(20261121)
    pids = (c.backend_pids("influx listener"), worker_pids(c))
    before = c.stat_total("lines_rejected_syntax") + c.stat_total("lines_rejected_too_long")
    specials = [b"\\", b'"', b",", b"=", b" ", b"\n", b"\r", b"\x00", b"\xff", b"#", b"i", b"u"]

    def mutated(i):
        line = bytearray(f"fz,host=h{i % 7},t=x f={i}.5,g={i}i,s=\"v{i}\",b=t {i}\n".encode())
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(line))
            op = rng.random()
            if op < 0.4:
                line[pos:pos] = rng.choice(specials)
            elif op < 0.7:
                line[pos] = rng.randrange(256)
            else:
                del line[pos]
        return bytes(line)

    streams = []
    for k in range(4):
        parts = [mutated(i) if rng.random() < 0.9 else bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
                 for i in range(k * 2000, (k + 1) * 2000)]
        streams.append(b"".join(parts) + b"\n")

    def send_in_random_segments(data, seed):
        cut = random.Random(seed)  # one generator per thread: reproducible segmentation
        with TcpStream(c.tcp_port) as s:
            pos = 0
            while pos < len(data):
                n = cut.randint(1, 4096)
                s.send(data[pos:pos + n])
                pos += n

    threads = [threading.Thread(target=send_in_random_segments, args=(d, k))
               for k, d in enumerate(streams)]
    for t in threads:
        t.start()
    send_tcp(c.tcp_port, lines("fzgood", 0, 3000))
    for t in threads:
        t.join(60)
    wait_for(lambda: exact_count(c, "fzgood", 3000), 30, what="all good lines")
    assert c.stat_total("lines_rejected_syntax") + c.stat_total("lines_rejected_too_long") > before
    assert (c.backend_pids("influx listener"), worker_pids(c)) == pids, "a process restarted"
    assert c.listener_status()["status"].startswith("running")


def test_new_tables_are_committed_before_the_rows(listener, gate):
    """A worker makes the table of a new measurement in a short transaction of its own: while
    the batch's rows are still being written, the table already exists for everyone and
    can be read without waiting."""
    c = listener
    close, open_ = gate
    close()
    send_tcp(c.tcp_port, "early_table f=1 1\ngate f=1 1\n")
    wait_for(lambda: workers_at_the_gate(c) == 1, 15, what="the worker to wait at the gate")
    try:
        assert c.scalar("SELECT to_regclass('early_table') IS NOT NULL"), \
            "the new table is not visible while its batch is being written"
        assert c.scalar("SET lock_timeout = '2s'; SELECT count(*) FROM early_table") == 0
    finally:
        open_()
    wait_for(lambda: c.row_count("early_table") == 1 and c.row_count("gate") >= 1, 15)


def test_opposite_orders_of_new_tables_do_not_deadlock(listener, gate):
    """Two workers whose batches name the same two new measurements in opposite orders,
    both mid-flush at once: neither waits for the other's tables, nothing deadlocks and
    every row lands."""
    c = listener
    offset = log_size(c)
    rejected = sum(c.stat_total(k) for k in
                   ("rows_rejected_table", "rows_rejected_value", "rows_rejected_insert"))
    two_batches_through_the_gate(c, gate, "opp_one f=1 1\ngate f=1 1\nopp_two f=1 1\n",
                                 "opp_two f=2 2\ngate f=2 2\nopp_one f=2 2\n")
    wait_for(lambda: c.row_count("opp_one") == 2 and c.row_count("opp_two") == 2, 30,
             what="every row of both batches")
    assert "deadlock" not in log_since(c, offset)
    assert sum(c.stat_total(k) for k in
               ("rows_rejected_table", "rows_rejected_value", "rows_rejected_insert")) == rejected


def _waiting_on(c, pid, event):
    return c.scalar("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)) == event


def test_a_deadlock_with_another_session_restarts_the_batch(listener, gate):
    """Another session locks a table a worker's batch writes and then waits for one the
    worker holds: the worker does not reject the rows of the table it was waiting for.
    It hands the locked table's line back (or, losing the deadlock, gives up the whole
    attempt), so the other session gets its locks, and every good row lands."""
    c = listener
    close, open_ = gate
    c.execute("CREATE TABLE dl_bad (_time timestamptz, v float8 CHECK (v > 0))")
    c.execute("CREATE TABLE dl_y (_time timestamptz, f float8)")
    c.execute("CREATE TABLE dl_x (_time timestamptz, f float8)")
    rejected_table = c.stat_total("rows_rejected_table")
    rejected_insert = c.stat_total("rows_rejected_insert")
    rerouted = c.stat_total("lines_rerouted")
    other = c.connect()
    other.autocommit = False
    ocur = other.cursor()
    ocur.execute("LOCK TABLE dl_x IN SHARE MODE")
    second_lock = threading.Thread(target=ocur.execute, args=("LOCK TABLE dl_y IN SHARE MODE",))
    try:
        close()
        # dl_bad fails its CHECK: the batch is retried table by table, and waits at the gate
        # holding dl_y.
        send_tcp(c.tcp_port, "dl_bad v=-1 1\ndl_y f=1 1\ngate f=3 1\ndl_x f=1 1\n")
        wait_for(lambda: workers_at_the_gate(c) == 1, 15, what="the worker at the gate")
        open_()
        # The worker either waits for dl_x (then the other session's wait for dl_y is a
        # deadlock) or hands dl_x's line back to be sent again (then there is none).
        wait_for(lambda: any(_waiting_on(c, p, "relation") for p in worker_pids(c))
                 or c.stat_total("lines_rerouted") > rerouted, 15,
                 what="the worker waiting for dl_x, or handing its line back")
        second_lock.start()  # the other session now waits for dl_y
        second_lock.join(30)
        assert not second_lock.is_alive(), "the other session never got dl_y"
    finally:
        open_()
        other.commit()
        other.close()
    wait_for(lambda: c.row_count("dl_x") == 1 and c.row_count("dl_y") == 1, 30,
             what="the rows of dl_x and dl_y")
    assert c.row_count("dl_bad") == 0
    wait_for(lambda: c.stat_total("rows_rejected_insert") == rejected_insert + 1, 10)
    assert c.stat_total("rows_rejected_table") == rejected_table


def exact_count(c, table, n):
    return c.row_count(table) == n and c.scalar(f"SELECT count(DISTINCT v) FROM {table}") == n


def test_cancel_does_not_end_the_listener_or_workers(listener):
    c = listener
    pids = (c.backend_pids("influx listener"), worker_pids(c))
    c.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
              "WHERE backend_type IN ('influx listener', 'influx worker')")
    send_tcp(c.tcp_port, lines("aftercancel", 0, 100))
    wait_for(lambda: exact_count(c, "aftercancel", 100), 15)
    assert (c.backend_pids("influx listener"), worker_pids(c)) == pids


def _rss_anon_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("RssAnon"))


def test_a_worker_gives_back_the_memory_of_a_large_batch_under_a_trickle(listener):
    """A worker keeps the memory a flush freed for the next flush, not for ever: ten seconds
    after its last large flush it gives it back to the kernel, even while small flushes
    keep coming (a trickle of lines every half second)."""
    c = listener
    send_tcp(c.tcp_port, lines("smallrows", 0, 1000))
    wait_for(lambda: c.row_count("smallrows") == 1000, 15)
    before = {p: _rss_anon_kb(p) for p in worker_pids(c)}
    big = "x" * 4000
    send_tcp(c.tcp_port, lines("bigrows", 0, 20_000, extra=f',s="{big}"'))
    wait_for(lambda: c.row_count("bigrows") == 20_000, 60)
    # 80 MB of lines went through the workers: they keep tens of megabytes for now (memory
    # kept from the module's earlier tests may have been reused: compared at the end).
    peak = {p: _rss_anon_kb(p) for p in before}

    sent = [0]

    def given_back():
        send_tcp(c.tcp_port, lines("memtrickle", sent[0], 1))
        sent[0] += 1
        return max(_rss_anon_kb(p) - kb for p, kb in before.items()) < 8 * 1024

    wait_for(given_back, 30, interval=0.5, what="the workers to give their memory back")
    released = {p: kb - _rss_anon_kb(p) for p, kb in peak.items()}
    assert max(released.values()) > 16 * 1024, f"memory given back: only {released} kB"
    wait_for(lambda: c.row_count("memtrickle") == sent[0], 15)


def test_only_invalid_lines_do_not_grow_worker_memory(listener):
    """Lines that give no row leave nothing to flush; their copies must still be freed."""
    c = listener
    send_tcp(c.tcp_port, lines("warmup", 0, 1000))
    wait_for(lambda: c.row_count("warmup") == 1000, 15)
    before = {p: _rss_anon_kb(p) for p in worker_pids(c)}
    rejected = c.stat_total("lines_rejected_syntax")
    bad = b"bad f= 1\n" * 4_000_000  # 36 MB of lines that never become rows
    send_tcp(c.tcp_port, bad)
    wait_for(lambda: c.stat_total("lines_rejected_syntax") >= rejected + 4_000_000, 60,
             what="every bad line counted")
    growth = {p: _rss_anon_kb(p) - kb for p, kb in before.items()}
    assert max(growth.values()) < 12 * 1024, f"worker memory grew by {growth} kB"


def tcp_open(c):
    """Whether the cluster's influx TCP port accepts connections (it listens before CREATE
    EXTENSION too)."""
    try:
        socket.create_connection(("127.0.0.1", c.tcp_port), timeout=1).close()
        return True
    except OSError:
        return False


def test_lines_sent_while_the_extension_is_missing_are_held_until_it_is_created():
    """pg_influx is preloaded and listening before CREATE EXTENSION, and between a DROP
    EXTENSION and a CREATE: lines sent then are held (their senders feel backpressure) and
    written once the extension exists.  They used to be rejected for the server's state:
    a new measurement's rows because the creation hook did not exist."""
    c = Cluster("noext")
    try:
        c.init()
        c.start()
        c.execute("CREATE TABLE existing (_time timestamptz, host text, v bigint)")

        def held():
            return c.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                            "'influx worker' AND query LIKE 'waiting for CREATE EXTENSION%'")

        wait_for(lambda: tcp_open(c), 30, what="the TCP port to accept")
        send_tcp(c.tcp_port, lines("early", 0, 300) + lines("existing", 0, 300))
        wait_for(held, 30, what="a worker holding the lines until CREATE EXTENSION")
        assert c.row_count("early") == 0 and c.row_count("existing") == 0
        c.execute("CREATE EXTENSION pg_influx")
        wait_for(lambda: c.row_count("early") == 300 and c.row_count("existing") == 300, 30,
                 what="every row once the extension exists")

        c.execute("DROP EXTENSION pg_influx")
        send_tcp(c.tcp_port, lines("early", 300, 300) + lines("late", 0, 300))
        wait_for(held, 30, what="a worker holding the lines after DROP EXTENSION")
        c.execute("CREATE EXTENSION pg_influx")
        wait_for(lambda: c.row_count("early") == 600 and c.row_count("late") == 300, 30,
                 what="every row once the extension exists again")
        assert c.scalar("SELECT count(DISTINCT v) FROM early") == 600
        assert sum(c.stat_total(k, "worker") for k in
                   ("rows_rejected_insert", "rows_rejected_table", "rows_rejected_value")) == 0
    finally:
        c.destroy()


def test_a_worker_holding_lines_for_create_extension_ends_with_its_listener():
    """Lines held until CREATE EXTENSION may wait forever (the extension was created in
    another database than influx.database).  When the listener that sent them exits --
    here terminated; also after influx.database or influx.role changes -- it counts them
    as lost and waits for no one: the holding workers end too, instead of staying with
    their database connection and worker slot for good."""
    c = Cluster("noext_listener")
    try:
        c.init()
        c.start()

        def holding():
            return sorted(r[0] for r in c.query(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'influx worker' "
                "AND query LIKE 'waiting for CREATE EXTENSION%'"))

        wait_for(lambda: tcp_open(c), 30, what="the TCP port to accept")
        send_tcp(c.tcp_port, lines("held", 0, 300))
        held = wait_for(holding, 30, what="a worker holding the lines until CREATE EXTENSION")
        listener_pid = c.backend_pids("influx listener")[0]
        c.execute("SELECT pg_terminate_backend(%s)", (listener_pid,))
        # The listener hands out what it holds and waits for the workers (20 s, then 30 s
        # for those that commit nothing) before it exits.
        wait_for(lambda: not set(held) & set(c.backend_pids("influx worker")), 90,
                 interval=0.5, what="the holding workers to end after their listener")
    finally:
        c.destroy()
