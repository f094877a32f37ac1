"""
conftest.py — fixtures for pg_influx's end-to-end tests.

Run with Debian's interpreter, so that python3-influxdb and python3-psycopg2 are
importable:   /usr/bin/python3 -m pytest test/integration

Each test module gets its own throw-away PostgreSQL cluster (initdb into a temporary
directory, free ports chosen at start, pg_influx preloaded), run as the `postgres` user
when the tests run as root.  A module can add or override settings with a module-level

    CLUSTER_CONF = {"influx.max_line_length": "1kB"}

(a value of None leaves that setting out, so that its default applies)

Fixtures, from the least to the most that must work:

    cluster   the server is up (library preloaded); nothing else is assumed
    ext       ... and CREATE EXTENSION pg_influx succeeded
    listener  ... and influx.listener_status() reports the listener running
    db        a fresh autocommit psycopg2 connection to the cluster (per test)

Helpers: wait_for() polls a condition with a timeout (tests never sleep a fixed time);
send_tcp()/TcpStream and send_udp() send raw line protocol; influx_udp_client() returns the
real influxdb.InfluxDBClient pointed at the cluster's UDP port.

Logs: each cluster's server log is copied to $PG_INFLUX_TEST_LOGDIR (if set) when the
module ends, and its tail is printed when a test fails.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg2
import pytest

PG_USER = "postgres"
FLUSH_INTERVAL_MS = 50

DEFAULT_CONF = {
    "listen_addresses": "'localhost'",
    "shared_preload_libraries": "'pg_influx'",
    "max_worker_processes": "16",
    "fsync": "off",
    "synchronous_commit": "off",
    "log_line_prefix": "'%m [%p] %b '",
    "influx.database": "'postgres'",
    # Most modules test ingestion, not identity: they write as the test superuser into
    # public (an administrator's explicit choice).  test_security.py runs on the defaults
    # (CLUSTER_CONF sets these three to None).
    "influx.role": "'postgres'",
    "influx.allow_superuser": "on",
    "influx.schema": "'public'",
    "influx.listen_addresses": "'localhost'",
    "influx.workers": "2",
    "influx.flush_interval": str(FLUSH_INTERVAL_MS),
    "influx.restart_delay": "1",
}


def pg_bindir():
    try:
        return subprocess.check_output(["pg_config", "--bindir"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "/usr/lib/postgresql/15/bin"


# ---------------------------------------------------------------------------------------
# Polling
# ---------------------------------------------------------------------------------------


def wait_for(fn, timeout=10.0, interval=0.05, what=None):
    """Calls fn() until it returns a truthy value and returns that value.

    Exceptions raised by fn() count as "not yet" (e.g. a table that does not exist yet).
    After `timeout` seconds, fails the test with the last value or exception seen.
    """
    deadline = time.monotonic() + timeout
    last, error = None, None
    while True:
        try:
            last = fn()
            error = None
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            error = e
        if time.monotonic() >= deadline:
            desc = what or getattr(fn, "__name__", "condition")
            detail = f"last exception: {error!r}" if error is not None else f"last value: {last!r}"
            pytest.fail(f"timed out after {timeout}s waiting for {desc} ({detail})")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------
# Ports and sockets
# ---------------------------------------------------------------------------------------

_handed_out = set()


def free_port(kind=socket.SOCK_STREAM):
    """A port that is free right now for `kind` (and for TCP and UDP both, if possible)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def send_tcp(port, data, host="127.0.0.1"):
    """Sends data (str or bytes) over one TCP connection, then closes it cleanly."""
    if isinstance(data, str):
        data = data.encode()
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(data)
        _close_gracefully(s)


def _close_gracefully(s, timeout=5):
    """Half-closes s and waits (briefly) for the server to close its side after reading."""
    try:
        s.shutdown(socket.SHUT_WR)
        s.settimeout(timeout)
        while s.recv(4096):
            pass
    except OSError:
        pass  # includes socket.timeout: the data was sent all the same


class TcpStream:
    """A TCP connection kept open across several sends (for split-line tests)."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def close(self):
        _close_gracefully(self.sock)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def reset_peak_memory(pid):
    """Starts a new peak (VmHWM) for process pid, so that a test measures its own episode
    and not what earlier tests of the module made the process hold."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def peak_memory_kb(pid):
    """Peak resident memory (VmHWM) of process pid since it started or was reset, in kB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))


def send_udp(port, data, host="127.0.0.1"):
    """Sends data (str or bytes) as one UDP datagram."""
    if isinstance(data, str):
        data = data.encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, (host, port))


# ---------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------


class Cluster:
    """A throw-away PostgreSQL cluster with pg_influx preloaded."""

    def __init__(self, name, conf=None):
        self.name = name
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix=f"pg_influx_it_{name}_")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.conf = dict(DEFAULT_CONF)
        self.conf.update(
            {
                "port": str(self.port),
                "unix_socket_directories": f"'{self.dir}'",
                "influx.udp_port": str(self.udp_port),
                "influx.tcp_port": str(self.tcp_port),
                "influx.http_port": str(self.http_port),
            }
        )
        self.conf.update(conf or {})
        # A setting a module sets to None is left out: the server's default applies.
        self.conf = {k: v for k, v in self.conf.items() if v is not None}
        # Ports a module's CLUSTER_CONF overrides are the ones in force.
        self.udp_port = int(self.conf["influx.udp_port"])
        self.tcp_port = int(self.conf["influx.tcp_port"])
        self.http_port = int(self.conf.get("influx.http_port") or 8086)  # None: the default
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam(PG_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.running = False

    # -- processes -----------------------------------------------------------------------

    def _run(self, *args, check=True):
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", PG_USER, "--"] + cmd
        r = subprocess.run(cmd, cwd="/", capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n{self.log_tail()}"
            )
        return r

    def init(self):
        self._run(
            os.path.join(self.bindir, "initdb"),
            "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale",
        )
        lines = [f"{k} = {v}" for k, v in self.conf.items()]
        conf_text = "\n# ---- pg_influx integration tests ----\n" + "\n".join(lines) + "\n"
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(conf_text)

    def start(self):
        self._run(
            os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.logfile,
            "-w", "-t", "60", "start",
        )
        self.running = True

    def stop(self, mode="fast"):
        if not self.running:
            return
        r = self._run(
            os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60",
            "stop", check=False,
        )
        if r.returncode != 0:
            self._run(
                os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w",
                "stop", check=False,
            )
        self.running = False

    def reload(self):
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "reload")

    def destroy(self):
        self.stop()
        logdir = os.environ.get("PG_INFLUX_TEST_LOGDIR")
        if logdir and os.path.exists(self.logfile):
            os.makedirs(logdir, exist_ok=True)
            shutil.copy(self.logfile, os.path.join(logdir, f"{self.name}.log"))
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines=40):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # -- SQL -----------------------------------------------------------------------------

    def connect(self, dbname="postgres", user="postgres"):
        conn = psycopg2.connect(host="localhost", port=self.port, user=user, dbname=dbname)
        conn.autocommit = True
        return conn

    def query(self, sql, params=None):
        """All rows of one statement, run in its own transaction on a new connection."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def scalar(self, sql, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def execute(self, sql, params=None):
        self.query(sql, params)

    def row_count(self, table):
        """Rows in table, or 0 if it does not exist (yet)."""
        if self.scalar("SELECT to_regclass(%s) IS NOT NULL", (table,)):
            return self.scalar(f"SELECT count(*) FROM {table}")
        return 0

    def listener_status(self):
        """influx.listener_status() as a dict."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT * FROM influx.listener_status()")
                row = cur.fetchone()
                return dict(zip([d[0] for d in cur.description], row)) if row else None
        finally:
            conn.close()

    def stats(self):
        """influx.stats() rows as dicts."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT * FROM influx.stats()")
                names = [d[0] for d in cur.description]
                return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            conn.close()

    def stat_total(self, counter, kind=None):
        """Sum of one influx.stats() counter over all rows (of one kind, if given)."""
        return sum(r[counter] or 0 for r in self.stats() if kind is None or r["kind"] == kind)

    def backend_pids(self, backend_type):
        return sorted(
            r[0]
            for r in self.query(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = %s", (backend_type,)
            )
        )

    def wait_listener_running(self, timeout=30):
        def running():
            s = self.listener_status()
            return s if s and (s.get("status") or "").startswith("running") else None

        return wait_for(running, timeout, what="influx.listener_status() to report running")


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether the test failed (item.rep_call.failed).
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    # A failing test's report carries the end of its cluster's server log.
    if rep.when == "call" and rep.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Cluster):
                rep.sections.append((f"server log tail ({value.logfile})", value.log_tail(60)))
                break


@pytest.fixture(scope="module")
def cluster(request):
    """The module's cluster: initialised and started, library preloaded."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    c = Cluster(name, getattr(request.module, "CLUSTER_CONF", None))
    try:
        c.init()
        c.start()
        yield c
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def ext(cluster):
    """The cluster, with CREATE EXTENSION pg_influx done in influx.database."""
    error = None
    try:
        cluster.execute("CREATE EXTENSION IF NOT EXISTS pg_influx")
    except psycopg2.Error as e:
        error = str(e).strip()
    if error:
        pytest.fail(f"CREATE EXTENSION pg_influx failed: {error}", pytrace=False)
    return cluster


@pytest.fixture(scope="module")
def listener(ext):
    """The cluster, with the influx listener reported running."""
    ext.wait_listener_running()
    return ext


@pytest.fixture
def db(cluster, request):
    """A fresh autocommit connection; prints the server log tail if the test fails."""
    conn = cluster.connect()
    yield conn
    conn.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"---- last lines of {cluster.logfile} ----\n{cluster.log_tail()}")


@pytest.fixture
def influx_udp_client(listener):
    """The real InfluxDB client (python3-influxdb), sending over UDP to the cluster."""
    from influxdb import InfluxDBClient

    client = InfluxDBClient(host="localhost", use_udp=True, udp_port=listener.udp_port)
    yield client
    client.close()


# ---------------------------------------------------------------------------------------
# A gate: rows of table `gate` wait inside a worker's flush until the test opens it
# ---------------------------------------------------------------------------------------

GATE_LOCK = 77001


def create_gate_function(c, name, returns):
    """A plpgsql function `name` (a trigger or an event trigger, by `returns`) that waits
    at the gate, then lets its statement go on."""
    result = "RETURN NULL;" if returns == "trigger" else ""
    c.execute("""
        CREATE OR REPLACE FUNCTION %s() RETURNS %s LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(%d);
            %s
        END $$""" % (name, returns, GATE_LOCK, result))


@pytest.fixture
def gate(listener):
    """A table `gate` whose rows wait, inside the worker's flush, until the test opens the
    gate: yields (close, open) functions; the gate starts open."""
    c = listener
    c.execute("CREATE TABLE IF NOT EXISTS gate (_time timestamptz, f double precision)")
    create_gate_function(c, "gate_wait", "trigger")
    c.execute("CREATE OR REPLACE TRIGGER gate_wait AFTER INSERT ON gate "
              "FOR EACH ROW EXECUTE FUNCTION gate_wait()")
    holder = c.connect()

    def close():
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (GATE_LOCK,))

    def open_():
        holder.cursor().execute("SELECT pg_advisory_unlock_all()")

    yield close, open_
    holder.close()


def workers_at_the_gate(c):
    """Insertion workers waiting on an advisory lock: the gate, or a table name another
    worker is making (pg_influx's own name locks show as advisory too)."""
    return c.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'influx worker' "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")


def two_batches_through_the_gate(cluster, gate, first, second):
    """Sends two batches over TCP while the gate is closed, each to its own worker (chunks go
    round robin), waits until both workers are held (at the gate, or one waiting for the
    other), then opens the gate."""
    close, open_ = gate
    close()
    try:
        send_tcp(cluster.tcp_port, first)
        wait_for(lambda: workers_at_the_gate(cluster) == 1, 15, what="the first worker held")
        send_tcp(cluster.tcp_port, second)
        wait_for(lambda: workers_at_the_gate(cluster) == 2, 15, what="both workers held")
    finally:
        open_()


def log_size(cluster):
    """The server log's current size: pass it to log_since() later."""
    return os.path.getsize(cluster.logfile)


def log_since(cluster, offset):
    """What the server logged after log_size() returned offset."""
    with open(cluster.logfile, errors="replace") as f:
        f.seek(offset)
        return f.read()
