"""
http_support.py — the client side of pg_influx's InfluxDB-compatible HTTP endpoint, for
test_http*.py.

Everything here takes a port (and a host), not a cluster, so that the same requests can be
aimed at any InfluxDB-compatible server.

    request()          one request on a fresh connection (http.client), a Response back
    Connection         a keep-alive http.client connection: several requests, one socket
    RawConnection      bytes on a socket and a hand-written response reader: pipelining,
                       HTTP/1.0, Expect: 100-continue, bodies that are never sent
    gzipped()/chunks() request bodies
    assert_json_error  the shape of every error answer (JSON, X-Influxdb-Error, versions)
    require_http()     the `http` fixture's check: the setting exists and /ping answers
    telegraf_*         what Telegraf's outputs.influxdb sends (metrics, request)
    go_client / node_client / influx_cli   the real clients, built or installed on demand

Requests never sleep a fixed time: readiness is polled with conftest.wait_for.
"""

import gzip
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

import pytest

from conftest import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")
GO_DIR = os.path.join(HERE, "go")

# What the endpoint announces itself as (the contract: InfluxDB 1.8.10).
INFLUXDB_VERSION = "1.8.10"

# 2023-11-14 22:13:20 UTC in nanoseconds: the timestamps the tests write.
T0_NS = 1_700_000_000_000_000_000


# ---------------------------------------------------------------------------------------
# Responses and one-shot requests
# ---------------------------------------------------------------------------------------


class Response:
    """A parsed HTTP response: status, headers (case-insensitive lookup), body bytes."""

    def __init__(self, status, reason, headers, body, version="HTTP/1.1"):
        self.status = status
        self.reason = reason
        self.header_list = list(headers)  # [(name, value)] as received
        self.body = body
        self.version = version

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.header_list:
            if k.lower() == name:
                return v
        return default

    def headers_named(self, name):
        name = name.lower()
        return [v for k, v in self.header_list if k.lower() == name]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return (f"<{self.version} {self.status} {self.reason} headers={self.header_list!r} "
                f"body={self.body[:500]!r}>")


def _from_http_client(r):
    body = r.read()
    version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(r.version, str(r.version))
    return Response(r.status, r.reason, r.getheaders(), body, version)


def url(path, **params):
    """path?params, leaving out parameters given as None; values are percent-encoded."""
    items = [(k, v) for k, v in params.items() if v is not None]
    return path + ("?" + urllib.parse.urlencode(items) if items else "")


def request(port, method, path, body=None, headers=None, host="localhost", timeout=30,
            chunked=False):
    """One request on a new connection.  body: bytes/str, or an iterable of bytes sent with
    Transfer-Encoding: chunked when chunked=True."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=dict(headers or {}),
                     encode_chunked=chunked)
        return _from_http_client(conn.getresponse())
    finally:
        conn.close()


def write(port, body, db=None, precision=None, headers=None, **params):
    """POST /write?db=&precision=... with a line-protocol body."""
    return request(port, "POST", url("/write", db=db, precision=precision, **params), body,
                   headers)


def write_v2(port, body, bucket=None, org="pg_influx", precision=None, headers=None):
    """POST /api/v2/write?org=&bucket=&precision=..."""
    return request(port, "POST",
                   url("/api/v2/write", org=org, bucket=bucket, precision=precision), body,
                   headers)


def query(port, q, method="GET", form=False, **params):
    """/query with q in the URL, or (form=True) in a form-encoded POST body as Telegraf sends it."""
    if form:
        body = urllib.parse.urlencode({"q": q})
        return request(port, "POST", url("/query", **params), body,
                       {"Content-Type": "application/x-www-form-urlencoded"})
    return request(port, method, url("/query", q=q, **params))


class Connection:
    """A keep-alive connection (http.client): requests go one after the other on one socket.
    socket_id() tells whether http.client had to reconnect (the server closed)."""

    def __init__(self, port, host="localhost", timeout=30):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method, path, body=None, headers=None, chunked=False):
        if isinstance(body, str):
            body = body.encode()
        self.conn.request(method, path, body=body, headers=dict(headers or {}),
                          encode_chunked=chunked)
        return _from_http_client(self.conn.getresponse())

    def socket_id(self):
        s = self.conn.sock
        return None if s is None else s.getsockname()

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# Raw connections: what http.client cannot do
# ---------------------------------------------------------------------------------------


class RawConnection:
    """A TCP socket with a response reader of its own: several responses can be read from one
    stream in order (pipelining), an interim 100 Continue is visible, and a request can stop
    after its headers."""

    def __init__(self, port, host="localhost", timeout=15):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send_all_or_until_closed(self, data):
        """Sends data; stops quietly if the server has stopped reading and closed (it may answer
        before the whole body is in, e.g. 413)."""
        try:
            self.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            raise AssertionError(
                "the server reset the connection before its answer could be read: a server "
                "that stops reading a request must close gracefully (shutdown, then drain)")
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head=False):
        """The next response on the stream (an interim 1xx response too)."""
        status_line = self._line().decode("latin-1")
        version, status, *reason = status_line.split(" ", 2)
        status = int(status)
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        r = Response(status, reason[0] if reason else "", headers, b"", version)
        if head or status in (204, 304) or 100 <= status < 200:
            return r
        te = (r.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():  # trailers
                        pass
                    break
                body += self._exactly(size)
                self._exactly(2)
            r.body = body
        elif r.header("Content-Length") is not None:
            r.body = self._exactly(int(r.header("Content-Length")))
        else:  # delimited by the server closing the connection
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            r.body, self.buf = self.buf, b""
        return r

    def closed_by_server(self, timeout=10):
        """True once the server has closed its side (reads EOF); False if data came instead."""
        self.sock.settimeout(timeout)
        try:
            if self.buf:
                return False
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def chunked(pieces):
    """pieces framed with Transfer-Encoding: chunked, terminating chunk included."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


def raw_request(method, path, body=b"", headers=None, version="HTTP/1.1", host="localhost"):
    """The bytes of one request with a Content-Length body (unless headers set their own;
    with Transfer-Encoding: chunked, body is a list of pieces)."""
    if isinstance(body, list):
        body = chunked(body)
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": host}
    h.update(headers or {})
    if "Content-Length" not in h and "Transfer-Encoding" not in h and (body or method == "POST"):
        h["Content-Length"] = str(len(body))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return head.encode("latin-1") + b"\r\n" + body


# ---------------------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------------------


def gzipped(data, level=6):
    if isinstance(data, str):
        data = data.encode()
    return gzip.compress(data, compresslevel=level)


def chunks(data, size):
    """data cut into pieces of `size` bytes (for chunked bodies: boundaries fall mid-line)."""
    if isinstance(data, str):
        data = data.encode()
    return [data[i:i + size] for i in range(0, len(data), size)]


# ---------------------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------------------


def assert_influx_headers(r, request_id=None):
    """Headers every response carries."""
    assert r.header("X-Influxdb-Version") == INFLUXDB_VERSION, r
    assert r.header("X-Influxdb-Build"), r
    assert r.header("Request-Id"), r
    assert r.header("X-Request-Id"), r
    if request_id is not None:
        assert r.header("Request-Id") == request_id, r
        assert r.header("X-Request-Id") == request_id, r


def assert_json_error(r, status, contains=None):
    """An error answer: the status, a JSON body {"error","code","message"} with
    Content-Type application/json, and the X-Influxdb-Error header.  Returns the error text."""
    assert r.status == status, r
    assert (r.header("Content-Type") or "").startswith("application/json"), r
    body = r.json()
    for key in ("error", "code", "message"):
        assert isinstance(body.get(key), str) and body[key], (key, body)
    assert r.header("X-Influxdb-Error"), r
    assert_influx_headers(r)
    if contains is not None:
        assert contains in body["error"], body
    return body["error"]


def assert_204(r):
    assert r.status == 204, r
    assert r.body == b"", r
    assert_influx_headers(r)


# ---------------------------------------------------------------------------------------
# The fixture's check
# ---------------------------------------------------------------------------------------


def setting(cluster, name):
    """current_setting(name), or None if the server does not know the setting."""
    return cluster.scalar("SELECT current_setting(%s, true)", (name,))


def require_http(cluster, timeout=20):
    """Fails (does not skip) unless the server knows influx.http_port and answers /ping on it:
    the HTTP endpoint is part of the product."""
    value = setting(cluster, "influx.http_port")
    if value is None:
        pytest.fail("the server does not know the setting influx.http_port: "
                    "the HTTP endpoint is not built into this pg_influx", pytrace=False)
    if int(value) != cluster.http_port:
        pytest.fail(f"influx.http_port is {value}, the test set {cluster.http_port}",
                    pytrace=False)

    def ping():
        return request(cluster.http_port, "GET", "/ping", timeout=5).status == 204

    wait_for(ping, timeout, interval=0.1,
             what=f"GET /ping → 204 on influx.http_port {cluster.http_port}")
    return cluster


# ---------------------------------------------------------------------------------------
# Telegraf outputs.influxdb, replayed
# ---------------------------------------------------------------------------------------

TELEGRAF_USER_AGENT = "Telegraf/1.28.5 Go/1.21.4"
TELEGRAF_MEASUREMENTS = ("cpu", "mem", "disk", "net", "system", "processes", "procstat")


def telegraf_batch(batch, size=5000, t0_ns=T0_NS, prefix="tg_", unsigned=True):
    """`size` lines shaped like Telegraf's inputs (cpu, mem, disk, net, system, processes
    with sparse fields, procstat with escaped strings), serialized as Telegraf does (sorted
    tags, integers `i`, unsigned `u` (influx_uint_support; unsigned=False writes `i` as
    servers without unsigned support need), booleans, ns timestamps), each line with its own
    time.  Returns (body, {table: rows})."""
    lines = []
    counts = {}
    for j in range(size):
        n = batch * size + j
        ts = t0_ns + n * 1000
        kind = TELEGRAF_MEASUREMENTS[j % len(TELEGRAF_MEASUREMENTS)]
        host = f"host-{n % 7}"
        if kind == "cpu":
            line = (f"{prefix}cpu,cpu=cpu{n % 4},host={host} usage_guest=0,"
                    f"usage_idle={90 + (n % 10) / 3:.6f},usage_iowait=0.2506265664160401,"
                    f"usage_system={n % 5}.5,usage_user=3.258145363408521 {ts}")
        elif kind == "mem":
            line = (f"{prefix}mem,host={host} active={1000000 + n}i,available=8123456789i,"
                    f"available_percent=48.6123,free={n}i,used_percent=51.3877 {ts}")
        elif kind == "disk":
            line = (f"{prefix}disk,device=sda{n % 3},fstype=ext4,host={host},mode=rw,"
                    f"path=/var/lib/data\\ {n % 3} free={n * 4096}u,inodes_free=1000u,"
                    f"total=107374182400u,used_percent=12.5 {ts}")
        elif kind == "net":
            line = (f"{prefix}net,host={host},interface=eth{n % 2} bytes_recv={n * 100}u,"
                    f"bytes_sent={n * 50}u,drop_in=0u,err_in=0u,packets_recv={n}u {ts}")
        elif kind == "system":
            line = (f"{prefix}system,host={host} load1=0.{n % 100:02d},n_cpus=4i,n_users={n % 3}i,"
                    f'uptime={n}u,uptime_format="{n % 30} days,  3:{n % 60:02d}" {ts}')
        elif kind == "processes":
            # Sparse: Telegraf leaves out what a platform does not report.
            extra = ",paging=0i,total_threads=321i" if n % 2 else ""
            line = (f"{prefix}processes,host={host} blocked=0i,running={n % 4}i,"
                    f"sleeping=190i,total=200i{extra},zombies=0i {ts}")
        else:
            line = (f"{prefix}procstat,host={host},process_name=python3,user=te\\ st "
                    f'cmdline="/usr/bin/python3 \\"-c\\" C:\\\\temp\\\\{n}",cpu_usage={n % 100}.25,'
                    f"memory_rss={n}i,pid={n}i,running={'true' if n % 2 else 'F'} {ts}")
        if not unsigned:
            line = re.sub(r"=(\d+)u\b", r"=\1i", line)
        lines.append(line)
        counts[prefix + kind] = counts.get(prefix + kind, 0) + 1
    return ("\n".join(lines) + "\n").encode(), counts


def telegraf_headers():
    return {
        "User-Agent": TELEGRAF_USER_AGENT,
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Encoding": "gzip",
        "Accept-Encoding": "gzip",
    }


def telegraf_write(conn, body, db="telegraf"):
    """One Telegraf write on a keep-alive Connection: POST /write?db=, gzip streamed in
    chunks (Transfer-Encoding: chunked, no Content-Length), as outputs.influxdb sends it."""
    return conn.request("POST", url("/write", db=db), body=chunks(gzipped(body), 4096),
                        headers=telegraf_headers(), chunked=True)


def telegraf_create_database(conn, db="telegraf"):
    """Telegraf's start: POST /query, form body q=CREATE DATABASE "<db>"."""
    body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'})
    return conn.request("POST", "/query", body=body, headers={
        "User-Agent": TELEGRAF_USER_AGENT,
        "Content-Type": "application/x-www-form-urlencoded",
    })


# ---------------------------------------------------------------------------------------
# Real clients
# ---------------------------------------------------------------------------------------


def run(cmd, timeout=120, env=None, cwd=None):
    """Runs cmd; returns CompletedProcess (text).  Fails the test if it cannot be started."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=cwd)
    except FileNotFoundError as e:
        pytest.fail(f"{cmd[0]} is not installed ({e}); run test/deps.sh", pytrace=False)


def go_client(tmpdir):
    """Builds go/influx1_client.go against Debian's golang-github-influxdata-influxdb1-client-dev,
    offline: GOPATH mode (GO111MODULE=off) with GOPATH=/usr/share/gocode, where Debian's Go
    library packages put their sources.  Returns the binary's path."""
    src = os.path.join(tmpdir, "influx1_client.go")
    shutil.copy(os.path.join(GO_DIR, "influx1_client.go"), src)
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOFLAGS="",
               GOPROXY="off", CGO_ENABLED="0", HOME=tmpdir,
               GOCACHE=os.path.join(tempfile.gettempdir(), "pg_influx_gocache"))
    binary = os.path.join(tmpdir, "influx1_client")
    r = run(["go", "build", "-o", binary, src], timeout=300, env=env, cwd=tmpdir)
    if r.returncode != 0:
        pytest.fail(f"go build of the influxdb1-client program failed:\n{r.stdout}\n{r.stderr}",
                    pytrace=False)
    return binary


_node_installed = False


def node_client():
    """Installs the pinned npm packages (test/integration/node/install.sh: npm ci) once per
    session; returns the folder that holds the scripts."""
    global _node_installed
    if not _node_installed:
        r = run([os.path.join(NODE_DIR, "install.sh")], timeout=300)
        if r.returncode != 0:
            pytest.fail(f"node/install.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}",
                        pytrace=False)
        _node_installed = True
    return NODE_DIR


def node(script, *args, timeout=120):
    return run(["node", os.path.join(node_client(), script)] + [str(a) for a in args],
               timeout=timeout, cwd=NODE_DIR)


def influx_cli(port, *args, database=None, host="localhost", timeout=60):
    """The influx 1.x CLI (Debian influxdb-client).  It exits 0 even when the server answered
    an error, printing `ERR: ...`: callers check the output too."""
    cmd = ["influx", "-host", host, "-port", str(port)]
    if database:
        cmd += ["-database", database]
    env = dict(os.environ, HOME=tempfile.gettempdir())  # it keeps a history file there
    return run(cmd + list(args), timeout=timeout, env=env)
