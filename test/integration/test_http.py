"""
test_http.py — the InfluxDB-compatible HTTP endpoint, at the protocol level (http.client and
raw sockets): /ping, /health, /write and /api/v2/write, /query, /metrics, headers on every
response, error bodies, HTTP/1.1 details (keep-alive, pipelining, chunked, Expect:
100-continue), HTTP/1.0, gzip, body size limits, precision, routing `db`/`bucket` to
schemas, partial writes, and many concurrent writers.

The rule checked after every 204: each line of that request is committed, so a query from a
new connection, issued the instant the 204 arrives, sees all of them (no wait_for there).

The module's cluster limits bodies to 1 MiB (influx.http_max_body_size) so that the size
tests stay small; the other HTTP modules run with the default (25MB).

Run (as root, with the extension installed):
    /usr/bin/python3 -m pytest test/integration/test_http.py test/integration/test_http_clients.py \
        test/integration/test_http_limits.py test/integration/test_http_auth.py
"""

import datetime
import os
import random
import re
import threading

import pytest

from http_support import (
    INFLUXDB_VERSION,
    T0_NS,
    Connection,
    RawConnection,
    assert_204,
    assert_influx_headers,
    assert_json_error,
    chunks,
    gzipped,
    query,
    raw_request,
    request,
    require_http,
    setting,
    url,
    write,
    write_v2,
)

MAX_BODY = 1024 * 1024

CLUSTER_CONF = {"influx.http_max_body_size": str(MAX_BODY)}

T0 = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def http(listener):
    """The cluster, answering GET /ping with 204 on its influx.http_port."""
    require_http(listener)
    assert bytes_setting(setting(listener, "influx.http_max_body_size")) == MAX_BODY
    return listener


def bytes_setting(text):
    """A size setting as SHOW prints it ("1MB", "1024kB" or "1048576"), in bytes."""
    assert text is not None, "the server does not know the setting"
    for unit, factor in (("kB", 1024), ("MB", 1024**2), ("GB", 1024**3), ("B", 1)):
        if text.endswith(unit):
            return int(text[:-len(unit)]) * factor
    return int(text)


def exists(c, table):
    return c.scalar("SELECT to_regclass(%s) IS NOT NULL", (table,))


# ---------------------------------------------------------------------------------------
# /ping, /health, headers
# ---------------------------------------------------------------------------------------


def test_ping_get_and_head_answer_204_with_the_version(http):
    for method in ("GET", "HEAD"):
        r = request(http.http_port, method, "/ping")
        assert_204(r)
    r = request(http.http_port, "GET", "/ping?verbose=true")
    assert r.status == 200, r
    assert r.json() == {"version": INFLUXDB_VERSION}
    assert_influx_headers(r)


def test_ping_ignores_credentials_and_wait_for_leader(http):
    # The Go 1.x client adds wait_for_leader; influxdb-python sends Basic root:root.
    r = request(http.http_port, "GET", "/ping?wait_for_leader=5s",
                headers={"Authorization": "Basic cm9vdDpyb290"})
    assert_204(r)


def test_health_answers_the_influxdb_document(http):
    r = request(http.http_port, "GET", "/health")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("application/json"), r
    assert r.json() == {
        "name": "influxdb",
        "message": "ready for queries and writes",
        "status": "pass",
        "checks": [],
        "version": INFLUXDB_VERSION,
    }
    assert_influx_headers(r)


def test_every_response_echoes_the_request_id(http):
    port = http.http_port
    cases = [
        ("GET", "/ping", None),
        ("HEAD", "/ping", None),
        ("GET", "/health", None),
        ("POST", url("/write"), f"rid v=1 {T0_NS}\n"),
        ("POST", url("/write", precision="fortnight"), f"rid v=1 {T0_NS}\n"),
        ("POST", url("/api/v2/write", bucket="x"), f"rid v=2 {T0_NS}\n"),
        ("GET", url("/query", q="SHOW DATABASES"), None),
        ("GET", "/metrics", None),
        ("GET", "/no/such/path", None),
    ]
    for i, (method, path, body) in enumerate(cases):
        rid = f"test-request-{i}-7f3a"
        r = request(port, method, path, body, headers={"X-Request-Id": rid})
        assert_influx_headers(r, request_id=rid)
    # Without one, the server makes one per request.
    a = request(port, "GET", "/ping")
    b = request(port, "GET", "/ping")
    assert_influx_headers(a)
    assert_influx_headers(b)
    assert a.header("Request-Id") != b.header("Request-Id")


def test_unknown_path_is_a_json_404(http):
    r = request(http.http_port, "GET", "/api/v3/write_lp")
    assert_json_error(r, 404)
    assert_json_error(request(http.http_port, "POST", "/writes?db=x", "m v=1\n"), 404)


# ---------------------------------------------------------------------------------------
# /write: values, acknowledgement, body forms
# ---------------------------------------------------------------------------------------


def test_204_means_every_line_is_committed(http):
    body = "".join(
        f'ack,host=h{i},region=eu\\ west f={i}.5,i={i}i,u={i}u,b={"true" if i % 2 else "F"},'
        f's="say \\"{i}\\" \\\\ ok" {T0_NS + i * 1000}\n'
        for i in range(200)
    )
    assert_204(write(http.http_port, body))
    # No polling: the rows are visible the instant the 204 arrived.
    assert http.query("SELECT count(*), sum(i), sum(u), count(*) FILTER (WHERE b) FROM ack") == [
        (200, 19900, 19900, 100)
    ]
    assert http.query("SELECT _time, host, region, f, i, u, b, s FROM ack WHERE host = 'h7'") == [
        (T0 + datetime.timedelta(microseconds=7), "h7", "eu west", 7.5, 7, 7, True, 'say "7" \\ ok')
    ]


def test_api_v2_write_commits_before_204(http):
    body = "\n".join(f"v2ack,host=a n={i}i {1_700_000_000_000 + i}" for i in range(50))
    r = write_v2(http.http_port, body, bucket="anything", org="my-org", precision="ms")
    assert_204(r)
    assert http.query("SELECT count(*), min(_time), max(n) FROM v2ack") == [(50, T0, 49)]


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_framing_and_gzip(http, encoding, framing):
    table = f"body_{encoding}_{framing.replace('-', '_')}"
    lines = "".join(f"{table},k=v{i % 3} n={i}i {T0_NS + i}\n" for i in range(1000)).encode()
    data = gzipped(lines) if encoding == "gzip" else lines
    headers = {"Content-Encoding": "gzip"} if encoding == "gzip" else {}
    if framing == "chunked":
        # 333-byte chunks: boundaries fall inside lines (and inside the gzip stream).
        r = request(http.http_port, "POST", url("/write", db="db0"), chunks(data, 333), headers,
                    chunked=True)
    else:
        r = request(http.http_port, "POST", url("/write", db="db0"), data, headers)
    assert_204(r)
    assert http.query(f"SELECT count(*), count(DISTINCT n), sum(n) FROM {table}") == [
        (1000, 1000, 499500)
    ]


def test_content_type_is_ignored(http):
    # curl -d sends application/x-www-form-urlencoded: no form parser may touch the body.
    r = write(http.http_port, f"ctype,a=b v=1 {T0_NS}\nctype,a=c v=2 {T0_NS}\n",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_204(r)
    assert http.query("SELECT a, v FROM ctype ORDER BY a") == [("b", 1.0), ("c", 2.0)]


def test_blank_and_comment_lines_are_skipped_and_the_last_line_needs_no_newline(http):
    body = (f"\n# a comment\n   \n\t\nskips v=1 {T0_NS}\n\n# another, with = and ,\n"
            f"  skips v=2 {T0_NS + 1000}\nskips v=3 {T0_NS + 2000}")
    assert_204(write(http.http_port, body))
    assert http.query("SELECT v FROM skips ORDER BY _time") == [(1.0,), (2.0,), (3.0,)]


def test_a_newline_inside_a_quoted_string_belongs_to_the_string(http):
    assert_204(write(http.http_port, f'multi s="first\nsecond",n=1i {T0_NS}\n'))
    assert http.query("SELECT s, n FROM multi") == [("first\nsecond", 1)]


def test_crlf_line_endings(http):
    # InfluxDB 1.x rejects "...<timestamp>\r" (bad timestamp); pg_influx drops a trailing \r
    # (docs/line-protocol.md, deliberate differences): the lines land, without the \r.
    body = f"crlf,host=a v=1 {T0_NS}\r\ncrlf,host=b s=\"x\" {T0_NS + 1000}\r\n"
    r = write(http.http_port, body)
    assert_204(r)
    assert http.query("SELECT host, v, s FROM crlf ORDER BY host") == [
        ("a", 1.0, None), ("b", None, "x")
    ]


def test_empty_body_is_204(http):
    assert_204(write(http.http_port, b""))
    assert_204(write_v2(http.http_port, b"", bucket="b"))
    assert_204(request(http.http_port, "POST", "/write", [], chunked=True))
    assert_204(write(http.http_port, "\n# nothing but a comment\n"))


def test_lines_without_timestamp_share_one_server_time(http):
    body = "".join(f"nots,i=i{i} v={i}\n" for i in range(300))
    before = http.scalar("SELECT now()")
    assert_204(write(http.http_port, body))
    after = http.scalar("SELECT now()")
    rows = http.query("SELECT count(*), count(DISTINCT _time), min(_time) FROM nots")
    assert rows[0][:2] == (300, 1), rows
    t = rows[0][2]
    assert before - datetime.timedelta(seconds=1) <= t <= after + datetime.timedelta(seconds=1)


def test_credentials_are_ignored_with_trust(http):
    port = http.http_port
    r = write(port, f"trusted v=1 {T0_NS}\n", u="root", p="wrong")
    assert_204(r)
    r = write(port, f"trusted v=2 {T0_NS + 1}\n", headers={"Authorization": "Basic cm9vdDpyb290"})
    assert_204(r)
    r = write_v2(port, f"trusted v=3 {T0_NS + 2}", bucket="x",
                 headers={"Authorization": "Token "})
    assert_204(r)
    assert http.scalar("SELECT count(*) FROM trusted") == 3


# ---------------------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------------------

# 2023-11-14 22:00:00 UTC: a whole number of hours, so every unit can express it.
T_HOUR_S = 1_699_999_200
T_HOUR = datetime.datetime(2023, 11, 14, 22, 0, 0, tzinfo=UTC)
NS_PER = {"n": 1, "ns": 1, "u": 1000, "us": 1000, "µ": 1000, "ms": 10**6, "s": 10**9,
          "m": 60 * 10**9, "h": 3600 * 10**9}
NAMES = {"n": "n", "ns": "ns", "u": "u", "us": "us", "µ": "micro", "ms": "ms", "s": "s",
         "m": "m", "h": "h"}


@pytest.mark.parametrize("endpoint", ["v1", "v2"])
@pytest.mark.parametrize("precision", list(NS_PER))
def test_precision_scales_the_timestamp(http, precision, endpoint):
    table = f"prec_{endpoint}_{NAMES[precision]}"
    stamp = T_HOUR_S * 10**9 // NS_PER[precision]
    body = f"{table} v=1 {stamp}\n{table} v=2 {stamp + 1}\n"
    if endpoint == "v1":
        r = write(http.http_port, body, db="x", precision=precision)
    else:
        r = write_v2(http.http_port, body, bucket="x", precision=precision)
    assert_204(r)
    step = datetime.timedelta(microseconds=NS_PER[precision] / 1000)
    # timestamptz keeps microseconds: one ns after T_HOUR is stored as T_HOUR.
    assert http.query(f"SELECT _time FROM {table} ORDER BY v") == [
        (T_HOUR,), (T_HOUR + step if NS_PER[precision] >= 1000 else T_HOUR,)
    ]


@pytest.mark.parametrize("precision", ["x", "sec", "mu", "NS", "1s"])
def test_an_unknown_precision_is_rejected(http, precision):
    table = "prec_bad_" + precision.lower().replace("1", "one")
    r = write(http.http_port, f"{table} v=1 1700000000\n", precision=precision)
    assert_json_error(r, 400, contains="invalid precision")
    r = write_v2(http.http_port, f"{table} v=1 1700000000\n", bucket="x", precision=precision)
    assert_json_error(r, 400, contains="invalid precision")
    assert not exists(http, f"public.{table}")


# ---------------------------------------------------------------------------------------
# Partial writes and bad bodies
# ---------------------------------------------------------------------------------------


def test_partial_write_commits_the_good_lines_and_counts_the_dropped(http):
    http.execute("CREATE TABLE pw (_time timestamptz, host text, v float8)")
    body = (
        f"pw,host=a v=1 {T0_NS}\n"
        f"pw,host=b v= {T0_NS}\n"              # syntax: missing field value
        f'pw,host=c v="abc" {T0_NS + 1000}\n'  # a string that is not a float8
        f"pw,host=d v=4 {T0_NS + 2000}\n"
    )
    r = write(http.http_port, body)
    error = assert_json_error(r, 400, contains="partial write")
    assert "dropped=2" in error, error
    # The valid lines of the request are committed when the answer arrives.
    assert http.query("SELECT host, v FROM pw ORDER BY host") == [("a", 1.0), ("d", 4.0)]


def test_a_refused_tables_reason_names_the_table_not_the_flushs_row_count(http):
    """A table refused whole (here: it has an INSERT rule) rejects its rows in one go; the
    answer quotes the reason for the table.  It used to quote the log line, "N rows for
    ... rejected", whose N counted the rows of every request in the same flush."""
    http.execute("CREATE TABLE ruled_http (_time timestamptz, host text, v float8);"
                 "CREATE TABLE ruled_http_ok (_time timestamptz, host text, v float8);"
                 "CREATE RULE noop AS ON INSERT TO ruled_http DO INSTEAD NOTHING")
    body = "".join(f"ruled_http,host=h{i} v={i} {T0_NS + i}\n" for i in range(3))
    body += f"ruled_http_ok,host=a v=1 {T0_NS}\n"
    error = assert_json_error(write(http.http_port, body), 400, contains="partial write")
    assert "dropped=3" in error, error
    assert 'table "ruled_http": ' in error, error
    assert "rows for" not in error, error
    assert http.row_count("ruled_http_ok") == 1


def test_only_bad_lines_is_400_and_writes_nothing(http):
    r = write(http.http_port, "allbad v=\nallbad\nallbad v=1 12a\n")
    assert_json_error(r, 400)
    assert not exists(http, "public.allbad")


def test_a_body_that_is_not_gzip_is_400(http):
    r = write(http.http_port, b"notgzip v=1\n", headers={"Content-Encoding": "gzip"})
    assert_json_error(r, 400)
    assert not exists(http, "public.notgzip")


# ---------------------------------------------------------------------------------------
# Size limits (influx.http_max_body_size = 1 MiB here)
# ---------------------------------------------------------------------------------------


def body_of(size, table):
    """Exactly `size` bytes of valid lines (the last one padded with a comment line)."""
    line = f"{table} v=1\n".encode()
    body = line * ((size - 64) // len(line))
    pad = size - len(body) - 1
    return body + b"#" * pad + b"\n", (size - 64) // len(line)


def test_a_body_of_exactly_the_limit_is_accepted_whole(http):
    body, lines = body_of(MAX_BODY, "at_limit")
    assert len(body) == MAX_BODY
    assert_204(request(http.http_port, "POST", "/write", chunks(body, 65536), chunked=True))
    assert http.scalar("SELECT count(*) FROM at_limit") == lines


def post_over_the_limit(port, path, body, headers=None, framing="chunked"):
    """A POST whose body the server refuses part way: sent on a raw socket (the server may
    answer and stop reading before the body is all in), then the answer read."""
    h = dict(headers or {})
    if framing == "chunked":
        h["Transfer-Encoding"] = "chunked"
        request_bytes = raw_request("POST", path, chunks(body, 65536), h)
    else:
        request_bytes = raw_request("POST", path, body, h)
    with RawConnection(port) as c:
        c.send_all_or_until_closed(request_bytes)
        return c.read_response()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_one_byte_over_the_limit_is_413_and_writes_nothing(http, framing):
    table = f"over_limit_{framing.replace('-', '_')}"
    body, _ = body_of(MAX_BODY + 1, table)
    r = post_over_the_limit(http.http_port, "/write", body, framing=framing)
    assert_json_error(r, 413)
    assert not exists(http, f"public.{table}")


def test_content_length_over_the_limit_is_413_before_the_body(http):
    # Only the headers are sent: the answer must not wait for a body it will refuse.
    with RawConnection(http.http_port) as c:
        c.send(raw_request("POST", "/write?db=x",
                           headers={"Content-Length": str(MAX_BODY + 1)}))
        r = c.read_response()
    assert_json_error(r, 413)
    with RawConnection(http.http_port) as c:
        c.send(raw_request("POST", "/write?db=x", headers={
            "Content-Length": str(50 * MAX_BODY), "Expect": "100-continue"}))
        r = c.read_response()
    assert_json_error(r, 413)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_gzip_bomb_is_413_and_writes_nothing(http, framing):
    table = f"bomb_{framing.replace('-', '_')}"
    plain = f"{table} v=1 {T0_NS}\n".encode() * (6 * MAX_BODY // 30)
    assert len(plain) > 4 * MAX_BODY
    bomb = gzipped(plain, level=9)
    assert len(bomb) < MAX_BODY // 20
    r = post_over_the_limit(http.http_port, "/write", bomb, {"Content-Encoding": "gzip"},
                            framing=framing)
    assert_json_error(r, 413)
    assert not exists(http, f"public.{table}")
    assert_204(request(http.http_port, "GET", "/ping"))


# ---------------------------------------------------------------------------------------
# Connections: keep-alive, pipelining, HTTP/1.0, Expect: 100-continue
# ---------------------------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(http):
    with Connection(http.http_port) as conn:
        first = conn.socket_id()
        for i in range(15):
            r = conn.request("POST", "/write?db=keep", f"keep,i=r{i} v={i} {T0_NS + i}\n")
            assert_204(r)
            assert http.scalar("SELECT count(*) FROM keep") == i + 1
            assert_204(conn.request("GET", "/ping"))
            r = conn.request("GET", url("/query", q="SHOW DATABASES"))
            assert r.status == 200, r
            assert conn.socket_id() == first, f"the server closed the connection after request {i}"


def test_pipelined_requests_are_answered_in_order(http):
    reqs = [raw_request("POST", f"/write?db=pipe{i}", f"pipe v={i} {T0_NS + i}\n",
                        headers={"X-Request-Id": f"pipe-{i}"}) for i in range(5)]
    reqs.append(raw_request("GET", "/ping", headers={"X-Request-Id": "pipe-ping"}))
    reqs.append(raw_request("GET", "/nowhere", headers={"X-Request-Id": "pipe-404"}))
    reqs.append(raw_request("POST", "/write", f"pipe v=9 {T0_NS + 9}\n",
                            headers={"X-Request-Id": "pipe-last"}))
    with RawConnection(http.http_port) as c:
        c.send(b"".join(reqs))  # all at once, before reading anything
        answers = [c.read_response() for _ in reqs]
    assert [(r.status, r.header("X-Request-Id")) for r in answers] == [
        (204, "pipe-0"), (204, "pipe-1"), (204, "pipe-2"), (204, "pipe-3"), (204, "pipe-4"),
        (204, "pipe-ping"), (404, "pipe-404"), (204, "pipe-last"),
    ]
    assert http.query("SELECT v FROM pipe ORDER BY v") == [(float(v),) for v in (0, 1, 2, 3, 4, 9)]


def test_http_1_0_with_content_length(http):
    with RawConnection(http.http_port) as c:
        c.send(raw_request("POST", "/write?db=old", f"http10,c=x v=1 {T0_NS}\n",
                           version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 204, r
        assert "chunked" not in (r.header("Transfer-Encoding") or ""), r
        assert_influx_headers(r)
        assert http.query("SELECT c, v FROM http10") == [("x", 1.0)]
        # No keep-alive was asked for: the server closes after the answer.
        assert c.closed_by_server(), "the server kept an HTTP/1.0 connection open"


def test_expect_100_continue(http):
    body = "".join(f"expect,n=n{i} v={i} {T0_NS + i}\n" for i in range(100)).encode()
    with RawConnection(http.http_port) as c:
        c.send(raw_request("POST", "/write?db=e", headers={
            "Content-Length": str(len(body)), "Expect": "100-continue"}))
        interim = c.read_response()
        assert interim.status == 100, interim
        c.send(body)
        r = c.read_response()
    assert_204(r)
    assert http.scalar("SELECT count(*) FROM expect") == 100


# ---------------------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------------------


def test_many_concurrent_writers_each_row_exactly_once(http):
    threads_n, requests_n, lines_n = 50, 20, 5
    http.execute("CREATE TABLE conc (_time timestamptz, t text, id int8, n int8)")
    errors = []

    def writer(t):
        try:
            pg = http.connect()
            with Connection(http.http_port) as conn, pg.cursor() as cur:
                for r in range(requests_n):
                    base = (t * requests_n + r) * lines_n
                    body = "".join(
                        f"conc,t=t{t} id={base + k}i,n={r}i {T0_NS + base + k}\n"
                        for k in range(lines_n))
                    resp = conn.request("POST", "/write", body)
                    if resp.status != 204:
                        errors.append(f"thread {t} request {r}: {resp!r}")
                        return
                    # Committed when answered: this thread's rows so far are all visible.
                    cur.execute("SELECT count(*) FROM conc WHERE t = %s", (f"t{t}",))
                    seen = cur.fetchone()[0]
                    if seen != (r + 1) * lines_n:
                        errors.append(f"thread {t} request {r}: {seen} rows visible after 204")
                        return
            pg.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {e!r}")

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not any(w.is_alive() for w in workers), "writers still running after 120 s"
    assert errors == [], errors[:5]
    total = threads_n * requests_n * lines_n
    assert http.query("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM conc") == [
        (total, total, 0, total - 1)
    ]


def listener_threads(c):
    """The listener's pid and its threads (/proc/<pid>/task)."""
    pid = c.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'influx listener'")
    return pid, len(os.listdir(f"/proc/{pid}/task"))


def test_large_gzip_bodies_from_many_connections_each_row_exactly_once(http):
    """Gzip bodies are inflated by the listener's inflate thread while its loop serves the
    other connections: every row of every request once, answers in order on a pipelined
    connection, the same 400 and 413 as bodies inflated at once."""
    pid_before, _ = listener_threads(http)
    threads_n, requests_n, lines_n = 12, 5, 3000
    rng = random.Random(7)
    http.execute("CREATE TABLE gzconc (_time timestamptz, t text, id int8, x float8)")

    def body(t, r):
        base = (t * requests_n + r) * lines_n
        return "".join(f"gzconc,t=t{t} id={base + k}i,x={rng.random()!r} {T0_NS + base + k}\n"
                       for k in range(lines_n)).encode()

    bodies = {(t, r): gzipped(body(t, r)) for t in range(threads_n) for r in range(requests_n)}
    errors = []

    def writer(t):
        try:
            with Connection(http.http_port) as conn:
                for r in range(requests_n):
                    data = bodies[(t, r)]
                    if r % 2 == 1:  # as Telegraf sends: chunked
                        resp = conn.request("POST", "/write", chunks(data, 16384),
                                            {"Content-Encoding": "gzip"}, chunked=True)
                    else:
                        resp = conn.request("POST", "/write", data, {"Content-Encoding": "gzip"})
                    if resp.status != 204:
                        errors.append(f"thread {t} request {r}: {resp!r}")
                        return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {e!r}")

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()

    # Meanwhile, on one connection: two large gzip writes pipelined with other requests.
    piped = [gzipped(body(threads_n, r)) for r in range(2)]
    reqs = [
        raw_request("POST", "/write", piped[0], headers={"Content-Encoding": "gzip",
                                                         "X-Request-Id": "gz-0"}),
        raw_request("GET", "/ping", headers={"X-Request-Id": "gz-ping"}),
        raw_request("POST", "/write", piped[1], headers={"Content-Encoding": "gzip",
                                                         "X-Request-Id": "gz-1"}),
        raw_request("POST", "/write", f"gzconc,t=plain id=-1i,x=0 {T0_NS}\n",
                    headers={"X-Request-Id": "gz-plain"}),
    ]
    with RawConnection(http.http_port, timeout=60) as c:
        c.send(b"".join(reqs))
        answers = [(a.status, a.header("X-Request-Id")) for a in
                   (c.read_response() for _ in reqs)]
    assert answers == [(204, "gz-0"), (204, "gz-ping"), (204, "gz-1"), (204, "gz-plain")]

    # A large corrupt body and a large one over the limit once inflated, as if inflated at once.
    corrupt = bytearray(bodies[(0, 0)])
    corrupt[len(corrupt) // 2] ^= 0x55
    r = write(http.http_port, bytes(corrupt), headers={"Content-Encoding": "gzip"})
    assert_json_error(r, 400, "gzip")
    noise = "".join(f"gzbig v={rng.random()!r}\n" for _ in range(MAX_BODY // 20)).encode()
    assert len(noise) > MAX_BODY and len(gzipped(noise)) < MAX_BODY
    r = post_over_the_limit(http.http_port, "/write", gzipped(noise), {"Content-Encoding": "gzip"},
                            framing="content-length")
    assert_json_error(r, 413)

    for w in workers:
        w.join(120)
    assert not any(w.is_alive() for w in workers), "writers still running after 120 s"
    assert errors == [], errors[:5]
    total = (threads_n * requests_n + 2) * lines_n
    assert http.query("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM gzconc "
                      "WHERE t <> 'plain'") == [(total, total, 0, total - 1)]
    assert http.scalar("SELECT count(*) FROM gzconc WHERE t = 'plain'") == 1
    assert not exists(http, "public.gzbig")
    pid_after, threads = listener_threads(http)
    assert pid_after == pid_before, "the listener restarted"
    assert threads == 2, f"the listener has {threads} threads: its loop and the inflate thread"


# ---------------------------------------------------------------------------------------
# db / bucket → schema
# ---------------------------------------------------------------------------------------


def test_db_names_an_existing_schema_else_the_default(http):
    http.execute("CREATE SCHEMA routed")
    port = http.http_port
    assert_204(write(port, f"route_v1 v=1 {T0_NS}\n", db="routed"))
    assert_204(write(port, f"route_v1_rp v=1 {T0_NS}\n", db="routed", rp="autogen"))
    assert_204(write_v2(port, f"route_v2 v=2 {T0_NS}", bucket="routed"))
    assert_204(write_v2(port, f"route_v2_rp v=3 {T0_NS}", bucket="routed/autogen"))
    assert_204(write(port, f"route_missing v=4 {T0_NS}\n", db="no_such_schema"))
    assert_204(write(port, f"route_none v=5 {T0_NS}\n"))
    assert_204(write(port, f"route_empty v=6 {T0_NS}\n", db="", rp="", consistency=""))
    for table, value in [("route_v1", 1), ("route_v1_rp", 1), ("route_v2", 2), ("route_v2_rp", 3)]:
        assert http.query(f"SELECT v FROM routed.{table}") == [(float(value),)], table
        assert not exists(http, f"public.{table}"), table
    for table, value in [("route_missing", 4), ("route_none", 5), ("route_empty", 6)]:
        assert http.query(f"SELECT v FROM public.{table}") == [(float(value),)], table
    assert not exists(http, "no_such_schema.route_missing")


def test_one_request_for_many_measurements_in_a_schema(http):
    http.execute("CREATE SCHEMA fleet")
    body = "".join(f"fleet_m{i % 5},host=h v={i}i {T0_NS + i}\n" for i in range(500))
    assert_204(write(http.http_port, body, db="fleet"))
    for m in range(5):
        assert http.scalar(f"SELECT count(*) FROM fleet.fleet_m{m}") == 100


# ---------------------------------------------------------------------------------------
# /query
# ---------------------------------------------------------------------------------------


def assert_json_200(r):
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("application/json"), r
    assert_influx_headers(r)
    return r.json()


@pytest.mark.parametrize("form", [
    ("POST", True, 'CREATE DATABASE "telegraf"'),           # Telegraf: form body
    ("POST", False, 'CREATE DATABASE "pyclient"'),          # influxdb-python: q in the URL
    ("GET", False, 'CREATE DATABASE "viaget"'),
    ("POST", False, 'create database "nodeinflux"'),        # node-influx writes lower case
    ("POST", False, "CREATE DATABASE clidb"),               # the influx CLI: unquoted
])
def test_create_database(http, form):
    method, in_body, q = form
    r = query(http.http_port, q, method=method, form=in_body)
    assert assert_json_200(r) == {"results": [{"statement_id": 0}]}


def test_create_database_with_the_clients_extra_parameters(http):
    # The influx CLI: chunked=true&db=&epoch=ns; the Go client: db=&params={}.
    r = request(http.http_port, "POST", url("/query", chunked="true", db="", epoch="ns",
                                            q="CREATE DATABASE cli2"))
    assert assert_json_200(r) == {"results": [{"statement_id": 0}]}
    r = request(http.http_port, "POST", url("/query", q='CREATE DATABASE "go1"', db="",
                                            params="{}"))
    assert assert_json_200(r) == {"results": [{"statement_id": 0}]}


@pytest.mark.parametrize("q", ["SHOW DATABASES", "show databases"])
def test_show_databases_lists_the_default_database(http, q):
    body = assert_json_200(query(http.http_port, q))
    [result] = body["results"]
    assert result["statement_id"] == 0
    [series] = result["series"]
    assert series["name"] == "databases"
    assert series["columns"] == ["name"]
    assert ["public"] in series["values"], series


@pytest.mark.parametrize("q", ["SELECT * FROM cpu", "DROP DATABASE telegraf", "HELLO"])
def test_other_statements_answer_a_json_error(http, q):
    body = assert_json_200(query(http.http_port, q, db="x"))
    error = body["results"][0].get("error")
    assert isinstance(error, str) and error, body


def test_query_without_q_is_an_error(http):
    r = request(http.http_port, "GET", "/query")
    assert r.status in (200, 400), r
    assert (r.header("Content-Type") or "").startswith("application/json"), r
    body = r.json()
    assert body.get("error") or body["results"][0].get("error"), body


# ---------------------------------------------------------------------------------------
# /metrics
# ---------------------------------------------------------------------------------------


def test_metrics_is_prometheus_text(http):
    assert_204(write(http.http_port, "".join(f"metrics_probe v={i}\n" for i in range(10))))
    r = request(http.http_port, "GET", "/metrics")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("text/plain"), r
    text = r.text
    assert "# TYPE " in text, text[:500]
    samples = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert samples, text[:500]
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEaInNf]+( [0-9]+)?$')
    for ln in samples:
        assert sample.match(ln), f"not a Prometheus sample: {ln!r}"
    counters = [ln for ln in text.splitlines()
                if ln.startswith("# TYPE ") and ln.endswith(" counter")]
    assert counters, text[:500]
