"""
test_http_hardening.py — the HTTP endpoint against hostile or broken clients: a body sent
after "Expect: 100-continue" is never run as a request of its own, thousands of pipelined
requests do not grow the listener's stack, a client that never reads its answers does not
keep its connection for ever, and unfinished gzip requests do not pin gigabytes in the
listener.  Each test failed on the first version of the endpoint (a6e8f92).
"""
import gzip
import socket
import time

import pytest

from conftest import wait_for
from http_support import RawConnection, T0_NS, assert_204, raw_request, request, require_http

CLUSTER_CONF = {"influx.tcp_idle_timeout": "2s"}


@pytest.fixture(scope="module")
def http(listener):
    require_http(listener)
    return listener


def listener_pid(c):
    return c.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'influx listener'")


def proc_status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def table_exists(c, name):
    return c.scalar("SELECT to_regclass(%s) IS NOT NULL", (name,))


# ---------------------------------------------------------------------------------------
# Expect: 100-continue: the interim response's Flush() resets the reader (http.cpp
# Flush -> reader.Reset()), so the body is parsed as the next request.
# ---------------------------------------------------------------------------------------


def test_expect_100_continue_with_body_in_the_same_packet_is_written(http):
    body = f"rv_expect v=1i {T0_NS}\n".encode()
    with RawConnection(http.http_port) as c:
        c.send(raw_request("POST", "/write", body, headers={"Expect": "100-continue"}))
        r = c.read_response()
        if r.status == 100:
            r = c.read_response()
    assert_204(r)
    assert http.scalar("SELECT count(*) FROM rv_expect") == 1


def test_expect_100_continue_body_is_never_run_as_a_request(http):
    """Request smuggling: a /ping whose body is a write must not write."""
    inner = raw_request("POST", "/write", f"rv_smuggled v=1i {T0_NS}\n")
    with RawConnection(http.http_port) as c:
        c.send(raw_request("POST", "/ping", inner, headers={"Expect": "100-continue"}))
        r = c.read_response()
        if r.status == 100:
            r = c.read_response()
        assert r.status == 405, r  # the answer to POST /ping, body and all
        # The next answer on the connection is the next request's, not the body's.
        c.send(raw_request("GET", "/ping", headers={"X-Request-Id": "after-the-body"}))
        r = c.read_response()
        assert r.status == 204 and r.header("X-Request-Id") == "after-the-body", r
    assert not table_exists(http, "rv_smuggled"), "the body of a request was executed as a request"


# ---------------------------------------------------------------------------------------
# Pipelined requests recurse: Flush -> ProcessInput -> Dispatch -> Respond -> Flush, one
# level per request in the bytes read (64 KiB / 16 bytes = 4096 levels, ~1.4 KiB each).
# With a 5 MB stack limit the listener dies of SIGSEGV and the cluster reinitializes.
# ---------------------------------------------------------------------------------------


def test_pipelined_requests_do_not_grow_the_listener_stack(http):
    pid = listener_pid(http)
    before = proc_status_kb(pid, "VmStk")
    n = 8192
    s = socket.create_connection(("localhost", http.http_port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    s.sendall(b"M * HTTP/1.1\r\n\r\n" * n)
    s.settimeout(30)
    received = b""
    while received.count(b"HTTP/1.1 404") < n:
        d = s.recv(1 << 20)
        if not d:
            break
        received += d
    s.close()
    assert received.count(b"HTTP/1.1 404") == n, "every pipelined request is answered, in order"
    grown = proc_status_kb(pid, "VmStk") - before
    assert grown < 1024, f"the listener's stack grew by {grown} kB for pipelined requests"


# ---------------------------------------------------------------------------------------
# A client that never reads keeps its connection in the Writing state for ever: no timeout
# covers it (HttpCheckTimeouts closes idle Reading connections only), so
# influx.http_max_connections such clients lock everyone out with one send each.
# ---------------------------------------------------------------------------------------


def open_connections(c):
    """The listener's open HTTP connections, from /metrics (this request's own included)."""
    text = request(c.http_port, "GET", "/metrics").text
    for line in text.splitlines():
        if line.startswith("pg_influx_http_connections "):
            return int(line.split()[1])
    raise AssertionError("no pg_influx_http_connections in /metrics")


def test_connection_of_a_client_that_never_reads_is_closed(http):
    wait_for(lambda: open_connections(http) == 1, timeout=20, what="no other HTTP connection")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("localhost", http.http_port))
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
        wait_for(lambda: open_connections(http) == 2, timeout=10, what="the connection open")
        # Its answers fill the socket buffers and it reads none: after influx.tcp_idle_timeout
        # (2 s here) without progress, the server closes it.
        wait_for(lambda: open_connections(http) == 1, timeout=20,
                 what="the server to close a connection whose client reads nothing")
    finally:
        s.close()


# ---------------------------------------------------------------------------------------
# Memory: unfinished gzip requests hold their inflated bodies.  48 KB on the wire keep
# 25 MB in the listener per connection; the default 1000 connections are 25 GB.
# ---------------------------------------------------------------------------------------


def test_unfinished_gzip_requests_do_not_pin_gigabytes(http):
    pid = listener_pid(http)
    raw = b"rv_bomb,h=a v=1 1\n" * (24_000_000 // 18)
    gz = gzip.compress(raw, 9)
    before = proc_status_kb(pid, "VmRSS")
    socks = []
    for _ in range(20):
        s = socket.create_connection(("localhost", http.http_port))
        s.sendall(b"POST /write HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                  b"Content-Length: %d\r\n\r\n" % (len(gz) + 10) + gz)
        socks.append(s)
    # Every connection ends: refused (503) once the bodies in memory exceed the budget, or
    # closed when it sends nothing more for influx.tcp_idle_timeout (2 s here).
    peak = before

    def all_closed():
        nonlocal peak
        peak = max(peak, proc_status_kb(pid, "VmRSS"))
        for s in socks:
            s.setblocking(False)
            try:
                while True:
                    if not s.recv(1 << 16):
                        break
            except BlockingIOError:
                return False
            except ConnectionResetError:
                pass
        return True

    try:
        wait_for(all_closed, timeout=30, interval=0.2, what="every unfinished request to end")
    finally:
        for s in socks:
            s.close()
    grown = peak - before
    wire = 20 * len(gz) // 1024
    assert grown < 100 * 1024, (
        f"{wire} kB of unfinished gzip requests hold {grown // 1024} MB in the listener")


# ---------------------------------------------------------------------------------------
# The inflate thread: a listener stopped while gzip bodies wait for it ends cleanly (the
# thread is stopped and joined before the listener drains and exits), and the next
# listener serves.  Kept last: it replaces the module's listener.
# ---------------------------------------------------------------------------------------


def test_a_listener_stopped_while_bodies_wait_for_the_inflate_thread_exits_cleanly(http):
    pid = listener_pid(http)
    # 20 MB that fail their CRC only at the end: each keeps the thread busy for two whole
    # inflates (libdeflate, then zlib for the reason), so that bodies queue behind them.
    raw = b"rv_inflate v=1 1\n" * (20_000_000 // 17)
    bomb = bytearray(gzip.compress(raw, 9))
    bomb[-8] ^= 0xFF  # CRC-32
    good = [gzip.compress("".join(f"rv_inflate_ok id={k * 100 + i}i {T0_NS + i}\n"
                                  for i in range(100)).encode()) for k in range(4)]
    bodies = [bytes(bomb)] * 24 + good
    socks = []
    for body in bodies:
        s = socket.create_connection(("localhost", http.http_port))
        s.sendall(b"POST /write HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        socks.append(s)
    http.execute("SELECT pg_terminate_backend(%s)", (pid,))
    new_pid = wait_for(lambda: (lambda p: p if p not in (None, pid) else None)(listener_pid(http)),
                       timeout=60, interval=0.2, what="a new listener")
    assert new_pid != pid
    # What each client got: an answer, or the connection closed without one.
    answered_ok = []
    for k, s in enumerate(socks):
        s.settimeout(10)
        data = b""
        try:
            while True:
                d = s.recv(1 << 16)
                if not d:
                    break
                data += d
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
        if k >= 24 and data.startswith(b"HTTP/1.1 204"):
            answered_ok.append(k - 24)
        assert data == b"" or data.startswith((b"HTTP/1.1 204", b"HTTP/1.1 400",
                                               b"HTTP/1.1 503")), data[:200]
    # A 204 means committed, listener or not.
    for k in answered_ok:
        assert http.scalar("SELECT count(*) FROM rv_inflate_ok WHERE id BETWEEN %s AND %s",
                           (k * 100, k * 100 + 99)) == 100
    assert not table_exists(http, "public.rv_inflate")
    with open(http.logfile, errors="replace") as f:
        log = f.read()
    assert "terminated by signal" not in log and "reinitializing" not in log, \
        "the listener did not exit cleanly"
    wait_for(lambda: request(http.http_port, "GET", "/ping").status == 204, timeout=30,
             what="the new listener to answer")
