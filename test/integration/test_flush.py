"""
test_flush.py — when a worker commits what it holds: after influx.flush_idle without new
data (the end of a burst), or after influx.flush_interval when idle flushing is off; both
follow a reload while rows are waiting.  Rows converted while they were parsed (against
the cached table) are converted again when the table changes before their flush.
"""

import time

from conftest import send_tcp, wait_for
from http_support import T0_NS, assert_204, require_http, write

# A flush interval far longer than any wait below: only the idle rule can commit in time.
# Two rows fill a batch, so a test decides when a flush happens by sending a second line.
CLUSTER_CONF = {"influx.flush_interval": "60s", "influx.flush_idle": "0", "influx.workers": "1",
                "influx.batch_size": "2"}


def worker_activities(c):
    return [a for (a,) in c.query(
        "SELECT activity FROM influx.stats() WHERE kind = 'worker' AND pid IS NOT NULL")]


def test_flush_idle_off_waits_for_the_interval_and_a_reload_applies(listener):
    c = listener
    c.execute("CREATE TABLE idle_off (_time timestamptz, host text, v float8)")
    send_tcp(c.tcp_port, "idle_off,host=a v=1 1\n")
    wait_for(lambda: "waiting to flush" in worker_activities(c), 10,
             what="the worker holding the row")
    # Held, not committed: nothing but the 60 s interval would flush it.
    assert c.row_count("idle_off") == 0

    c.execute("ALTER SYSTEM SET influx.flush_idle = '50ms'")
    c.reload()
    try:
        # The worker re-reads its settings while it waits: the row is overdue at once.
        wait_for(lambda: c.row_count("idle_off") == 1, 10, what="the row after the reload")

        c.execute("CREATE TABLE idle_on (_time timestamptz, host text, v float8)")
        send_tcp(c.tcp_port, "".join(f"idle_on,host=h{i} v={i} {i}\n" for i in range(500)))
        wait_for(lambda: c.row_count("idle_on") == 500, 10,
                 what="a burst committed once the ring went idle")
    finally:
        c.execute("ALTER SYSTEM RESET influx.flush_idle")
        c.reload()


def test_rows_held_while_their_table_changes_get_its_new_columns(listener):
    c = listener
    c.execute("CREATE TABLE reshaped (_time timestamptz, host text, v float8)")
    # A full batch: flushed at once, and the worker now knows the table.
    send_tcp(c.tcp_port, "reshaped,host=a v=1.5 1000\nreshaped,host=a v=2.5 2000\n")
    wait_for(lambda: c.row_count("reshaped") == 2, 10, what="the first batch")

    # Converted for (float8 v, host in column 2) as it is parsed, then held.
    send_tcp(c.tcp_port, "reshaped,host=b v=3.5 3000\n")
    wait_for(lambda: "waiting to flush" in worker_activities(c), 10,
             what="the worker holding the row")
    c.execute("ALTER TABLE reshaped ALTER COLUMN v TYPE bigint")
    c.execute("ALTER TABLE reshaped DROP COLUMN host")
    c.execute("ALTER TABLE reshaped ADD COLUMN host text")

    send_tcp(c.tcp_port, "reshaped,host=c v=4.5 4000\n")  # completes the batch
    wait_for(lambda: c.row_count("reshaped") == 4, 10, what="the second batch")
    # float8 -> bigint rounds half to even, as the cast does.
    assert c.query("SELECT host, v FROM reshaped ORDER BY _time") == [
        (None, 2), (None, 2), ("b", 4), ("c", 4)]
    assert c.scalar("SELECT sum(rows_rejected_value + rows_rejected_insert) FROM influx.stats") == 0


def test_an_http_write_is_committed_as_soon_as_the_ring_is_empty(listener):
    """An HTTP client waits for the commit of its lines and sends nothing more until then:
    a batch holding them is committed once the worker's ring is empty, not after
    influx.flush_idle or influx.flush_interval (60 s here, idle flushing off).  Rows from TCP
    still wait for those."""
    c = listener
    require_http(c)
    c.execute("CREATE TABLE http_now (_time timestamptz, host text, v float8)")
    for i in range(3):
        started = time.monotonic()
        r = write(c.http_port, f"http_now,host=h{i} v={i} {T0_NS + i}\n")
        elapsed = time.monotonic() - started
        assert_204(r)
        assert elapsed < 2, f"answered after {elapsed:.1f} s: the row waited for a flush rule"
        assert c.row_count("http_now") == i + 1

    # The next TCP row is held again, as before: the rule is the HTTP request's.
    c.execute("CREATE TABLE tcp_after (_time timestamptz, host text, v float8)")
    send_tcp(c.tcp_port, "tcp_after,host=a v=1 1\n")
    wait_for(lambda: "waiting to flush" in worker_activities(c), 10,
             what="the worker holding the row")
    assert c.row_count("tcp_after") == 0
    send_tcp(c.tcp_port, "tcp_after,host=a v=2 2\n")  # completes the batch
    wait_for(lambda: c.row_count("tcp_after") == 2, 10, what="the batch of two")


def set_and_wait(c, name, value):
    """ALTER SYSTEM + reload, until a new session sees the value: the postmaster has then
    re-read the file and signalled every process, so the worker reads it before it takes
    anything more from its ring."""
    c.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    c.reload()
    wait_for(lambda: c.scalar("SELECT setting FROM pg_settings WHERE name = %s", (name,)) == value,
             10, what=f"{name} = {value}")


def test_rows_held_across_a_precision_change_keep_their_time(listener):
    """Held rows are parsed again when a new column changes their table; they keep the
    time they were read with, whatever influx.precision says by then."""
    c = listener
    c.execute("CREATE TABLE prec (_time timestamptz, host text, v float8)")
    try:
        set_and_wait(c, "influx.add_columns", "on")
        send_tcp(c.tcp_port, "prec,host=a v=1 1700000000000000000\nprec,host=a v=2 1700000001000000000\n")
        wait_for(lambda: c.row_count("prec") == 2, 10, what="the first batch")

        send_tcp(c.tcp_port, "prec,host=b v=3 1700000002000000000\n")  # nanoseconds, held
        wait_for(lambda: "waiting to flush" in worker_activities(c), 10,
                 what="the worker holding the row")
        set_and_wait(c, "influx.precision", "ms")
        # Milliseconds now, and a new field: the batch's flush adds a column first.
        send_tcp(c.tcp_port, "prec,host=c v=4,extra=5 1700000003000\n")
        wait_for(lambda: c.row_count("prec") == 4, 10, what="the second batch")
        assert c.query("SELECT host, extract(epoch FROM _time)::bigint, v, extra FROM prec "
                       "ORDER BY host") == [
            ("a", 1700000000, 1.0, None), ("a", 1700000001, 2.0, None),
            ("b", 1700000002, 3.0, None), ("c", 1700000003, 4.0, 5.0)]
        assert c.scalar("SELECT sum(rows_rejected_value + rows_rejected_insert) "
                        "FROM influx.stats") == 0
    finally:
        c.execute("ALTER SYSTEM RESET influx.add_columns")
        c.execute("ALTER SYSTEM RESET influx.precision")
        c.reload()


def test_rows_of_a_wide_table_land_in_their_columns(listener):
    c = listener
    cols = ", ".join(f"c{i} float8" for i in range(400))
    c.execute(f"CREATE TABLE wide (_time timestamptz, host text, {cols})")
    c.execute("ALTER TABLE wide DROP COLUMN c7")
    send_tcp(c.tcp_port, "wide,host=a c5=5,c399=399 1000\nwide,host=b c300=300 2000\n")
    wait_for(lambda: c.row_count("wide") == 2, 10, what="the first batch")
    # The table is known now: these two are converted as they are parsed.
    send_tcp(c.tcp_port, "wide,host=c c0=0.5,c256=256,c399=-1 3000\nwide,host=d c398=398 4000\n")
    wait_for(lambda: c.row_count("wide") == 4, 10, what="the second batch")
    assert c.query("SELECT host, c0, c5, c256, c300, c398, c399, (SELECT count(*) FROM "
                   "jsonb_object_keys(jsonb_strip_nulls(to_jsonb(wide)))) FROM wide "
                   "ORDER BY host") == [
        ("a", None, 5.0, None, None, None, 399.0, 4),
        ("b", None, None, None, 300.0, None, None, 3),
        ("c", 0.5, None, 256.0, None, None, -1.0, 5),
        ("d", None, None, None, None, 398.0, None, 3)]


def test_lines_of_one_layout_keep_their_exact_values(listener):
    """A worker reads a line with the layout of the one before against that layout; whether
    a line takes that path or the full parser, every value must be exact.  Floats are
    written in many forms, some lines break the layout (other order, a missing field, an
    exponent, CRLF) and one line is invalid."""
    import datetime
    import random

    c = listener
    c.execute("CREATE TABLE shaped (_time timestamptz, host text, cpu text, f float8, g float8, "
              "n bigint)")
    send_tcp(c.tcp_port, "shaped,host=w,cpu=w f=0,g=0,n=-1i 0\nshaped,host=w,cpu=w f=0,g=0,n=-2i 0\n")
    wait_for(lambda: c.row_count("shaped") == 2, 10, what="the first batch")
    rejected_before = c.stat_total("lines_rejected_syntax")

    rng = random.Random(20261121)

    def float_text(x):
        form = rng.randrange(5)
        if form == 0:
            return repr(x)
        if form == 1:
            return "%.17g" % x
        if form == 2:
            return "%.*f" % (rng.randrange(0, 20), x / 10 ** rng.randrange(0, 8))
        if form == 3:
            return str(rng.randrange(-10 ** 6, 10 ** 6))
        return rng.choice(["0", "-0", "0.0", "1e-5", "-2.5E+3", "0.000000000000000000001",
                           "12345678901234567890", "1" + "0" * 25, "9007199254740993"])

    lines, expected = [], {}
    for i in range(3000):
        f, g = float_text(rng.uniform(-1e6, 1e6)), float_text(rng.uniform(0, 100))
        ns = 1_700_000_000_000_000_000 + rng.randrange(-10 ** 15, 10 ** 15)
        host, cpu = f"h{i % 7}", f"cpu{i % 3}"
        kind = i % 97
        if kind == 1:
            line = f"shaped,cpu={cpu},host={host} g={g},f={f},n={i}i {ns}"
        elif kind == 2:
            line = f"shaped,host={host},cpu={cpu} f={f},n={i}i {ns}"
            g = None
        elif kind == 3:
            line = f"shaped,host={host},cpu={cpu} f={f},g={g},n={i}i {ns}\r"
        else:
            line = f"shaped,host={host},cpu={cpu} f={f},g={g},n={i}i {ns}"
        lines.append(line)
        t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + \
            datetime.timedelta(microseconds=ns // 1000)
        expected[i] = (t, host, cpu, float(f), None if g is None else float(g))
    lines.insert(1500, "shaped,host=h1,cpu=cpu0 f=abc,g=1,n=99999i 1")
    send_tcp(c.tcp_port, "\n".join(lines) + "\n")
    wait_for(lambda: c.row_count("shaped") == 3002, 30, what="3000 more rows")
    assert c.stat_total("lines_rejected_syntax") == rejected_before + 1
    got = {n: (t, host, cpu, f, g)
           for (n, t, host, cpu, f, g) in c.query("SELECT n, _time, host, cpu, f, g FROM shaped "
                                                  "WHERE n >= 0")}
    assert len(got) == 3000
    wrong = [(n, got[n], expected[n]) for n in expected if got[n] != expected[n]]
    assert wrong == []


def test_interleaved_measurements_keep_their_exact_values(listener):
    """Lines of three measurements take turns (floats and integers; unsigned integers and
    booleans; some with a quoted string, so their chunk is not plain ASCII throughout): each
    line is read against the layout of the last line of its own measurement, or parsed in
    full, and every value must be exact."""
    import random

    c = listener
    c.execute("CREATE TABLE inter_a (_time timestamptz, host text, f float8, n bigint)")
    c.execute("CREATE TABLE inter_b (_time timestamptz, host text, g float8, s text)")
    c.execute("CREATE TABLE inter_c (_time timestamptz, host text, recv bigint, up boolean)")
    send_tcp(c.tcp_port, "inter_a,host=w f=0,n=-1i 0\ninter_b,host=w g=0 0\n"
                         "inter_c,host=w recv=0u,up=t 0\n")
    wait_for(lambda: sum(c.row_count(t) for t in ("inter_a", "inter_b", "inter_c")) == 3, 10,
             what="the first batch")

    rng = random.Random(11)
    lines, want_a, want_b, want_c = [], {}, {}, {}
    for i in range(2000):
        if i % 3 == 0:
            recv, up = rng.randrange(2 ** 63), rng.choice(["t", "T", "true", "f", "FALSE"])
            lines.append(f"inter_c,host=h{i % 5} recv={recv}u,up={up} {i}000")
            want_c[i] = (f"h{i % 5}", recv, up[0] in "tT")
        f = rng.choice([repr(rng.uniform(-1e3, 1e3)), "%.*f" % (rng.randrange(12), rng.random()),
                        str(rng.randrange(10 ** 6)), "0.000123", "-0"])
        if i % 2 == 0:
            lines.append(f"inter_a,host=h{i % 5} f={f},n={i}i {i}000")
            want_a[i] = (f"h{i % 5}", float(f))
        elif i % 7 == 1:
            lines.append(f'inter_b,host=h{i % 5} g={f},s="x {i}, y=é" {i}000')
            want_b[i] = (f"h{i % 5}", float(f), f"x {i}, y=é")
        else:
            lines.append(f"inter_b,host=h{i % 5} g={f} {i}000")
            want_b[i] = (f"h{i % 5}", float(f), None)
    send_tcp(c.tcp_port, "\n".join(lines) + "\n")
    total = 3 + len(want_a) + len(want_b) + len(want_c)
    wait_for(lambda: sum(c.row_count(t) for t in ("inter_a", "inter_b", "inter_c")) == total, 30,
             what="the rows of the interleaved lines")
    got_a = {n: (host, f) for (n, host, f) in c.query(
        "SELECT n, host, f FROM inter_a WHERE n >= 0")}
    got_b = {us: (host, g, s) for (us, host, g, s) in c.query(
        "SELECT ((extract(epoch FROM _time) * 1000000)::bigint), host, g, s FROM inter_b "
        "WHERE host <> 'w'")}
    got_c = {us: (host, recv, up) for (us, host, recv, up) in c.query(
        "SELECT ((extract(epoch FROM _time) * 1000000)::bigint), host, recv, up FROM inter_c "
        "WHERE host <> 'w'")}
    assert got_a == want_a
    assert got_b == want_b
    assert got_c == want_c
