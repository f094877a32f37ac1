#!/usr/bin/python3
"""pg_influx benchmark runner: pg_influx vs COPY on the same rows, in the same run, on the
same throw-away cluster.

    sudo /usr/bin/python3 bench/run.py                 # default: 1M cpu lines, ~1-2 minutes
    sudo /usr/bin/python3 bench/run.py --big           # 5M lines
    sudo /usr/bin/python3 bench/run.py --sweep         # + rows/s vs workers and batch size, PNG

What it does (see bench/README.md for what every number means):
  1. builds bench/loadgen, initdb's a temporary cluster as the postgres user (pg_influx in
     shared_preload_libraries, free ports: PostgreSQL in 5450-5459, influx TCP/UDP in
     38000-38999), and generates the dataset once: line protocol, CSV and binary COPY files of
     exactly the same rows;
  2. per variant (typed table, _tags/_fields jsonb table, typed table + btree (host, _time),
     optionally high-cardinality and mixed measurements): loads the rows with psql's
     `\\copy ... (FORMAT csv)`, with server-side `COPY ... FROM '<file>' (FORMAT binary)`, then
     sends the same rows through pg_influx over TCP into a table with the same columns and
     waits (bounded) until count(*) shows all of them committed; checks that pg_influx stored
     the same rows as COPY (EXCEPT ALL);
  3. UDP at a few paced rates: lines sent vs rows inserted vs influx.stats() datagrams_dropped;
  4. CPU seconds per million rows of the influx listener and workers (/proc/<pid>/stat) and
     their peak memory (VmHWM);
  5. writes a markdown report to stdout and bench/results/<timestamp>.md (+ a PNG with --sweep).

Only Debian's python3 standard library and psql are needed (python3-psycopg2 is not
required); matplotlib (python3-matplotlib) only for --sweep.
"""

import argparse
import datetime
import hashlib
from statistics import median
import os
import pwd
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
LOADGEN = os.path.join(BENCH_DIR, "loadgen")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pg_bindir():
    try:
        return subprocess.check_output(["pg_config", "--bindir"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "/usr/lib/postgresql/15/bin"


BINDIR = pg_bindir()


def run(cmd, check=True, timeout=600, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def as_postgres(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


# ---------------------------------------------------------------------------------------------
# psql as a coprocess: one session, queries answered in order, bounded waits
# ---------------------------------------------------------------------------------------------

class SqlError(Exception):
    pass


class Psql:
    SEP = "\x1f"

    def __init__(self, sockdir, port, dbname="postgres"):
        self.args = [os.path.join(BINDIR, "psql"), "-X", "-q", "-A", "-t", "-F", self.SEP,
                     "-h", sockdir, "-p", str(port), "-U", "postgres", "-d", dbname]
        self.p = subprocess.Popen(self.args + ["-v", "ON_ERROR_STOP=0"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  bufsize=1, cwd="/")
        self.lines = queue.Queue()
        self.n = 0
        threading.Thread(target=self._reader, daemon=True).start()
        self.backend_pid = int(self.value("SELECT pg_backend_pid()"))

    def _reader(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def query(self, sql, timeout=600):
        self.n += 1
        marker = f"__pg_influx_bench_{self.n}__"
        sql = sql.rstrip()
        if not sql.startswith("\\"):  # meta-commands (\copy) take the whole line as is
            sql = sql.rstrip(";") + ";"
        self.p.stdin.write(sql + "\n\\echo " + marker + "\n")
        self.p.stdin.flush()
        rows, errors = [], []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SqlError(f"timeout after {timeout}s: {sql[:80]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise SqlError("psql exited")
            if line == marker:
                break
            if re.match(r"^(psql:.*)?(ERROR|FATAL|PANIC):", line) or line.startswith("psql:"):
                errors.append(line)
            elif line.startswith(("DETAIL:", "HINT:", "CONTEXT:", "LINE ", "WARNING:", "NOTICE:")) \
                    or line.strip().startswith("^"):
                if errors:
                    errors.append(line)
            else:
                rows.append(line.split(self.SEP))
        if errors:
            raise SqlError("; ".join(errors))
        return rows

    def value(self, sql, timeout=600):
        rows = self.query(sql, timeout)
        return rows[0][0] if rows and rows[0] else None

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()


# ---------------------------------------------------------------------------------------------
# /proc accounting
# ---------------------------------------------------------------------------------------------

def add_looped_load_options(p, lines):
    """The cluster and file options of the scripts that send one cpu file: latency.py and soak.py
    (which loop it), idempotent.py (once per load)."""
    p.add_argument("--workers", type=int, default=2, help="influx.workers (default 2)")
    p.add_argument("--batch-size", type=int, default=10000, help="influx.batch_size (default 10000)")
    p.add_argument("--lines", type=int, default=lines, help=f"cpu lines in the file (default {lines:,})")
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--keep", action="store_true", help="keep the cluster directory")
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--results-dir", default=os.path.join(BENCH_DIR, "results"))


def repo_revision():
    """The repository's short commit, '(+ uncommitted changes)' if tracked files changed."""
    try:
        rev = run(["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
        dirty = run(["git", "-C", REPO_DIR, "status", "--porcelain", "--untracked-files=no"],
                    check=False).stdout.strip()
        return (rev or "?") + (" (+ uncommitted changes)" if dirty else "")
    except Exception:
        return "?"


def loaded_library(pids):
    """Path of the pg_influx.so the first of these processes has mapped, and the first bytes of
    its sha256: the build that ran, whatever the repository holds."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    if line.rstrip().endswith("pg_influx.so"):
                        path = line.split()[-1]
                        with open(path, "rb") as so:
                            return path, hashlib.sha256(so.read()).hexdigest()[:12]
        except OSError:
            continue
    return None, None


def write_report(path, text, png=None, caption=""):
    """The markdown report to `path` (with the image `png` below it, if there is one) and to
    stdout."""
    if png:
        text += f"\n![{caption}]({os.path.basename(png)})\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {path}" + (f" and {png}" if png else ""))


def machine_line():
    """'N CPUs (model), M GiB RAM, kernel K' for the reports."""
    with open("/proc/meminfo") as f:
        memtotal = int(f.readline().split()[1]) / 1048576
    cpu_model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu_model}), {memtotal:.0f} GiB RAM, kernel {os.uname().release}"


def proc_cpu(pid):
    """utime+stime of a process in seconds, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    """(busy, total) CPU seconds of the whole machine so far, summed over all CPUs."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals[:8])     # guest time is already counted in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def machine_delta(m0):
    """Busy CPU seconds since m0 (from machine_cpu()) and the busy share of all CPUs."""
    b1, t1 = machine_cpu()
    busy, total = b1 - m0[0], t1 - m0[1]
    return busy, (busy / total if total > 0 else None)


def proc_status_kib(pid, *keys):
    """The given /proc/<pid>/status fields in KiB, in order (None for missing ones)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return tuple(out.get(k) for k in keys)


def proc_mem(pid):
    """(VmHWM, RssAnon) in KiB."""
    return proc_status_kib(pid, "VmHWM", "RssAnon")


def kernel_udp_drops():
    """(UDP RcvbufErrors, softnet backlog drops) of the whole host: drops pg_influx cannot see
    before a datagram reaches its socket are visible here."""
    rcvbuf = softnet = 0
    try:
        with open("/proc/net/snmp") as f:
            udp = [line.split() for line in f if line.startswith("Udp:")]
        rcvbuf = int(udp[1][udp[0].index("RcvbufErrors")])
        with open("/proc/net/softnet_stat") as f:
            softnet = sum(int(line.split()[1], 16) for line in f)
    except (OSError, ValueError, IndexError):
        pass
    return rcvbuf, softnet


def fmt_kib(k):
    if k is None:
        return "n/a"
    return f"{k / 1024:.0f} MiB" if k >= 10240 else f"{k} KiB"


def fmt_rate(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt_num(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# Ports and cluster
# ---------------------------------------------------------------------------------------------

def port_free(port, kinds=("tcp",)):
    for kind in kinds:
        for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
            try:
                s.bind((addr, port))
            except OSError as e:
                if fam == socket.AF_INET6 and e.errno in (97, 99):  # no IPv6 on this host
                    continue
                return False
            finally:
                s.close()
    return True


def pick_port(candidates, kinds, exclude=()):
    for p in candidates:
        if p not in exclude and port_free(p, kinds):
            return p
    raise SystemExit(f"no free port in {candidates[0]}-{candidates[-1]}")


class Cluster:
    # PostgreSQL's port and the range influx's TCP and UDP ports are picked from.
    PG_PORTS = range(5450, 5460)
    INFLUX_PORTS = range(38000, 39000)

    def __init__(self, args, prefix="pg_influx_bench."):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix=prefix, dir=args.tmpdir)
        os.chmod(self.dir, 0o755)
        pw = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if pw:
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "server.log")
        self.files = os.path.join(self.dir, "files")
        os.makedirs(self.files)
        os.chmod(self.files, 0o755)
        self.port = pick_port(list(self.PG_PORTS), ("tcp",))
        import random
        cands = random.Random(os.getpid()).sample(list(self.INFLUX_PORTS), len(self.INFLUX_PORTS))
        self.tcp_port = pick_port(cands, ("tcp",))
        self.udp_port = pick_port(cands, ("udp",), exclude=(self.tcp_port,))
        self.http_port = pick_port(cands, ("tcp",), exclude=(self.tcp_port, self.udp_port))
        self.started = False

    def init(self, settings):
        log(f"initdb in {self.data}")
        run(as_postgres([os.path.join(BINDIR, "initdb"), "-D", self.data, "-A", "trust",
                         "-U", "postgres", "--no-locale", "-E", "UTF8", "--no-sync"]), cwd="/")
        conf = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.dir}'",
            "shared_preload_libraries": "'pg_influx'",
            "max_worker_processes": 40,
            "shared_buffers": f"'{self.args.shared_buffers}'",
            "max_wal_size": "'8GB'",
            "checkpoint_timeout": "'30min'",
            # No VACUUM of the table one loader just filled during the next loader's load:
            # on 2 cores it would take the core COPY leaves idle, but one pg_influx uses.
            # (latency.py and soak.py keep it on: they run one load, as a server would.)
            "autovacuum": "on" if getattr(self.args, "autovacuum", False) else "off",
            "log_min_messages": "warning",
            "influx.database": "'postgres'",
            "influx.listen_addresses": "'127.0.0.1'",
            "influx.tcp_port": self.tcp_port,
            "influx.udp_port": self.udp_port,
            "influx.http_port": self.http_port,
            "influx.workers": self.args.workers,
            "influx.batch_size": self.args.batch_size,
            "influx.schema": "'influx_typed'",
        }
        if self.args.no_influx:  # COPY part only: the server does not even load pg_influx
            conf = {k: v for k, v in conf.items()
                    if not k.startswith("influx.") and k != "shared_preload_libraries"}
        conf.update(settings)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# pg_influx bench\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self.conf = conf

    def start(self):
        log(f"starting PostgreSQL on port {self.port} (influx tcp {self.tcp_port}, udp {self.udp_port})")
        r = run(as_postgres([os.path.join(BINDIR, "pg_ctl"), "-D", self.data, "-l", self.logfile,
                             "-w", "-t", "60", "start"]), cwd="/", timeout=90, check=False)
        if r.returncode != 0:
            raise SystemExit(f"pg_ctl start failed: {r.stdout}{r.stderr}\n{self.log_tail()}")
        self.started = True

    def stop(self):
        if self.started:
            run(as_postgres([os.path.join(BINDIR, "pg_ctl"), "-D", self.data, "-m", "fast",
                             "-w", "-t", "60", "stop"]), cwd="/", check=False, timeout=90)
            self.started = False

    def finish(self, sessions=(), keep=False):
        """The end of a run, also after an error: closes the psql sessions, stops the server and
        removes the cluster directory (keep: leaves it, and says where)."""
        for s in sessions:
            if s:
                s.close()
        self.stop()
        if keep:
            log(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=30):
        try:
            with open(self.logfile) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def psql_cmd(self):
        return [os.path.join(BINDIR, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.dir,
                "-p", str(self.port), "-U", "postgres", "-d", "postgres"]


# ---------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------

class Variant:
    def __init__(self, name, dataset, shape, index, title):
        self.name, self.dataset, self.shape, self.index, self.title = name, dataset, shape, index, title
        self.copy_schema = f"copy_{name}"
        self.influx_schema = f"influx_{name}"
        self.tables = []  # measurement names


VARIANTS = {
    "typed": Variant("typed", "cpu", "typed", False, "typed table"),
    "jsonb": Variant("jsonb", "cpu", "jsonb", False, "_tags/_fields jsonb table"),
    "indexed": Variant("indexed", "cpu", "typed", True, "typed table + btree (host, _time)"),
    "hc": Variant("hc", "cpu-hc", "typed", True, "high cardinality (100k hosts), typed + btree"),
    "mixed": Variant("mixed", "mixed", "typed", False, "mixed: 6 measurements, typed tables"),
}


def loadgen(args_list, timeout=900):
    r = run([LOADGEN] + [str(a) for a in args_list], timeout=timeout)
    m = re.search(r"^loadgen: (.*)$", r.stdout, re.M)
    if not m:
        raise RuntimeError(f"loadgen printed no result: {r.stdout} {r.stderr}")
    return dict(kv.split("=", 1) for kv in m.group(1).split())



def writer_schema(db, schema, ddl=None):
    """Creates `schema` (if missing) and the tables of `ddl` in it (its "public." names
    renamed) as the role the workers write as (influx.role): the tables pg_influx writes are
    then the writer's own, as the ones it creates are (docs/security.md)."""
    writer = db.value("SELECT current_setting('influx.role')")
    db.query(f'CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION "{writer}"')
    if ddl:
        db.query(f'SET ROLE "{writer}"')
        try:
            db.query(ddl.replace("public.", schema + "."))
        finally:
            db.query("RESET ROLE")

class Bench:
    def __init__(self, args):
        self.args = args
        self.results = []       # throughput rows
        self.proc_rows = []     # listener/worker CPU and memory
        self.udp_rows = []
        self.sweep_rows = []
        self.notes = []
        self.files = {}
        self.influx_ok = None   # None: not tried, False: failed (skip further influx runs)
        self.extra_counters = []  # more influx.stats() columns influx_counters() sums (by name)
        self.load_before = os.getloadavg()[0]

    # ----- setup -----

    def gen_files(self, c, variants):
        a = self.args
        for v in variants:
            common = ["--dataset", v.dataset, "--lines", a.lines, "--seed", a.seed, "--threads", 2]
            lp = os.path.join(c.files, f"{v.dataset}.lp")
            if lp not in self.files.values():
                log(f"generating {a.lines} lines of {v.dataset} line protocol")
                loadgen(["--mode", "lp", "--out", lp] + common)
            self.files[(v.name, "lp")] = lp
            pattern = "%m" if v.dataset == "mixed" else ""
            for mode, ext in (("csv", "csv"), ("binary", "bin")):
                path = os.path.join(c.files, f"{v.dataset}_{v.shape}{'_' + pattern if pattern else ''}.{ext}")
                key = (v.dataset, v.shape, mode)
                if key not in self.files:
                    log(f"generating {v.dataset} {v.shape} {mode} COPY file")
                    loadgen(["--mode", mode, "--shape", v.shape, "--out", path] + common)
                    self.files[key] = path
                self.files[(v.name, mode)] = self.files[key]
            ddl = run([LOADGEN, "--mode", "ddl", "--dataset", v.dataset, "--shape", v.shape]
                      + (["--index"] if v.index else [])).stdout
            v.tables = re.findall(r"CREATE TABLE public\.(\w+)", ddl)
            v.ddl = ddl
        for root, _, names in os.walk(c.files):
            for n in names:
                os.chmod(os.path.join(root, n), 0o644)

    def create_tables(self, db, variants):
        for v in variants:
            db.query(f"DROP SCHEMA IF EXISTS {v.copy_schema} CASCADE")
            db.query(f"CREATE SCHEMA {v.copy_schema}")
            db.query(v.ddl.replace("public.", v.copy_schema + "."))
            if self.args.no_influx:
                continue
            db.query(f"DROP SCHEMA IF EXISTS {v.influx_schema} CASCADE")
            writer_schema(db, v.influx_schema, v.ddl)

    def table_file(self, v, mode, table):
        path = self.files[(v.name, mode)]
        return path.replace("%m", table)

    def count(self, db, schema, tables):
        return sum(int(db.value(f"SELECT count(*) FROM {schema}.{t}")) for t in tables)

    def truncate(self, db, schema, tables):
        db.query("TRUNCATE " + ", ".join(f"{schema}.{t}" for t in tables))

    # ----- COPY -----

    def copy_load(self, db, v, statement, method, record=True, **extra):
        """One COPY load of every table of variant v, timed, with the backend's CPU time."""
        self.truncate(db, v.copy_schema, v.tables)
        db.query("CHECKPOINT")
        cpu0 = proc_cpu(db.backend_pid)
        m0 = machine_cpu()
        t0 = time.monotonic()
        db.query("BEGIN")
        for t in v.tables:
            db.query(statement(t), timeout=self.args.timeout)
        db.query("COMMIT")
        secs = time.monotonic() - t0
        mcpu, busy = machine_delta(m0)
        cpu = proc_cpu(db.backend_pid) - cpu0
        rows = self.count(db, v.copy_schema, v.tables)
        if record:
            self.results.append(dict(variant=v, method=method, rows=rows, secs=secs, cpu=cpu,
                                     mcpu=mcpu, busy=busy, **extra))
        return rows, secs

    def copy_csv(self, c, db, v, record=True):
        # psql's \copy in the benchmark's own psql session: psql reads the file and streams it
        # (COPY FROM STDIN), so the server backend's CPU time is known.
        rows, secs = self.copy_load(
            db, v, lambda t: f"\\copy {v.copy_schema}.{t} FROM '{self.table_file(v, 'csv', t)}' (FORMAT csv)",
            "CSV `\\copy` (psql)", record=record)
        log(f"{v.name}: CSV \\copy {rows} rows in {secs:.2f}s = {rows / secs:,.0f} rows/s")

    def copy_binary(self, db, v, record=True):
        rows, secs = self.copy_load(
            db, v, lambda t: f"COPY {v.copy_schema}.{t} FROM '{self.table_file(v, 'binary', t)}' (FORMAT binary)",
            "`COPY FROM file (FORMAT binary)`", record=record, is_copy_binary=True)
        log(f"{v.name}: COPY binary {rows} rows in {secs:.2f}s = {rows / secs:,.0f} rows/s")
        return rows

    # ----- pg_influx -----

    def influx_procs(self, db):
        rows = db.query("SELECT pid, backend_type FROM pg_stat_activity "
                        "WHERE backend_type IN ('influx listener', 'influx worker')")
        return {int(pid): kind for pid, kind in rows}

    def influx_counters(self, db):
        """Totals over running and exited processes (rows with pid NULL included), and those of
        the columns named in self.extra_counters under their own names."""
        try:
            r = db.query("SELECT coalesce(sum(rows_inserted),0), "
                         "coalesce(sum(lines_rejected_syntax + lines_rejected_too_long + rows_rejected_value "
                         "+ rows_rejected_insert + rows_rejected_table),0), "
                         "coalesce(sum(datagrams_dropped),0), "
                         "coalesce(sum(lines_received) FILTER (WHERE kind = 'listener'),0), "
                         "coalesce(sum(errors),0), coalesce(sum(queue_full),0)"
                         + "".join(f", coalesce(sum({c}),0)" for c in self.extra_counters)
                         + " FROM influx.stats()")[0]
            out = dict(inserted=int(r[0]), rejected=int(r[1]), dropped=int(r[2]),
                       received=int(r[3]), errors=int(r[4]), queue_full=int(r[5]))
            out.update((c, int(x)) for c, x in zip(self.extra_counters, r[6:]))
            return out
        except SqlError:
            return None

    def listener_status(self, db):
        try:
            r = db.query("SELECT status, workers_wanted, workers_running FROM influx.listener_status()")[0]
            return r[0], int(r[1] or 0), int(r[2] or 0)
        except (SqlError, IndexError, ValueError):
            return None, 0, 0

    def set_influx(self, db, restart=True, **settings):
        for k, val in settings.items():
            db.query(f"ALTER SYSTEM SET influx.{k} = '{val}'")
        db.query("SELECT pg_reload_conf()")
        time.sleep(0.3)  # let the postmaster and listener process SIGHUP before restarting workers
        if restart:
            try:
                db.query("SELECT influx.restart_workers()")
            except SqlError as e:
                log(f"influx.restart_workers(): {e}")
        return self.wait_listener(db)

    def wait_listener(self, db, timeout=30):
        """Until the listener is running with all its workers (and old workers have gone)."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status, wanted, running = self.listener_status(db)
            procs = self.influx_procs(db)
            nworkers = sum(1 for k in procs.values() if k == "influx worker")
            if status == "running" and wanted and running == wanted and nworkers == wanted:
                return True
            time.sleep(0.2)
        log(f"listener not ready after {timeout}s: status={status!r}")
        return False

    @staticmethod
    def rows_settled(counters):
        """Rows the workers are done with: committed or rejected."""
        return counters["inserted"] + counters["rejected"]

    def wait_rows(self, db, schema, tables, target, t0, base, settled=None):
        """Polls (cheap influx.stats() counters every 10 ms) until they show `target` rows committed
        (settled(counters) - settled(base) >= target; default rows_settled), then checks with
        count(*); returns the time of the poll that saw them (count(*) is not timed).  Bounded by
        --timeout overall and --stall seconds without progress."""
        a = self.args
        settled = settled or self.rows_settled
        deadline = t0 + a.timeout
        last_progress, last_val = time.monotonic(), -1
        use_stats = base is not None
        while time.monotonic() < deadline:
            if use_stats:
                cur = self.influx_counters(db)
                val = settled(cur) - settled(base) if cur else -1
                done = cur is not None and val >= target
                if done:
                    # The counters move after each commit: the rows are in.  count(*) checks
                    # it, after the clock has stopped.
                    t_done = time.monotonic()
                    n = self.count(db, schema, tables)
                    if n >= target:
                        return t_done, n
                    val = n
                interval = 0.01
            else:
                val = self.count(db, schema, tables)
                if val >= target:
                    return time.monotonic(), val
                interval = 0.5
            if val != last_val:
                last_val, last_progress = val, time.monotonic()
            elif time.monotonic() - last_progress > a.stall:
                break
            time.sleep(interval)
        return None, self.count(db, schema, tables)

    def influx_tcp(self, db, v, label=None, record=True, lp=None, fresh=True, settled=None):
        """One pg_influx TCP run into v.influx_schema; returns rows/s or None.  lp: the file to
        send (default the variant's); fresh: empty the tables first (else the caller has prepared
        them and the lines may collide with their rows); settled: see wait_rows."""
        a, c = self.args, self.cluster
        if fresh:
            self.truncate(db, v.influx_schema, v.tables)
            db.query("CHECKPOINT")
        procs = self.influx_procs(db)
        cpu0 = {pid: proc_cpu(pid) for pid in procs}
        base = self.influx_counters(db)
        target = a.lines
        lg = subprocess.Popen([LOADGEN, "--mode", "tcp", "--in", lp or self.files[(v.name, "lp")],
                               "--port", str(c.tcp_port), "--connections", str(a.connections),
                               "--max-seconds", str(a.timeout)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The clock starts when loadgen has its file in memory and its connections open and
        # says it starts sending (or gives up): as COPY's starts with its statement.
        first = lg.stdout.readline()
        if not first.startswith("sending:"):
            log(f"{v.name}: loadgen did not start sending: {first.strip()!r}")
        t0 = time.monotonic()
        m0 = machine_cpu()
        t_end, rows = self.wait_rows(db, v.influx_schema, v.tables, target, t0, base, settled)
        mcpu, busy = machine_delta(m0)
        try:
            out, err = lg.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            lg.kill()
            out, err = lg.communicate()
        m = re.search(r"seconds=([\d.]+)", out or "")
        send_secs = float(m.group(1)) if m else None
        after = self.influx_counters(db)
        procs_after = self.influx_procs(db)
        cpu = {}
        for pid, kind in procs.items():
            c1 = proc_cpu(pid)
            if c1 is not None and cpu0.get(pid) is not None:
                cpu.setdefault(kind, 0.0)
                cpu[kind] += c1 - cpu0[pid]
        mem = {}
        for pid, kind in procs_after.items():
            hwm, anon = proc_mem(pid)
            mem.setdefault(kind, []).append((hwm, anon))
        secs = (t_end - t0) if t_end else None
        ok = t_end is not None and rows == target
        note = ""
        if not ok:
            note = f"incomplete: {rows} of {target} rows after {time.monotonic() - t0:.0f}s"
            if lg.returncode not in (0, None):
                note += f"; loadgen: {(err or '').strip()[:200]}"
            log(f"{v.name}: pg_influx TCP {note}")
        else:
            log(f"{v.name}: pg_influx TCP {rows} rows in {secs:.2f}s = {rows / secs:,.0f} rows/s "
                f"(loadgen sent in {send_secs}s)")
        d = None
        if base and after:
            d = {k: after[k] - base[k] for k in after}
            if d["rejected"] or d["errors"]:
                note += f" rejected={d['rejected']} errors={d['errors']}"
            extra = f"queue_full={d['queue_full']}"
        else:
            extra = "influx.stats() unavailable"
        if record:
            self.results.append(dict(variant=v, method=label or f"pg_influx TCP ({a.connections} conn)",
                                     rows=rows, secs=secs, cpu=sum(cpu.values()) if cpu else None,
                                     mcpu=mcpu, busy=busy, note=note.strip(), ok=ok, counters=d))
            self.proc_rows.append(dict(variant=v, rows=rows, ok=ok, secs=secs, send_secs=send_secs,
                                       cpu_listener=cpu.get("influx listener"),
                                       cpu_workers=cpu.get("influx worker"),
                                       nworkers=sum(1 for k in procs.values() if k == "influx worker"),
                                       mem=mem, extra=extra))
        if not ok:
            self.notes.append(f"{v.name}: {note}. Server log tail:\n\n```\n{c.log_tail(15)}```")
        return (rows / secs) if ok else None

    def verify(self, db, v):
        """Rows pg_influx stored that COPY did not (and vice versa): 0 means identical."""
        diff = 0
        for t in v.tables:
            q = (f"SELECT (SELECT count(*) FROM (SELECT * FROM {v.influx_schema}.{t} EXCEPT ALL "
                 f"SELECT * FROM {v.copy_schema}.{t}) a) + (SELECT count(*) FROM (SELECT * FROM "
                 f"{v.copy_schema}.{t} EXCEPT ALL SELECT * FROM {v.influx_schema}.{t}) b)")
            diff += int(db.value(q, timeout=self.args.timeout))
        return diff

    def udp(self, db, v):
        a, c = self.args, self.cluster
        for rate in a.udp_rates:
            self.truncate(db, v.influx_schema, v.tables)
            base = self.influx_counters(db)
            k0 = kernel_udp_drops()
            n = a.udp_lines if rate == 0 else min(a.udp_lines, int(rate * a.udp_seconds))
            res = loadgen(["--mode", "udp", "--in", self.files[(v.name, "lp")], "--lines", n,
                           "--port", c.udp_port, "--rate", rate, "--datagram-size", a.datagram_size,
                           "--max-seconds", 120], timeout=180)
            sent = int(res["lines"])
            # Rows still in rings / batches are committed within influx.flush_interval; wait
            # until the count stops moving (or reaches what was sent).
            deadline = time.monotonic() + 60
            last, stable_since = -1, time.monotonic()
            while time.monotonic() < deadline:
                cnt = self.count(db, v.influx_schema, v.tables)
                if cnt >= sent:
                    break
                if cnt != last:
                    last, stable_since = cnt, time.monotonic()
                elif time.monotonic() - stable_since > 3:
                    break
                time.sleep(0.5)
            cnt = self.count(db, v.influx_schema, v.tables)
            after = self.influx_counters(db)
            k1 = kernel_udp_drops()
            d = {k: after[k] - base[k] for k in after} if base and after else {}
            row = dict(k_rcvbuf=k1[0] - k0[0], k_softnet=k1[1] - k0[1], rate=rate, sent=sent, datagrams=int(res["datagrams"]),
                       send_secs=float(res["seconds"]), received=d.get("received"), inserted=cnt,
                       dropped=d.get("dropped"), queue_full=d.get("queue_full"),
                       send_errors=int(res["errors"]))
            self.udp_rows.append(row)
            log(f"udp rate={rate or 'unpaced'}: sent {sent} lines in {row['datagrams']} datagrams, "
                f"inserted {cnt}, datagrams_dropped {row['dropped']}")
            if cnt == 0 and sent > 0:
                break  # nothing arrives: no point in trying faster

    def repeat_tcp(self, db, v):
        rates = [self.influx_tcp(db, v, record=False) for _ in range(self.args.repeat)]
        rates = [r for r in rates if r]
        return median(rates) if rates else None

    def sweep(self, db):
        a = self.args
        v = VARIANTS["typed"]
        for w in a.sweep_workers:
            self.set_influx(db, workers=w, batch_size=a.batch_size)
            r = self.repeat_tcp(db, v)
            self.sweep_rows.append(dict(kind="workers", workers=w, batch=a.batch_size, rate=r))
            log(f"sweep workers={w} batch={a.batch_size}: {fmt_rate(r)} rows/s")
        for b in a.sweep_batch:
            self.set_influx(db, workers=a.workers, batch_size=b)
            r = self.repeat_tcp(db, v)
            self.sweep_rows.append(dict(kind="batch", workers=a.workers, batch=b, rate=r))
            log(f"sweep workers={a.workers} batch={b}: {fmt_rate(r)} rows/s")
        self.set_influx(db, workers=a.workers, batch_size=a.batch_size)

    # ----- main -----

    def main(self):
        a = self.args
        variants = [VARIANTS[n] for n in a.variants]
        c = self.cluster = Cluster(a)
        db = None
        try:
            settings = dict(kv.split("=", 1) for kv in a.set)
            c.init(settings)
            c.start()
            db = Psql(c.dir, c.port)
            if not a.no_influx:
                db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
            self.gen_files(c, variants)
            self.create_tables(db, variants)
            self.influx_ready = a.no_influx or self.wait_listener(db, timeout=30)
            if not self.influx_ready:
                st = self.listener_status(db)
                self.notes.append(f"listener not ready at start: {st}")
            for v in variants:
                log(f"=== variant {v.name}: {v.title}")
                if not a.no_influx and self.influx_ok is not False:
                    self.set_influx(db, schema=v.influx_schema)
                for trial in range(a.warmup):
                    # Untimed: the first load after a start pays one-time costs (new WAL
                    # segments, first touch of shared buffers, cold caches) for every method.
                    log(f"{v.name}: warm-up load {trial + 1} of {a.warmup} (not recorded)")
                    self.copy_csv(c, db, v, record=False)
                    self.copy_binary(db, v, record=False)
                    if not a.no_influx and self.influx_ok is not False:
                        self.influx_ok = self.influx_tcp(db, v, record=False) is not None
                for trial in range(a.repeat):
                    self.copy_csv(c, db, v)
                    self.copy_binary(db, v)
                    if a.no_influx:
                        continue
                    if self.influx_ok is False:
                        self.results.append(dict(variant=v, method="pg_influx TCP", rows=0, secs=None,
                                                 cpu=None, note="skipped: an earlier pg_influx run failed",
                                                 ok=False))
                        break
                    rate = self.influx_tcp(db, v)
                    self.influx_ok = rate is not None
                    if rate is None:
                        break
                if self.influx_ok and not a.no_influx and not a.no_verify:
                    # the tables hold the last trial's rows of both loaders
                    diff = self.verify(db, v)
                    last = [r for r in self.results if r["variant"] is v and r["method"].startswith("pg_influx")]
                    last[-1]["verify"] = diff
                    log(f"{v.name}: rows differing between pg_influx and COPY: {diff}")
            if not a.no_influx and self.influx_ok and a.udp_rates:
                v = VARIANTS["typed"] if "typed" in a.variants else variants[0]
                self.set_influx(db, schema=v.influx_schema)
                self.udp(db, v)
            if a.sweep and not a.no_influx and self.influx_ok:
                self.set_influx(db, schema=VARIANTS["typed"].influx_schema)
                if "typed" not in a.variants:
                    raise SystemExit("--sweep needs the typed variant")
                self.sweep(db)
            self.pg_version = db.value("SHOW server_version")
            self.final_settings = db.query("SELECT name, current_setting(name) FROM pg_settings WHERE name LIKE 'influx.%' "
                                           "OR name IN ('shared_buffers','synchronous_commit','fsync',"
                                           "'max_wal_size','wal_level','autovacuum') ORDER BY name")
            self.final_settings = [(k, v) for k, v in self.final_settings
                                   if not (a.no_influx and k.startswith("influx."))]
        finally:
            c.finish([db], a.keep)
        return self.report()

    # ----- report -----

    def report(self):
        a = self.args
        now = datetime.datetime.now()
        L = []
        L.append(f"# pg_influx benchmark — {now:%Y-%m-%d %H:%M:%S}\n")
        rev = repo_revision()
        L.append(f"- machine: {machine_line()}")
        L.append(f"- load average (1 min) before / after the run: {self.load_before:.2f} / "
                 f"{os.getloadavg()[0]:.2f} (anything well above the benchmark's own processes "
                 f"means other work shared the CPUs)")
        L.append(f"- PostgreSQL {getattr(self, 'pg_version', '?')}, pg_influx {rev}")
        L.append(f"- command: `{' '.join(sys.argv)}`")
        if a.repeat > 1:
            L.append(f"- every load repeated {a.repeat} times: rows/s is the median (min-max in brackets), "
                     f"CPU the median")
        if a.warmup > 0:
            L.append(f"- before the timed loads of a variant, {a.warmup} untimed warm-up load(s) of every "
                     f"method (first-load costs: new WAL segments, first touch of shared buffers, cold caches)")
        L.append(f"- dataset: {a.lines:,} lines per variant, seed {a.seed}; pg_influx over "
                 f"{a.connections} TCP connection(s) from bench/loadgen (pre-generated file)")
        fs = getattr(self, "final_settings", [])
        if fs:
            L.append("- settings: " + ", ".join(f"`{k}={v}`" for k, v in fs
                                                if k not in ("influx.tcp_port", "influx.udp_port")))
        L.append("")
        L.append("## Throughput (same rows, same cluster, same run)\n")
        L.append("| variant | method | rows | seconds | rows/s | vs COPY binary | server CPU s / M rows "
                 "| machine CPU s / M rows | machine busy | check |")
        L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
        groups = {}
        for r in self.results:
            groups.setdefault((r["variant"].name, r["method"]), []).append(r)
        def rate_of(r):
            return r["rows"] / r["secs"] if r.get("secs") and r.get("ok", True) else None
        copy_rate = {}
        for (vname, method), rs in groups.items():
            rates = [x for x in map(rate_of, rs) if x]
            if rs[0].get("is_copy_binary") and rates:
                copy_rate[vname] = median(rates)
        for (vname, method), rs in groups.items():
            v = rs[0]["variant"]
            rates = [x for x in map(rate_of, rs) if x]
            rate = median(rates) if rates else None
            secs = median([r["secs"] for r in rs if rate_of(r)]) if rates else None
            ratio = (rate / copy_rate[vname]) if rate and vname in copy_rate else None
            cpus = [r["cpu"] / r["rows"] * 1e6 for r in rs if r.get("cpu") is not None and r["rows"]]
            cpu = median(cpus) if cpus else None
            mcpus = [r["mcpu"] / r["rows"] * 1e6 for r in rs if rate_of(r) and r.get("mcpu") is not None]
            mcpu = median(mcpus) if mcpus else None
            busies = [r["busy"] for r in rs if rate_of(r) and r.get("busy") is not None]
            busy = f"{median(busies) * 100:.0f} %" if busies else "-"
            rows = rs[-1]["rows"]
            checks = []
            for r in rs:
                if "verify" in r:
                    checks.append("same rows as COPY" if r["verify"] == 0
                                  else f"{r['verify']} rows differ from COPY")
                if r.get("note"):
                    checks.append(r["note"])
            spread = (f" ({min(rates):,.0f}-{max(rates):,.0f})" if len(rates) > 1 else "")
            L.append(f"| {v.title} | {method} | {rows:,} | {fmt_num(secs)} | {fmt_rate(rate)}{spread} "
                     f"| {fmt_num(ratio)} | {fmt_num(cpu)} | {fmt_num(mcpu)} | {busy} "
                     f"| {'; '.join(dict.fromkeys(checks))} |")
        if self.proc_rows:
            L.append("\n## pg_influx processes (TCP runs)\n")
            L.append("| variant | listener CPU s / M rows | workers CPU s / M rows (all workers) | "
                     "listener VmHWM | worker VmHWM (max) | worker RssAnon (max) | loadgen send s | counters |")
            L.append("|---|--:|--:|--:|--:|--:|--:|---|")
            pgroups = {}
            for p in self.proc_rows:
                pgroups.setdefault(p["variant"].name, []).append(p)
            for vname, ps in pgroups.items():
                def per(key):
                    xs = [p[key] / p["rows"] * 1e6 for p in ps if p[key] is not None and p["rows"] and p["ok"]]
                    return fmt_num(median(xs)) if xs else "n/a"
                lh = [m[0] for p in ps for m in p["mem"].get("influx listener", []) if m[0] is not None]
                wh = [m[0] for p in ps for m in p["mem"].get("influx worker", []) if m[0] is not None]
                wa = [m[1] for p in ps for m in p["mem"].get("influx worker", []) if m[1] is not None]
                sends = [p["send_secs"] for p in ps if p["send_secs"] is not None]
                L.append(f"| {ps[0]['variant'].title} | {per('cpu_listener')} | {per('cpu_workers')} "
                         f"({ps[-1]['nworkers']}) | {fmt_kib(max(lh, default=None))} | {fmt_kib(max(wh, default=None))} "
                         f"| {fmt_kib(max(wa, default=None))} | {fmt_num(median(sends) if sends else None)} "
                         f"| {summarize_extra([p['extra'] for p in ps])} |")
        if self.udp_rows:
            L.append(f"\n## UDP loss (typed table, datagrams up to {a.datagram_size} bytes)\n")
            L.append("| paced rate (lines/s) | lines sent | datagrams sent | send s | lines received "
                     "| rows inserted | datagrams_dropped | queue_full | kernel RcvbufErrors | kernel softnet drops | loss |")
            L.append("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
            for u in self.udp_rows:
                loss = 1 - u["inserted"] / u["sent"] if u["sent"] else None
                rate = "unpaced" if u["rate"] == 0 else f"{u['rate']:,}"
                L.append(f"| {rate} "
                         f"| {u['sent']:,} | {u['datagrams']:,} | {u['send_secs']:.2f} | "
                         f"{'n/a' if u['received'] is None else format(u['received'], ',')} | {u['inserted']:,} | "
                         f"{'n/a' if u['dropped'] is None else format(u['dropped'], ',')} | "
                         f"{'n/a' if u['queue_full'] is None else u['queue_full']} | "
                         f"{u['k_rcvbuf']:,} | {u['k_softnet']:,} | "
                         f"{'n/a' if loss is None else f'{loss * 100:.2f} %'} |")
        if self.sweep_rows:
            L.append("\n## Sweep (typed table, TCP)\n")
            L.append("| influx.workers | influx.batch_size | rows/s |")
            L.append("|--:|--:|--:|")
            for s in self.sweep_rows:
                L.append(f"| {s['workers']} | {s['batch']} | {fmt_rate(s['rate'])} |")
        if self.notes:
            L.append("\n## Notes\n")
            for n in self.notes:
                L.append(f"- {n}")
        text = "\n".join(L) + "\n"
        os.makedirs(a.results_dir, exist_ok=True)
        stamp = now.strftime("%Y%m%d-%H%M%S")
        png = self.plot(os.path.join(a.results_dir, f"{stamp}.png")) if self.sweep_rows else None
        write_report(os.path.join(a.results_dir, f"{stamp}.md"), text, png, "rows/s vs workers and batch size")
        failed = any(r.get("ok") is False for r in self.results)
        return 1 if failed else 0

    def plot(self, path):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log("matplotlib missing (apt-get install -y python3-matplotlib): no plot")
            return None
        copy_rate = next((r["rows"] / r["secs"] for r in self.results
                          if r.get("is_copy_binary") and r["variant"].name == "typed"), None)
        csv_rate = next((r["rows"] / r["secs"] for r in self.results
                         if r["method"].startswith("CSV") and r["variant"].name == "typed"), None)
        from matplotlib.ticker import MaxNLocator
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, kind, key, xlabel in ((ax1, "workers", "workers", "influx.workers"),
                                      (ax2, "batch", "batch", "influx.batch_size")):
            pts = [(s[key], s["rate"]) for s in self.sweep_rows if s["kind"] == kind and s["rate"]]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="pg_influx TCP")
            if copy_rate:
                ax.axhline(copy_rate, color="gray", ls="--", label="COPY binary")
            if csv_rate:
                ax.axhline(csv_rate, color="gray", ls=":", label="CSV \\copy")
            if kind == "batch":
                ax.set_xscale("log")
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(xlabel)
            ax.set_ylabel("rows/s")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend()
        ax1.set_title(f"rows/s vs workers (batch {self.args.batch_size})")
        ax2.set_title(f"rows/s vs batch size ({self.args.workers} workers)")
        fig.suptitle(f"pg_influx, {self.args.lines:,} cpu lines, typed table")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        return path


def summarize_extra(extras):
    """['queue_full=3', 'queue_full=5'] -> 'queue_full=3/5'"""
    if all(e.startswith("queue_full=") for e in extras):
        return "queue_full=" + "/".join(e.split("=", 1)[1] for e in extras)
    return "; ".join(dict.fromkeys(extras))


def int_list(s):
    return [int(float(x)) for x in s.split(",") if x.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=1_000_000, help="cpu lines per variant (default 1M)")
    p.add_argument("--big", action="store_true", help="5M lines, 1M lines per UDP rate")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--variants", default="typed,jsonb,indexed",
                   help="comma list of typed,jsonb,indexed,hc,mixed (default typed,jsonb,indexed); 'all'")
    p.add_argument("--workers", type=int, default=2, help="influx.workers (default 2)")
    p.add_argument("--batch-size", type=int, default=10000, help="influx.batch_size (default 10000)")
    p.add_argument("--connections", type=int, default=4, help="TCP connections (default 4)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="extra postgresql.conf setting, e.g. --set influx.flush_interval=100")
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--udp-rates", default="25000,50000,100000,200000,0",
                   help="paced UDP rates in lines/s, 0 = unpaced; empty to skip")
    p.add_argument("--udp-lines", type=int, default=200_000, help="most lines per UDP rate")
    p.add_argument("--udp-seconds", type=float, default=8, help="longest paced send per rate")
    p.add_argument("--datagram-size", type=int, default=1400, help="largest datagram (1400 or 8192)")
    p.add_argument("--repeat", type=int, default=1,
                   help="repeat every load N times and report the median (and min-max)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed loads of every method before the timed ones, per variant (default 1)")
    p.add_argument("--sweep", action="store_true", help="rows/s vs workers and batch size + PNG")
    p.add_argument("--sweep-workers", default="1,2,3,4")
    p.add_argument("--sweep-batch", default="1000,5000,10000,50000")
    p.add_argument("--timeout", type=float, default=300, help="longest wait for one load (s)")
    p.add_argument("--stall", type=float, default=30, help="give up after this long without progress (s)")
    p.add_argument("--no-influx", action="store_true", help="COPY part only")
    p.add_argument("--no-verify", action="store_true", help="skip the EXCEPT ALL row comparison")
    p.add_argument("--keep", action="store_true", help="keep the cluster directory")
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--results-dir", default=os.path.join(BENCH_DIR, "results"))
    a = p.parse_args()
    if a.big:
        a.lines = max(a.lines, 5_000_000)
        a.udp_lines = max(a.udp_lines, 1_000_000)
        a.udp_seconds = max(a.udp_seconds, 20)
    a.variants = list(VARIANTS) if a.variants == "all" else [x for x in a.variants.split(",") if x]
    for n in a.variants:
        if n not in VARIANTS:
            p.error(f"unknown variant {n}")
    a.udp_rates = int_list(a.udp_rates)
    a.sweep_workers = int_list(a.sweep_workers)
    a.sweep_batch = int_list(a.sweep_batch)
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        p.error("run as root (the cluster runs as the postgres user) or as postgres")
    log("building bench/loadgen")
    run(["make", "-s", "-C", BENCH_DIR, "loadgen"])
    lib = os.path.join(run(["pg_config", "--pkglibdir"]).stdout.strip(), "pg_influx.so")
    if not os.path.exists(lib):
        p.error(f"{lib} is not installed: cd {REPO_DIR} && make && make install")
    sys.exit(Bench(a).main())


if __name__ == "__main__":
    main()
