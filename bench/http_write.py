#!/usr/bin/python3
"""pg_influx HTTP write endpoint benchmark: the same rows through pg_influx's /write, through
server-side COPY (FORMAT binary) into a twin table, and through InfluxDB 1.6's /write, in one
run on this machine.

    sudo /usr/bin/python3 bench/http_write.py                      # ~5 minutes
    sudo /usr/bin/python3 bench/http_write.py --repeat 5 --latency-seconds 60
    sudo PATH=/some/pg/bin:$PATH /usr/bin/python3 bench/http_write.py   # another PostgreSQL tree
    sudo /usr/bin/python3 bench/http_write.py --pg-config /some/pg/bin/pg_config

(Not bench/http.py: test/integration/test_fleet.py puts bench/ first on sys.path, and a
bench/http.py would then hide the standard library's `http` package from every later test.)

What it does (see bench/README.md and docs/benchmarks.md):
  1. builds bench/loadgen; starts a throw-away cluster as the postgres user (bench/run.py's
     settings: shared_buffers 1GB, max_wal_size 8GB, checkpoint_timeout 30min, autovacuum off
     for the throughput loads; fsync, synchronous_commit and influx.synchronous_commit on;
     influx.workers 2, every other influx.* at its default; PostgreSQL on a free port in
     5480-5489, influx TCP/UDP/HTTP in 41000-41999, loopback only);
  2. generates --lines Telegraf-shaped `cpu` lines (bench/loadgen: tags host and cpu, ten
     float fields usage_user ... usage_guest_nice, nanosecond timestamps) and the same rows
     as a binary COPY file; cuts the lines into --lines-per-request bodies (200 requests of
     5,000 lines by default) and gzips every body (level 6, as Go's and zlib's default)
     before any clock runs;
  3. creates schema `bench` (the requests' `db=bench`: pg_influx writes into the schema a
     request names) and `copy_typed` with the same typed `cpu` table (DDL from loadgen);
  4. per trial (one untimed warm-up, then --repeat timed trials, interleaved): all requests
     over --connections keep-alive HTTP/1.1 connections, each sending its next request only
     after the answer to the previous one (closed loop), plain bodies and then gzip bodies;
     then `COPY copy_typed.cpu FROM '<file>' (FORMAT binary)` in one transaction. HTTP time:
     first request sent to last answer received (a 204 means every line of the request is
     committed, so no polling); every answer must be 204 and count(*) must equal --lines;
     EXCEPT ALL against the COPY twin checks every column of every row (after the warm-up
     plain load and after the last gzip load);
  5. optionally (--perf, default on) one more, untimed, plain load under `perf record -g`
     on the listener and the workers: top symbols per process;
  6. InfluxDB 1.6 (Debian's `influxd`, never its service): run as the `influxdb` user with
     meta/data/wal in a temporary directory, HTTP on a free port in 42000-42999,
     `wal-fsync-delay = "0s"` (fsync on every write); the same requests the same way to
     /write?db=bench (a fresh database per load: one untimed warm-up load, then plain and
     gzip --influxdb-repeat times); count(usage_user) must equal --lines;
  7. latency: the maximum rate is the median closed-loop rate of the plain HTTP loads; 50 %
     of it (--latency-load) is offered as requests at fixed intervals (open loop, over the
     same number of connections) for --latency-seconds, autovacuum back on; latency of each
     request from its scheduled send time to its answer (so a request that waited for a free
     connection counts its wait), p50/p95/p99/max against influx.flush_interval + 100 ms;
  8. markdown report to stdout and bench/results/http-<timestamp>.md, plot in
     bench/results/http-<timestamp>.png (python3-matplotlib; an ASCII chart otherwise).

CPU: user+system seconds from /proc/<pid>/stat per million rows of the server processes
(pg_influx listener + workers; the COPY backend; influxd), of this client (all its threads:
os.times()) and of the whole machine (/proc/stat). Needs only Debian's python3 standard
library, psql, bench/loadgen, influxdb (apt-get install -y influxdb), linux-perf for --perf
and python3-matplotlib for the plot.
"""

import argparse
import datetime
import gzip
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from statistics import median

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
# The standard library's http package first, before bench/ goes onto sys.path.
if sys.path and os.path.abspath(sys.path[0] or ".") == BENCH_DIR:
    del sys.path[0]
import http.client  # noqa: E402
import urllib.parse  # noqa: E402
sys.path.insert(0, BENCH_DIR)
import run as benchrun  # noqa: E402  (bench/run.py: cluster, psql coprocess, /proc helpers, COPY)

log = benchrun.log
fmt_rate, fmt_num = benchrun.fmt_rate, benchrun.fmt_num


class Cluster(benchrun.Cluster):
    """run.py's throw-away cluster, on its own port ranges (PostgreSQL 5480-5489, influx
    41000-41999) so that it can run next to bench/run.py and bench/latency.py."""

    PG_PORTS = range(5480, 5490)
    INFLUX_PORTS = range(41000, 42000)


INFLUXDB_PORTS = range(42000, 43000)


def percentile(xs, p):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
    return xs[k]


def proc_nice(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[16])
    except (OSError, IndexError, ValueError):
        return None


def renice(pid, nice):
    """The nice value of a process and of its scheduler autogroup. With autogroups on (Debian's
    default), CPU time is shared between sessions first and nice counts only inside a session;
    the postmaster and influxd start sessions of their own. Returns what /proc shows after."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
        with open(f"/proc/{pid}/autogroup") as f:
            return f.read().strip()
    except OSError as e:
        return f"autogroup not set: {e}"


def client_cpu():
    """User+system CPU seconds of this process, all threads."""
    t = os.times()
    return t.user + t.system


def proc_snapshot():
    """{pid: (ppid, user+system CPU seconds, comm)} of every process on the machine."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    head, _, tail = f.read().rpartition(")")
                rest = tail.split()
                out[int(d)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / benchrun.CLK_TCK,
                               head.partition("(")[2])
            except (OSError, IndexError, ValueError):
                continue
    return out


def subtree(snap, roots):
    """roots and every process below them in a snapshot."""
    children = {}
    for pid, (ppid, _, _) in snap.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


def stat_cpu():
    """Machine CPU seconds from /proc/stat: busy (everything but idle and iowait), irq+softirq, steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / benchrun.CLK_TCK, (v[5] + v[6]) / benchrun.CLK_TCK, v[7] / benchrun.CLK_TCK


class Meter:
    """CPU seconds over one timed load, attributed from two snapshots of every process:
    the given server processes (by kind); everything the benchmark runs (the processes under
    `roots`: the PostgreSQL cluster or influxd; and this client, all its threads); the kernel's
    own threads with irq/softirq time (mostly the benchmark's I/O and loopback traffic); the
    hypervisor's steal; and the rest of the machine's busy time: other work sharing the CPUs
    (processes that are none of these, including ones that came and went during the load)."""

    def __init__(self, procs, roots):
        self.procs = dict(procs)
        self.roots = list(roots)
        self.s0 = proc_snapshot()
        self.k0 = stat_cpu()
        self.t0 = time.monotonic()

    def stop(self):
        s1 = proc_snapshot()
        k1 = stat_cpu()
        wall = time.monotonic() - self.t0
        ncpu = os.cpu_count() or 1
        s0 = self.s0

        def delta(pid):
            if pid not in s1:
                return 0.0
            return s1[pid][1] - (s0[pid][1] if pid in s0 else 0.0)
        ours = subtree(s1, self.roots) | subtree(s0, self.roots) | {os.getpid()}
        kthreads = {pid for pid, (ppid, _, _) in s1.items() if pid == 2 or ppid == 2}
        mcpu = k1[0] - self.k0[0]
        irq, steal = k1[1] - self.k0[1], k1[2] - self.k0[2]
        own = sum(delta(pid) for pid in ours)
        kernel = sum(delta(pid) for pid in kthreads) + irq
        other = max(0.0, mcpu - own - kernel - steal)
        by_comm = {}
        for pid in set(s1) - ours - kthreads:
            d = delta(pid)
            if d > 0:
                by_comm[s1[pid][2]] = by_comm.get(s1[pid][2], 0.0) + d
        seen = sum(by_comm.values())
        if other - seen > 0.05:
            by_comm["(processes that exited during the load)"] = other - seen
        top_other = sorted(by_comm.items(), key=lambda kv: -kv[1])[:4]
        kinds = {}
        for pid, kind in self.procs.items():
            if pid in s1:
                kinds[kind] = kinds.get(kind, 0.0) + delta(pid)
        return dict(kinds=kinds, server=sum(kinds.values()) if kinds else None, client=delta(os.getpid()),
                    mcpu=mcpu, busy=mcpu / (wall * ncpu), own=own, kernel=kernel, steal=steal, other=other,
                    other_share=other / (wall * ncpu), kernel_share=kernel / (wall * ncpu),
                    steal_share=steal / (wall * ncpu), wall=wall, top_other=top_other)


class Sampler(threading.Thread):
    """A Meter every `every` seconds while a paced run goes: the share of the CPUs that other
    work took, second by second."""

    def __init__(self, roots, every=1.0):
        super().__init__(daemon=True)
        self.roots, self.every = roots, every
        self.samples = []   # (seconds since start, other share, busy share)
        self.stop_ev = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.stop_ev.is_set():
            m = Meter({}, self.roots)
            if self.stop_ev.wait(self.every):
                break
            r = m.stop()
            self.samples.append((m.t0 - t0, r["other_share"], r["busy"]))

    def stop(self):
        self.stop_ev.set()
        self.join(5)
        return self.samples


# ---------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------

def make_bodies(lp_path, lines_per_request):
    """The line-protocol file cut into request bodies of lines_per_request whole lines."""
    with open(lp_path, "rb") as f:
        data = f.read()
    bodies, pos, n = [], 0, len(data)
    while pos < n:
        end = pos
        for _ in range(lines_per_request):
            end = data.find(b"\n", end) + 1
            if end == 0:
                end = n
                break
            if end >= n:
                break
        bodies.append(data[pos:end])
        pos = end
    return bodies


def gzip_bodies(bodies, level):
    # zlib releases the GIL while it compresses: two threads use both cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        return list(ex.map(lambda b: gzip.compress(b, compresslevel=level, mtime=0), bodies))


# ---------------------------------------------------------------------------------------------
# HTTP client: keep-alive connections, one request in flight per connection
# ---------------------------------------------------------------------------------------------

class Load:
    """What one series of requests did: per request (index, status, scheduled, sent, answered,
    error text), the wall time from the first send to the last answer and the client's CPU."""

    def __init__(self):
        self.reqs = []
        self.secs = None
        self.client_cpu = None
        self.lock = threading.Lock()

    def statuses(self):
        out = {}
        for r in self.reqs:
            out[r[1]] = out.get(r[1], 0) + 1
        return out

    def all_204(self, expected):
        return len(self.reqs) == expected and all(r[1] == 204 for r in self.reqs)

    def errors(self, n=3):
        return [f"{r[1]}: {r[5]}" for r in self.reqs if r[1] != 204][:n]

    def latencies_ms(self, since_scheduled=False):
        k = 2 if since_scheduled else 3
        return sorted((r[4] - r[k]) * 1000 for r in self.reqs)


def send_requests(port, target, bodies, connections, encoding=None, rate=None, count=None,
                  duration=None, timeout=60.0):
    """Sends bodies over `connections` keep-alive connections, each one sending its next
    request only after it has read the answer to the previous one.

    rate None: closed loop, every body once (or, with `duration`, the bodies in turn until
    `duration` seconds have passed), as fast as the answers come back.
    rate R (requests/s): open loop, `count` requests (bodies reused in turn) scheduled at
    t0 + k/R; a connection takes the next scheduled request when it is free and sends it at
    its time (late if every connection was busy: the latency from the scheduled time counts
    that wait)."""
    headers = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "pg_influx-bench"}
    if encoding:
        headers["Content-Encoding"] = encoding
    total = count if rate is not None else (1 << 62) if duration else len(bodies)
    load = Load()
    nxt = [0]
    conns = []
    for _ in range(connections):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.connect()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(c)
    go = threading.Barrier(connections + 1)
    t0 = [None]

    def worker(conn):
        go.wait()
        while True:
            with load.lock:
                k = nxt[0]
                if k >= total or (duration and time.monotonic() - t0[0] >= duration):
                    break
                nxt[0] += 1
            sched = None
            if rate is not None:
                sched = t0[0] + k / rate
                delay = sched - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            body = bodies[k % len(bodies)]
            t1 = time.monotonic()
            status, err = None, ""
            try:
                conn.request("POST", target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                if status != 204:
                    err = data[:300].decode("utf-8", "replace")
            except Exception as e:  # counted as a failed request; http.client reconnects
                err = repr(e)[:300]
                conn.close()
            t2 = time.monotonic()
            with load.lock:
                load.reqs.append((k, status, sched if sched is not None else t1, t1, t2, err))

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    cpu0 = client_cpu()
    t0[0] = time.monotonic()
    go.wait()
    for t in threads:
        t.join()  # every request is bounded by `timeout`
    load.client_cpu = client_cpu() - cpu0
    if load.reqs:
        load.secs = max(r[4] for r in load.reqs) - t0[0]
    for c in conns:
        c.close()
    load.reqs.sort()
    return load


# ---------------------------------------------------------------------------------------------
# InfluxDB 1.6
# ---------------------------------------------------------------------------------------------

class Influxd:
    """Debian's influxd, run here as the `influxdb` user (nobody if that user is missing) with
    everything in a temporary directory; not the packaged service."""

    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="influxdb_bench.", dir=args.tmpdir)
        try:
            pw = pwd.getpwnam("influxdb")
        except KeyError:
            pw = pwd.getpwnam("nobody")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.chown(self.dir, self.uid, self.gid)
        import random
        cands = random.Random(os.getpid()).sample(list(INFLUXDB_PORTS), len(INFLUXDB_PORTS))
        self.port = benchrun.pick_port(cands, ("tcp",))
        self.rpc_port = benchrun.pick_port(cands, ("tcp",), exclude=(self.port,))
        self.conf = os.path.join(self.dir, "influxdb.conf")
        self.settings = {
            "reporting-disabled": "true",
            "bind-address": f'"127.0.0.1:{self.rpc_port}"',
            "[meta] dir": f'"{self.dir}/meta"',
            "[data] dir": f'"{self.dir}/data"',
            "[data] wal-dir": f'"{self.dir}/wal"',
            "[data] wal-fsync-delay": '"0s"',
            "[http] bind-address": f'"127.0.0.1:{self.port}"',
        }
        sections = {}
        for k, v in self.settings.items():
            sec, _, key = k.rpartition(" ")
            sections.setdefault(sec, []).append(f"  {key} = {v}")
        with open(self.conf, "w") as f:
            for sec, lines in sections.items():
                if sec:
                    f.write(f"{sec}\n")
                f.write("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o644)
        self.logfile = os.path.join(self.dir, "influxd.log")
        self.p = None
        self.version = run_text(["influxd", "version"]).strip()

    def start(self):
        log(f"starting influxd on port {self.port} (data in {self.dir})")
        with open(self.logfile, "w") as logf:
            self.p = subprocess.Popen(["influxd", "-config", self.conf], stdout=logf, stderr=subprocess.STDOUT,
                                      cwd=self.dir, user=self.uid, group=self.gid, extra_groups=[],
                                      env={"PATH": "/usr/bin:/bin", "HOME": self.dir},
                                      start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise SystemExit(f"influxd exited: {self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/ping")
                if c.getresponse().status == 204:
                    c.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"influxd did not answer /ping within 60 s: {self.log_tail()}")

    def query(self, q, db=None):
        params = {"q": q}
        if db:
            params["db"] = db
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        c.request("POST", "/query", body=urllib.parse.urlencode(params),
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        data = json.loads(r.read() or b"{}")
        c.close()
        if r.status != 200 or any("error" in x for x in data.get("results", [])):
            raise RuntimeError(f"influxdb {q!r}: {r.status} {data}")
        return data

    def count(self, db, measurement="cpu", field="usage_user"):
        data = self.query(f'SELECT count("{field}") FROM "{measurement}"', db=db)
        try:
            return int(data["results"][0]["series"][0]["values"][0][1])
        except (KeyError, IndexError):
            return 0

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self.p = None

    def log_tail(self, n=20):
        try:
            with open(self.logfile) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def top_other(m):
    """' (cc1plus 1.2 s, ...)': what the other work was, when there was some."""
    if m["other_share"] < 0.05 or not m.get("top_other"):
        return ""
    return " (" + ", ".join(f"{k} {v:.1f} s" for k, v in m["top_other"][:3]) + ")"


def fmt_pgstats(d):
    return (f"during it: {d['buffers_backend']:,} buffers written by the workers themselves "
            f"(their bulk-insert rings, or evictions), {d['buffers_clean']:,} by the background writer, "
            f"{d['checkpoints']} checkpoint(s), {d['autovacuum']} autovacuum/autoanalyze run(s) of bench.cpu")


def other_at(samples, t):
    """The sampled other-work share for second t of a run, as a whole percentage."""
    near = [o for (ts, o, _) in samples if t - 0.5 <= ts < t + 1.0]
    return f"{max(near) * 100:.0f}" if near else "?"


def run_text(cmd):
    try:
        return subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({e})"


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------

class HttpBench:
    def __init__(self, a):
        self.a = a
        self.results = []   # one dict per timed load
        self.notes = []
        self.ok = True      # correctness: every answer 204, every count right, same rows as COPY
        self.checks = []    # (what, passed, detail)
        self.sustained = None
        self.latency = []   # one dict per paced run
        self.profiles = []
        self.load_before = os.getloadavg()[0]
        self.influxdb_info = None
        self.autogroups = {}
        self.waits = []     # (seconds waited for a quiet machine, other share when the load started)

    def pg_stats(self, db):
        """Counters that explain a slow stretch of a paced run: buffers the backends (the workers)
        wrote themselves, checkpoints, autovacuum and autoanalyze runs of bench.cpu."""
        r = db.query("SELECT buffers_backend, buffers_clean, buffers_checkpoint, checkpoints_timed + checkpoints_req, "
                     "(SELECT autovacuum_count + autoanalyze_count FROM pg_stat_all_tables "
                     "WHERE relid = 'bench.cpu'::regclass) FROM pg_stat_bgwriter")[0]
        return dict(zip(("buffers_backend", "buffers_clean", "buffers_checkpoint", "checkpoints", "autovacuum"),
                        (int(x or 0) for x in r)))

    def wait_quiet(self, roots):
        """Before a timed load: wait (at most --quiet-wait s) for a half second in which other work
        took at most --quiet-threshold of the CPUs. Other users of the machine are left alone."""
        a = self.a
        if a.quiet_wait <= 0:
            return
        t0 = time.monotonic()
        while True:
            m = Meter({}, roots)
            time.sleep(0.5)
            other = m.stop()["other_share"]
            if other <= a.quiet_threshold or time.monotonic() - t0 >= a.quiet_wait:
                break
        waited = time.monotonic() - t0
        self.waits.append((waited, other))
        if other > a.quiet_threshold:
            log(f"machine still busy after {waited:.0f} s: other work {other * 100:.0f} % of the CPUs; going on")

    def pg_roots(self):
        """The postmaster: every process of the cluster is below it."""
        with open(os.path.join(self.c.data, "postmaster.pid")) as f:
            return [int(f.readline())]

    def record(self, res, meter, record):
        res.update(server_cpu=meter["server"], client_cpu=meter["client"], mcpu=meter["mcpu"], busy=meter["busy"],
                   other=meter["other"], other_share=meter["other_share"], kernel_share=meter["kernel_share"],
                   steal_share=meter["steal_share"])
        if record:
            self.results.append(res)
        return res

    # ----- pg_influx over HTTP -----

    def http_load(self, db, bodies, encoding, label, record=True, trial=0):
        a, c, b = self.a, self.c, self.b
        b.truncate(db, "bench", ["cpu"])
        db.query("CHECKPOINT")
        procs = b.influx_procs(db)
        self.wait_quiet(self.pg_roots())
        meter = Meter(procs, self.pg_roots())
        load = send_requests(c.http_port, "/write?db=bench&precision=ns", bodies, a.connections,
                             encoding=encoding, timeout=a.timeout)
        m = meter.stop()
        rows = int(db.value("SELECT count(*) FROM bench.cpu"))
        ok = load.all_204(len(bodies)) and rows == a.lines
        lat = load.latencies_ms()
        res = dict(method=label, kind="http", encoding=encoding or "identity", trial=trial, rows=rows,
                   secs=load.secs, ok=ok, statuses=load.statuses(), errors=load.errors(),
                   cpu_listener=m["kinds"].get("influx listener"), cpu_workers=m["kinds"].get("influx worker"),
                   nworkers=sum(1 for k in procs.values() if k == "influx worker"),
                   lat_p50=percentile(lat, 50), lat_p99=percentile(lat, 99), lat_max=lat[-1] if lat else None)
        log(f"{label}{'' if record else ' (warm-up)'}: {rows:,} rows in {load.secs:.2f} s = "
            f"{rows / load.secs:,.0f} lines/s; answers {res['statuses']}; client CPU {m['client']:.2f} s; "
            f"other work {m['other_share'] * 100:.0f} % of the CPUs{top_other(m)}; request latency p50 "
            f"{fmt_num(res['lat_p50'], 0)} p99 {fmt_num(res['lat_p99'], 0)} ms")
        if not ok:
            self.ok = False
            self.notes.append(f"{label} (trial {trial}): answers {res['statuses']}, {rows:,} rows of {a.lines:,}; "
                              f"first errors: {res['errors']}. Server log tail:\n\n```\n{c.log_tail(15)}```")
        return self.record(res, m, record)

    def copy_load(self, db, record=True, trial=0):
        """bench/run.py's binary COPY (Bench.copy_binary's statement, one transaction, timed from
        the statement to the commit), with this script's CPU meter around the timed part."""
        a, b, v = self.a, self.b, self.v
        b.truncate(db, v.copy_schema, v.tables)
        db.query("CHECKPOINT")
        self.wait_quiet(self.pg_roots())
        meter = Meter({db.backend_pid: "COPY backend"}, self.pg_roots())
        t0 = time.monotonic()
        db.query("BEGIN")
        db.query(f"COPY {v.copy_schema}.cpu FROM '{b.table_file(v, 'binary', 'cpu')}' (FORMAT binary)",
                 timeout=a.timeout * 10)
        db.query("COMMIT")
        secs = time.monotonic() - t0
        m = meter.stop()
        rows = b.count(db, v.copy_schema, v.tables)
        log(f"COPY binary{'' if record else ' (warm-up)'}: {rows:,} rows in {secs:.2f} s = {rows / secs:,.0f} rows/s; "
            f"other work {m['other_share'] * 100:.0f} % of the CPUs{top_other(m)}")
        res = dict(method="COPY binary (server-side file)", kind="copy", encoding="", trial=trial,
                   rows=rows, secs=secs, ok=rows == a.lines)
        if rows != a.lines:
            self.ok = False
            self.notes.append(f"COPY loaded {rows:,} rows of {a.lines:,}")
        return self.record(res, m, record)

    def verify(self, db, what):
        diff = self.b.verify(db, self.v)
        passed = diff == 0
        self.checks.append((f"{what}: EXCEPT ALL against the COPY twin, both ways", passed,
                            "same rows as COPY" if passed else f"{diff} rows differ"))
        log(f"{what}: rows differing from COPY: {diff}")
        self.ok &= passed

    # ----- perf -----

    def perf_load(self, db, bodies, encoding):
        a, b = self.a, self.b
        if not shutil.which("perf"):
            self.notes.append("--perf: `perf` not found (apt-get install -y linux-perf): no profile")
            return
        procs = b.influx_procs(db)
        b.truncate(db, "bench", ["cpu"])
        db.query("CHECKPOINT")
        name = encoding or "plain"
        out = os.path.join(self.c.dir, f"perf-{name}.data")
        cmd = ["perf", "record", "-g", "-F", str(a.perf_freq), "-o", out, "-p", ",".join(map(str, procs))]
        log(f"perf: one more {name} load under `{' '.join(cmd)}`")
        with open(os.path.join(self.c.dir, "perf.log"), "a") as errf:
            p = subprocess.Popen(cmd, stdout=errf, stderr=subprocess.STDOUT)
            time.sleep(1.0)
            load = send_requests(self.c.http_port, "/write?db=bench&precision=ns", bodies, a.connections,
                                 encoding=encoding, timeout=a.timeout)
            p.send_signal(signal.SIGINT)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        rows = int(db.value("SELECT count(*) FROM bench.cpu"))
        rep = benchrun.run(["perf", "report", "-i", out, "--no-children", "--stdio", "-g", "none",
                            "--sort", "pid,dso,sym", "--percent-limit", "0.2"], check=False, timeout=300)
        per = {}   # pid -> [(pct, dso, sym)]; a stripped object's addresses summed as one row
        for line in rep.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\d+):(\S+)\s+(\S+)\s+\[.\]\s+(.*)$", line)
            if m:
                sym = m.group(5).strip()
                if sym.startswith("0x"):
                    sym = "(addresses without symbols)"
                acc = per.setdefault(int(m.group(2)), {})
                key = (m.group(4), sym)
                acc[key] = acc.get(key, 0.0) + float(m.group(1))
        per = {pid: sorted(((pct, dso, sym) for (dso, sym), pct in acc.items()), reverse=True)
               for pid, acc in per.items()}
        # by object, per process kind: where the time goes in broad strokes
        rep = benchrun.run(["perf", "report", "-i", out, "--no-children", "--stdio", "-g", "none",
                            "--sort", "pid,dso"], check=False, timeout=300)
        dsos = {}
        for line in rep.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\d+):(\S+)\s+(\S+)\s*$", line)
            if m:
                kind = procs.get(int(m.group(2)), "?")
                d = dsos.setdefault(kind, {})
                d[m.group(4)] = d.get(m.group(4), 0.0) + float(m.group(1))
        self.profiles.append(dict(name=name, cmd=" ".join(cmd), procs=procs, per=per, dsos=dsos,
                                  total={pid: sum(x[0] for x in v) for pid, v in per.items()},
                                  secs=load.secs, rows=rows, statuses=load.statuses(),
                                  rate=rows / load.secs if load.secs else None))
        log(f"perf {name}: {rows:,} rows in {load.secs:.2f} s under perf")
        if not per:
            self.notes.append(f"perf report ({name}) gave nothing: {rep.stderr[-500:]}")

    # ----- InfluxDB -----

    def influxdb_loads(self, bodies, gz_bodies):
        a = self.a
        if not shutil.which("influxd"):
            self.notes.append("InfluxDB: `influxd` not found (apt-get install -y influxdb): skipped")
            return
        ix = Influxd(a)
        self.influxdb_info = ix
        try:
            ix.start()
            if a.nice:
                self.autogroups["influxd"] = renice(ix.p.pid, a.nice)
            plan = [("plain", None, bodies, False)] * a.influxdb_warmup
            for t in range(a.influxdb_repeat):
                plan += [("plain", None, bodies, True), ("gzip", "gzip", gz_bodies, True)]
            for trial, (name, enc, bs, record) in enumerate(plan):
                ix.query("DROP DATABASE bench")
                ix.query("CREATE DATABASE bench")
                self.wait_quiet([ix.p.pid])
                meter = Meter({ix.p.pid: "influxd"}, [ix.p.pid])
                load = send_requests(ix.port, "/write?db=bench&precision=ns", bs, a.connections,
                                     encoding=enc, timeout=a.timeout)
                m = meter.stop()
                rows = ix.count("bench")
                ok = load.all_204(len(bs)) and rows == a.lines
                lat = load.latencies_ms()
                label = f"InfluxDB 1.6 /write, {name}"
                log(f"{label}{'' if record else ' (warm-up)'}: {rows:,} points in {load.secs:.2f} s = "
                    f"{rows / load.secs:,.0f} lines/s; answers {load.statuses()}; influxd CPU {m['server']:.1f} s; "
                    f"other work {m['other_share'] * 100:.0f} % of the CPUs{top_other(m)}")
                if not ok:
                    self.ok = False
                    self.notes.append(f"{label}: answers {load.statuses()}, {rows:,} points of {a.lines:,}; "
                                      f"first errors: {load.errors()}; influxd log:\n\n```\n{ix.log_tail(10)}```")
                self.record(dict(method=label, kind="influxdb", encoding=enc or "identity", trial=trial,
                                 rows=rows, secs=load.secs, ok=ok, statuses=load.statuses(),
                                 lat_p50=percentile(lat, 50), lat_p99=percentile(lat, 99),
                                 lat_max=lat[-1] if lat else None), m, record)
            ix.hwm = benchrun.proc_mem(ix.p.pid)[0]
        finally:
            ix.stop()
            if not a.keep:
                shutil.rmtree(ix.dir, ignore_errors=True)
            else:
                log(f"kept {ix.dir}")

    # ----- latency at a fraction of the maximum -----

    def timeline(self, load, t0, step=1.0):
        """Rows answered per second of the run, and the p99 latency of the requests answered in
        each second (from their scheduled time)."""
        out = {}
        for r in load.reqs:
            k = int((r[4] - t0) // step)
            out.setdefault(k, []).append((r[4] - r[2]) * 1000)
        return [(k * step, len(v), percentile(sorted(v), 99)) for k, v in sorted(out.items())]

    def sustained_max(self, db, bodies):
        """Closed loop for --max-seconds under the latency run's conditions (autovacuum on, the
        table growing from empty): the rate the server keeps up, not the one of a 1M-row burst."""
        a, c, b = self.a, self.c, self.b
        b.truncate(db, "bench", ["cpu"])
        db.query("CHECKPOINT")
        st0 = self.pg_stats(db)
        self.wait_quiet(self.pg_roots())
        meter = Meter(b.influx_procs(db), self.pg_roots())
        load = send_requests(c.http_port, "/write?db=bench&precision=ns", bodies, a.connections,
                             duration=a.max_seconds, timeout=a.timeout)
        m = meter.stop()
        st1 = self.pg_stats(db)
        rows = int(db.value("SELECT count(*) FROM bench.cpu"))
        per_body = [body.count(b"\n") for body in bodies]
        expected = sum(per_body[r[0] % len(bodies)] for r in load.reqs)
        ok = all(r[1] == 204 for r in load.reqs) and rows == expected
        t0 = min(r[3] for r in load.reqs)
        self.sustained = dict(rate=rows / load.secs, rows=rows, secs=load.secs, requests=len(load.reqs),
                              statuses=load.statuses(), ok=ok, other_share=m["other_share"],
                              timeline=self.timeline(load, t0, step=2.0),
                              pgstats={k: st1[k] - st0[k] for k in st0},
                              lat_p99=percentile(load.latencies_ms(), 99))
        log(f"sustained maximum: {rows:,} rows in {load.secs:.1f} s = {rows / load.secs:,.0f} lines/s closed loop; "
            f"answers {load.statuses()}; other work {m['other_share'] * 100:.0f} % of the CPUs")
        if not ok:
            self.ok = False
            self.notes.append(f"sustained maximum run: answers {load.statuses()}, {rows:,} rows of {expected:,}")

    def latency_run(self, db, bodies, base_name, max_lines):
        a, c, b = self.a, self.c, self.b
        lines_per_req = a.lines / len(bodies)
        rate = a.latency_load * max_lines / lines_per_req  # requests/s
        count = max(1, int(rate * a.latency_seconds))
        b.truncate(db, "bench", ["cpu"])
        db.query("CHECKPOINT")
        flush = db.value("SHOW influx.flush_interval")
        flush_ms = int(db.value("SELECT setting FROM pg_settings WHERE name = 'influx.flush_interval'"))
        log(f"latency: {a.latency_load * 100:.0f} % of the {base_name} maximum {max_lines:,.0f} lines/s = "
            f"{rate:.1f} requests/s ({rate * lines_per_req:,.0f} lines/s) for {a.latency_seconds:.0f} s")
        procs = b.influx_procs(db)
        st0 = self.pg_stats(db)
        self.wait_quiet(self.pg_roots())
        sampler = Sampler(self.pg_roots())
        meter = Meter(procs, self.pg_roots())
        sampler.start()
        load = send_requests(c.http_port, "/write?db=bench&precision=ns", bodies, a.connections,
                             rate=rate, count=count, timeout=a.timeout)
        m = meter.stop()
        samples = sampler.stop()
        st1 = self.pg_stats(db)
        rows = int(db.value("SELECT count(*) FROM bench.cpu"))
        lat = load.latencies_ms(since_scheduled=True)
        lag = sorted((r[3] - r[2]) * 1000 for r in load.reqs)
        per_body = [body.count(b"\n") for body in bodies]
        expected_rows = sum(per_body[k % len(bodies)] for k in range(count))
        ok_all = load.all_204(count) and rows == expected_rows
        t0 = min(r[2] for r in load.reqs)
        res = dict(base=base_name, max_lines=max_lines, load=a.latency_load, rate=rate, lines_rate=rate * lines_per_req,
                   count=count, secs=load.secs, achieved=rows / load.secs if load.secs else None, rows=rows,
                   expected_rows=expected_rows, statuses=load.statuses(), errors=load.errors(), ok_all=ok_all,
                   lat=lat, p50=percentile(lat, 50), p95=percentile(lat, 95), p99=percentile(lat, 99),
                   max=lat[-1] if lat else None, lag_p99=percentile(lag, 99), lag_max=lag[-1] if lag else None,
                   flush=flush, flush_ms=flush_ms, target=flush_ms + 100, server=m["server"], busy=m["busy"],
                   other_share=m["other_share"], client_cpu=m["client"], timeline=self.timeline(load, t0),
                   samples=samples, pgstats={k: st1[k] - st0[k] for k in st0})
        res["pass"] = ok_all and res["p99"] is not None and res["p99"] <= res["target"]
        log(f"latency ({base_name}): {len(lat)} requests, answers {res['statuses']}, p50 {fmt_num(res['p50'], 1)} "
            f"p95 {fmt_num(res['p95'], 1)} p99 {fmt_num(res['p99'], 1)} max {fmt_num(res['max'], 1)} ms "
            f"(target p99 <= {res['target']} ms); {rows:,} rows of {expected_rows:,}; "
            f"other work {m['other_share'] * 100:.0f} % of the CPUs")
        if not ok_all:
            self.ok = False
            self.notes.append(f"latency run ({base_name}): answers {res['statuses']}, {rows:,} rows of "
                              f"{expected_rows:,}; first errors: {res['errors']}")
        self.latency.append(res)

    def latency_runs(self, db, bodies):
        a = self.a
        plain = [r for r in self.results if r["kind"] == "http" and r["encoding"] == "identity" and r["ok"]]
        db.query("ALTER SYSTEM SET autovacuum = on")
        db.query("SELECT pg_reload_conf()")
        if "sustained" in a.latency_base:
            self.sustained_max(db, bodies)
            if self.sustained["ok"]:
                self.latency_run(db, bodies, "sustained", self.sustained["rate"])
        if "burst" in a.latency_base:
            if plain:
                self.latency_run(db, bodies, "burst", median(r["rows"] / r["secs"] for r in plain))
            else:
                self.notes.append("latency run (burst) skipped: no successful plain HTTP load")

    # ----- main -----

    def main(self):
        a = self.a
        self.c = c = Cluster(a, prefix="pg_influx_http.")
        self.b = b = benchrun.Bench(a)
        b.cluster = c
        v = self.v = benchrun.Variant("typed", "cpu", "typed", False, "typed table")
        v.influx_schema = "bench"
        db = None
        try:
            settings = {"fsync": "on", "synchronous_commit": "on", "influx.schema": "'bench'"}
            settings.update(kv.split("=", 1) for kv in a.set)
            c.init(settings)
            c.start()
            if a.nice:
                self.autogroups = {"postmaster": renice(self.pg_roots()[0], a.nice)}
            db = benchrun.Psql(c.dir, c.port)
            db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
            lp = os.path.join(c.files, "cpu.lp")
            log(f"generating {a.lines:,} cpu lines and the same rows as binary COPY")
            common = ["--dataset", "cpu", "--lines", a.lines, "--seed", a.seed, "--threads", 2]
            benchrun.loadgen(["--mode", "lp", "--out", lp] + common)
            binf = os.path.join(c.files, "cpu_typed.bin")
            benchrun.loadgen(["--mode", "binary", "--shape", "typed", "--out", binf] + common)
            for n in (lp, binf):
                os.chmod(n, 0o644)
            b.files[("typed", "binary")] = binf
            ddl = benchrun.run([benchrun.LOADGEN, "--mode", "ddl", "--dataset", "cpu", "--shape", "typed"]).stdout
            v.tables, v.ddl = ["cpu"], ddl
            db.query(f"CREATE SCHEMA {v.copy_schema}")
            db.query(ddl.replace("public.", v.copy_schema + "."))
            benchrun.writer_schema(db, "bench", ddl)
            bodies = make_bodies(lp, a.lines_per_request)
            t = time.monotonic()
            gz = gzip_bodies(bodies, a.gzip_level)
            self.sizes = dict(requests=len(bodies), plain=sum(map(len, bodies)), gzip=sum(map(len, gz)),
                              gzip_secs=time.monotonic() - t)
            log(f"{len(bodies)} requests of {a.lines_per_request:,} lines: {self.sizes['plain'] / 1e6:.0f} MB plain, "
                f"{self.sizes['gzip'] / 1e6:.0f} MB gzip (level {a.gzip_level}, {self.sizes['gzip_secs']:.1f} s)")
            if not b.wait_listener(db, timeout=30):
                raise SystemExit(f"listener not ready: {b.listener_status(db)}\n{c.log_tail()}")
            self.server_so = self.loaded_library(db)
            self.server_nice = sorted({proc_nice(pid) for pid in b.influx_procs(db)})
            self.settings = db.query(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name LIKE 'influx.%' "
                "OR name IN ('shared_buffers','synchronous_commit','fsync','max_wal_size','wal_level',"
                "'autovacuum','checkpoint_timeout','wal_sync_method') ORDER BY name")
            self.pg_version = db.value("SHOW server_version")
            # warm-up: every method once, untimed; then the comparison of every column
            for w in range(a.warmup):
                log(f"warm-up {w + 1} of {a.warmup} (not recorded)")
                self.copy_load(db, record=False)
                self.http_load(db, bodies, None, "pg_influx HTTP, plain", record=False)
                self.http_load(db, gz, "gzip", "pg_influx HTTP, gzip", record=False)
            if a.warmup and not a.no_verify:
                self.verify(db, "warm-up gzip load")
            for trial in range(1, a.repeat + 1):
                self.http_load(db, bodies, None, "pg_influx HTTP, plain", trial=trial)
                self.http_load(db, gz, "gzip", "pg_influx HTTP, gzip", trial=trial)
                self.copy_load(db, trial=trial)
            if not a.no_verify:
                self.verify(db, f"trial {a.repeat} gzip load")
            if a.perf:
                self.perf_load(db, bodies, None)
                self.perf_load(db, gz, "gzip")
            if a.influxdb:
                self.influxdb_loads(bodies, gz)
            if a.latency_seconds > 0 and a.latency_base:
                self.latency_runs(db, bodies)
        finally:
            c.finish([db], a.keep)
        return self.report()

    def loaded_library(self, db):
        return benchrun.loaded_library(self.b.influx_procs(db))

    # ----- report -----

    def summary(self, results=None):
        """Per method: median rate, range, and medians of the CPU columns."""
        groups = {}
        for r in self.results if results is None else results:
            groups.setdefault(r["method"], []).append(r)
        out = {}
        for m, rs in groups.items():
            good = [r for r in rs if r["ok"] and r["secs"]]
            rates = [r["rows"] / r["secs"] for r in good]

            def med(key, per_rows=True):
                xs = [(r[key] / r["rows"] * 1e6 if per_rows else r[key]) for r in good
                      if r.get(key) is not None and r["rows"]]
                return median(xs) if xs else None
            statuses = {}
            for r in rs:
                for k, n in (r.get("statuses") or {}).items():
                    statuses[k] = statuses.get(k, 0) + n
            out[m] = dict(kind=rs[0]["kind"], encoding=rs[0]["encoding"], n=len(rs), ok=len(good) == len(rs),
                          rate=median(rates) if rates else None, lo=min(rates, default=None),
                          hi=max(rates, default=None), secs=median([r["secs"] for r in good]) if good else None,
                          rows=rs[-1]["rows"], server=med("server_cpu"), client=med("client_cpu"),
                          machine=med("mcpu"), busy=med("busy", False), other=med("other_share", False),
                          kernel=med("kernel_share", False), steal=med("steal_share", False),
                          listener=med("cpu_listener"), workers=med("cpu_workers"),
                          nworkers=rs[-1].get("nworkers"), statuses=statuses,
                          lat_p50=med("lat_p50", False), lat_p99=med("lat_p99", False),
                          client_share=median([r["client_cpu"] / r["secs"] for r in good]) if good else None)
        return out

    def report(self):
        a = self.a
        now = datetime.datetime.now()
        S = self.summary()
        copy = next((s for s in S.values() if s["kind"] == "copy"), None)
        ixs = {s["encoding"]: s for s in S.values() if s["kind"] == "influxdb"}
        L = [f"# pg_influx HTTP write endpoint benchmark — {now:%Y-%m-%d %H:%M:%S}\n"]
        L.append(f"- machine: {benchrun.machine_line()}")
        L.append(f"- load average (1 min) before / after the run: {self.load_before:.2f} / {os.getloadavg()[0]:.2f}; "
                 f"the *other work* columns give, per load, the share of both CPUs busy with processes that "
                 f"were not the benchmark's")
        so, sha = getattr(self, "server_so", (None, None))
        L.append(f"- PostgreSQL {getattr(self, 'pg_version', '?')} (`{benchrun.BINDIR}`), pg_influx "
                 f"{benchrun.repo_revision()}, library `{so}` (sha256 {sha}…)")
        ix = self.influxdb_info
        if ix:
            L.append(f"- {ix.version} (Debian package `influxdb`), run by this script as user `influxdb`, not the "
                     f"packaged service: `reporting-disabled = true`, `[data] wal-fsync-delay = \"0s\"` (fsync of "
                     f"the WAL on every write), meta, data and WAL in a temporary directory on the same disk as "
                     f"PostgreSQL's, HTTP on 127.0.0.1; everything else at its default (`index-version = \"inmem\"`, "
                     f"HTTP access log on)")
        L.append(f"- command: `{' '.join(sys.argv)}`")
        if self.waits:
            busy_starts = sum(1 for _, o in self.waits if o > a.quiet_threshold)
            L.append(f"- other work: before each of its {len(self.waits)} loads (warm-ups included) the script waited for a half "
                     f"second in which other processes took ≤ {a.quiet_threshold * 100:.0f} % of the CPUs (at most "
                     f"{a.quiet_wait:.0f} s; `--quiet-wait`): {sum(w for w, _ in self.waits):.0f} s of waiting in all, "
                     f"{busy_starts} load(s) started on a busy machine anyway. Each load's *other work* column says "
                     f"how much the other processes took while it ran")
        if a.nice:
            ags = getattr(self, "autogroups", {})
            L.append(f"- priority (`--nice {a.nice}`): this client, the cluster and influxd ran at nice {a.nice}, and "
                     f"so did their scheduler autogroups (autogroups share the CPUs first; the postmaster and "
                     f"influxd each start their own): " + ", ".join(f"{k} `{v}`" for k, v in ags.items())
                     + f"; the listener and workers showed nice {getattr(self, 'server_nice', '?')}. Other work on "
                     f"the machine kept its own priority")
        sz = getattr(self, "sizes", None)
        if sz:
            L.append(f"- data: {a.lines:,} Telegraf-shaped `cpu` lines (bench/loadgen, seed {a.seed}: tags `host` "
                     f"(100) and `cpu` (5), ten float fields `usage_user` … `usage_guest_nice`, ns timestamps) as "
                     f"{sz['requests']} requests of {a.lines_per_request:,} lines: {sz['plain'] / 1e6:.1f} MB plain, "
                     f"{sz['gzip'] / 1e6:.1f} MB gzip (level {a.gzip_level}, compressed before any clock runs); "
                     f"`POST /write?db=bench&precision=ns` to both servers")
        L.append(f"- client: this script, {a.connections} keep-alive HTTP/1.1 connections (Python `http.client`, "
                 f"one thread each), each sending its next request only after reading the answer to the previous "
                 f"one; time from the first request sent to the last answer read (pg_influx answers 204 after the "
                 f"commit). COPY: `COPY … FROM '<file>' (FORMAT binary)`, statement to commit, one transaction")
        L.append(f"- {a.warmup} untimed warm-up load of every pg_influx/COPY method, then {a.repeat} timed trials "
                 f"(plain, gzip, COPY, interleaved), each into an emptied table after a `CHECKPOINT`; InfluxDB: "
                 f"{a.influxdb_warmup} warm-up load, then {a.influxdb_repeat} × (plain, gzip), each into a freshly "
                 f"created database. Rates are medians, ranges in brackets")
        st = getattr(self, "settings", [])
        if st:
            L.append("- PostgreSQL settings: " + ", ".join(
                f"`{k}={v}`" for k, v in st if k not in ("influx.tcp_port", "influx.udp_port", "influx.http_port"))
                + " (autovacuum on for the latency runs)")
        L.append("")

        # throughput
        L.append("## Throughput (same rows, same run)\n")
        L.append("| method | rows | seconds | lines/s (median, range) | vs COPY binary | vs InfluxDB 1.6 (same encoding) "
                 "| server CPU s / M rows | client CPU s / M rows | machine CPU s / M rows | machine busy "
                 "| other work | request latency p50 / p99 ms | answers |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        # each trial's HTTP load against the COPY load of the same trial, seconds apart
        copy_by_trial = {r["trial"]: r["rows"] / r["secs"] for r in self.results if r["kind"] == "copy" and r["ok"]}
        for m, s in S.items():
            s["paired"] = sorted(r["rows"] / r["secs"] / copy_by_trial[r["trial"]] for r in self.results
                                 if r["method"] == m and r["kind"] == "http" and r["ok"] and r["trial"] in copy_by_trial)
        for m, s in S.items():
            vs_copy = s["rate"] / copy["rate"] if s["rate"] and copy and copy["rate"] else None
            ixr = ixs.get(s["encoding"])
            vs_ix = s["rate"] / ixr["rate"] if s["kind"] == "http" and ixr and ixr["rate"] and s["rate"] else None
            ans = ", ".join(f"{n} × {k}" for k, n in s["statuses"].items()) if s["statuses"] else "-"
            spread = f" ({fmt_rate(s['lo'])}-{fmt_rate(s['hi'])})" if s["n"] > 1 and s["lo"] else ""
            lat = f"{fmt_num(s['lat_p50'], 0)} / {fmt_num(s['lat_p99'], 0)}" if s["lat_p50"] is not None else "-"
            name = f"**{m}**" if s["kind"] == "http" else m
            pct = (lambda x: "-" if x is None else f"{x * 100:.0f} %")
            paired = (f" (per trial {s['paired'][0]:.2f}-{s['paired'][-1]:.2f})" if len(s["paired"]) > 1 else "")
            L.append(f"| {name} | {s['rows']:,} | {fmt_num(s['secs'])} | {fmt_rate(s['rate'])}{spread} | "
                     f"{fmt_num(vs_copy)}{paired} | {fmt_num(vs_ix, 1) if vs_ix else '-'} | {fmt_num(s['server'])} | "
                     f"{fmt_num(s['client']) if s['kind'] != 'copy' else '-'} | {fmt_num(s['machine'])} | "
                     f"{pct(s['busy'])} | {pct(s['other'])} | {lat} | {ans} |")
        L.append("")
        L.append("vs COPY binary: the median rate over COPY's median rate; in brackets the range of each trial's "
                 "rate over the rate of the COPY load of the same trial, seconds later.")
        L.append("")
        L.append("Server CPU: pg_influx listener + workers, the COPY backend, `influxd` (all threads). Client CPU: "
                 "this script (all its threads, with the kernel's work for its sockets). Machine CPU: every busy "
                 "CPU second of the machine during the load (`/proc/stat`), WAL writer and client included; "
                 "machine busy: that as a share of both CPUs; other work: the part of it spent in processes that "
                 "are neither this script nor the cluster (or influxd) — other users of the machine.")
        ks = [s["kernel"] for s in S.values() if s["kernel"] is not None]
        st_ = [s["steal"] for s in S.values() if s["steal"] is not None]
        if ks:
            L.append("")
            L.append(f"Not in either column: kernel threads with irq/softirq time (writeback, journal, loopback "
                     f"network; mostly the benchmark's own I/O) took {min(ks) * 100:.0f}-{max(ks) * 100:.0f} % of the "
                     f"CPUs (medians per method), hypervisor steal {min(st_) * 100:.0f}-{max(st_) * 100:.0f} %.")
        hs = [s for s in S.values() if s["kind"] == "http"]
        if hs:
            L.append("")
            L.append("pg_influx processes, CPU s / M rows: " + "; ".join(
                f"{m.replace('pg_influx ', '')}: listener {fmt_num(s['listener'])} + {s['nworkers']} workers "
                f"{fmt_num(s['workers'])}" for m, s in S.items() if s["kind"] == "http"))
            shares = [s["client_share"] for s in hs if s["client_share"] is not None]
            if shares:
                L.append("")
                L.append(f"Is the client the bottleneck? During the HTTP loads this script used "
                         f"{min(shares) * 100:.0f}-{max(shares) * 100:.0f} % of one CPU (all threads, kernel send "
                         f"work included), against {fmt_num(min(s['server'] for s in hs if s['server']))}-"
                         f"{fmt_num(max(s['server'] for s in hs if s['server']))} server CPU s per million rows.")

        # the same, only the loads during which the machine was otherwise quiet
        thr = a.quiet_threshold
        quiet = [r for r in self.results if r["ok"] and (r.get("other_share") or 0) <= thr]
        Q = self.summary(quiet) if quiet else {}
        qcopy = next((s for s in Q.values() if s["kind"] == "copy"), None)
        qix = {s["encoding"]: s for s in Q.values() if s["kind"] == "influxdb"}
        L.append(f"\n### Only the loads during which other work took ≤ {thr * 100:.0f} % of the CPUs\n")
        if Q:
            L.append("| method | loads | lines/s (median, range) | vs COPY binary | vs InfluxDB 1.6 (same encoding) "
                     "| server CPU s / M rows |")
            L.append("|---|--:|--:|--:|--:|--:|")
            for m, s in Q.items():
                vs_copy = s["rate"] / qcopy["rate"] if qcopy and qcopy["rate"] and s["rate"] else None
                ixr = qix.get(s["encoding"])
                vs_ix = s["rate"] / ixr["rate"] if s["kind"] == "http" and ixr and ixr["rate"] else None
                spread = f" ({fmt_rate(s['lo'])}-{fmt_rate(s['hi'])})" if s["n"] > 1 else ""
                L.append(f"| {m} | {s['n']} of {S[m]['n']} | {fmt_rate(s['rate'])}{spread} | {fmt_num(vs_copy)} "
                         f"| {fmt_num(vs_ix, 1) if vs_ix else '-'} | {fmt_num(s['server'])} |")
            L.append("\nFewer loads, but none of them shared the CPUs with other work: on a machine of its own "
                     "these are the numbers to expect. A method missing here had no such load.")
        else:
            L.append("None: other work shared the CPUs during every load of this run.")

        # targets
        L.append("\n## Targets\n")
        L.append(f"| target | all loads | result | loads with other work ≤ {thr * 100:.0f} % | result |")
        L.append("|---|--:|---|--:|---|")
        self.targets = []

        def verdict(value, want, ge):
            if value is None:
                return "n/a", "not measured"
            ok = value >= want if ge else value <= want
            return value, "**met**" if ok else "**MISSED**"

        def target(name, value, want, unit="×", ge=True, qvalue=None, quiet_col=True):
            v, res = verdict(value, want, ge)
            qv, qres = verdict(qvalue, want, ge) if quiet_col else ("-", "")
            self.targets.append((name, value, res, qvalue, qres))
            fmt = (lambda x: x if isinstance(x, str) else f"{x:.2f}{unit}")
            L.append(f"| {name} | {fmt(v)} | {res} | {fmt(qv)} | {qres} |")
        for m, s in S.items():
            if s["kind"] != "http":
                continue
            enc = "gzip" if s["encoding"] == "gzip" else "plain"
            q = Q.get(m)
            qratio = q["rate"] / qcopy["rate"] if q and qcopy and q["rate"] and qcopy["rate"] else None
            target(f"HTTP {enc} ≥ 0.8 × COPY binary", s["rate"] / copy["rate"] if copy and copy["rate"] and s["rate"]
                   else None, 0.8, qvalue=qratio)
            ixr = ixs.get(s["encoding"])
            qixr = qix.get(s["encoding"])
            target(f"HTTP {enc} ≥ 8 × InfluxDB 1.6 ({enc})",
                   s["rate"] / ixr["rate"] if ixr and ixr["rate"] and s["rate"] else None, 8.0,
                   qvalue=q["rate"] / qixr["rate"] if q and qixr and qixr["rate"] and q["rate"] else None)
        for lt in self.latency:
            target(f"p99 request latency at {lt['load'] * 100:.0f} % of the {lt['base']} maximum "
                   f"({lt['lines_rate']:,.0f} lines/s) ≤ influx.flush_interval + 100 ms = {lt['target']} ms",
                   lt["p99"] if lt["ok_all"] else None, lt["target"], unit=" ms", ge=False, quiet_col=False)
        if not self.latency:
            target("p99 request latency at 50 % of the maximum ≤ influx.flush_interval + 100 ms", None, 0,
                   quiet_col=False)
        L.append(f"\nThe latency runs last {a.latency_seconds:.0f} s each; their *other work* is in the table below.")

        # latency
        su = self.sustained
        if self.latency:
            L.append(f"\n## Request latency at {a.latency_load * 100:.0f} % of the maximum load\n")
            L.append("Two readings of *the maximum*: **sustained**, a closed-loop run (same connections, same "
                     "requests in turn) of "
                     f"{a.max_seconds:.0f} s under the latency runs' conditions (autovacuum on, table growing from "
                     f"empty); **burst**, the median of the 1M-row plain loads above. Each paced run offers "
                     f"{a.latency_load * 100:.0f} % of it as requests of {a.lines_per_request:,} lines at fixed "
                     f"intervals for {a.latency_seconds:.0f} s over {a.connections} connections; a request waits for "
                     f"a free connection if all are busy, and its latency counts from its scheduled time "
                     f"(no coordinated omission).\n")
            if su:
                L.append(f"Sustained maximum: {su['rows']:,} rows in {su['secs']:.1f} s = **{su['rate']:,.0f} "
                         f"lines/s**, answers {su['statuses']}, request latency p99 {fmt_num(su['lat_p99'], 0)} ms, "
                         f"other work {su['other_share'] * 100:.0f} % of the CPUs; lines/s per 2 s: "
                         + ", ".join(f"{n * a.lines_per_request / 2 / 1000:.0f}k" for _, n, _ in su["timeline"])
                         + f"; {fmt_pgstats(su['pgstats'])}\n")
            L.append("| maximum | offered lines/s (requests/s) | requests | answers | rows committed | achieved lines/s "
                     "| p50 ms | p95 ms | p99 ms | max ms | target p99 ≤ | result | send lag p99 / max ms "
                     "| other work |")
            L.append("|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|")
            for lt in self.latency:
                ans = ", ".join(f"{n} × {k}" for k, n in lt["statuses"].items())
                L.append(f"| {lt['base']} {lt['max_lines']:,.0f} | {lt['lines_rate']:,.0f} ({lt['rate']:.1f}) "
                         f"| {lt['count']:,} | {ans} | {lt['rows']:,} of {lt['expected_rows']:,} "
                         f"| {fmt_rate(lt['achieved'])} | {fmt_num(lt['p50'], 1)} | {fmt_num(lt['p95'], 1)} "
                         f"| {fmt_num(lt['p99'], 1)} | {fmt_num(lt['max'], 1)} | {lt['target']} ms "
                         f"| {'**met**' if lt['pass'] else '**MISSED**'} "
                         f"| {fmt_num(lt['lag_p99'], 1)} / {fmt_num(lt['lag_max'], 1)} "
                         f"| {lt['other_share'] * 100:.0f} % |")
            L.append(f"\nSend lag: how late a request left after its scheduled time (all {a.connections} connections "
                     f"busy, or the client late). `influx.flush_interval = {self.latency[0]['flush']}`.")
            for lt in self.latency:
                tl = lt["timeline"]
                L.append(f"\n{lt['base']}: {fmt_pgstats(lt['pgstats'])}. Per second: requests answered / p99 ms of "
                         f"those / % of the CPUs other work took: "
                         + ", ".join(f"{n}/{p:.0f}/{other_at(lt['samples'], t)}" for t, n, p in tl))

        # profile
        for pf in self.profiles:
            L.append(f"\n## Profile: {pf['name']} (`perf record -g`, one extra untimed load)\n")
            L.append(f"`{pf['cmd']}`; that load: {pf['rows']:,} rows in {fmt_num(pf['secs'])} s "
                     f"({fmt_rate(pf['rate'])} lines/s under perf), answers {pf['statuses']}. Self time, as a share "
                     f"of all samples of the listener and the workers.\n")
            L.append("By object: " + "; ".join(
                f"{kind}: " + ", ".join(f"{d} {p:.0f} %" for d, p in sorted(ds.items(), key=lambda x: -x[1])[:5])
                for kind, ds in sorted(pf["dsos"].items())) + "\n")
            for pid, syms in sorted(pf["per"].items(), key=lambda kv: -pf["total"][kv[0]]):
                kind = pf["procs"].get(pid, "?")
                L.append(f"**{kind}** (pid {pid}, {pf['total'][pid]:.1f} % of the samples in symbols ≥ 0.2 %):\n")
                L.append("| % | object | symbol |")
                L.append("|--:|---|---|")
                for pct_, dso, sym in syms[:a.perf_top]:
                    L.append(f"| {pct_:.1f} | {dso} | `{sym[:90]}` |")
                L.append("")

        if self.checks:
            L.append("\n## Checks\n")
            for what, passed, detail in self.checks:
                L.append(f"- {what}: {detail}")
        if self.notes:
            L.append("\n## Notes\n")
            for n in self.notes:
                L.append(f"- {n}")

        os.makedirs(a.results_dir, exist_ok=True)
        stamp = now.strftime("%Y%m%d-%H%M%S")
        png = self.plot(os.path.join(a.results_dir, f"http-{stamp}.png"), S, copy, ixs, Q)
        if png:
            L.append(f"\n![lines/s per method; request latency at {int(a.latency_load * 100)} % load]"
                     f"({os.path.basename(png)})")
        else:
            L.append("\n## Chart\n")
            L.append("```")
            L.extend(self.ascii_chart(S))
            L.append("```")
        text = "\n".join(L) + "\n"
        path = os.path.join(a.results_dir, f"http-{stamp}.md")
        with open(path, "w") as f:
            f.write(text)
        print(text)
        log(f"wrote {path}" + (f" and {png}" if png else ""))
        return 0 if self.ok else 1

    def ascii_chart(self, S):
        top = max((s["rate"] or 0 for s in S.values()), default=0) or 1
        out = [f"{m[:34]:34} {'#' * int(50 * (s['rate'] or 0) / top):50} {fmt_rate(s['rate'])}"
               for m, s in S.items()]
        for lt in self.latency:
            out.append(f"latency at {lt['load'] * 100:.0f} % of {lt['base']}: p50 {fmt_num(lt['p50'], 0)} "
                       f"p99 {fmt_num(lt['p99'], 0)} ms (target {lt['target']} ms)")
        return out

    def plot(self, path, S, copy, ixs, Q=None):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log("matplotlib missing (apt-get install -y python3-matplotlib): ASCII chart instead")
            return None
        fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1.3, 1, 1]})
        names = list(S)
        rates = [S[m]["rate"] or 0 for m in names]
        colors = ["tab:blue" if S[m]["kind"] == "http" else "tab:gray" if S[m]["kind"] == "copy" else "tab:orange"
                  for m in names]
        y = list(range(len(names)))
        ax1.barh(y, rates, color=colors)
        for m, i in zip(names, y):
            s = S[m]
            if s["lo"] and s["hi"] and s["n"] > 1:
                ax1.plot([s["lo"], s["hi"]], [i, i], color="black", lw=1)
            ax1.text(max(s["rate"] or 0, s["hi"] or 0) * 1.01, i, f" {fmt_rate(s['rate'])}", va="center", fontsize=8)
        qs = [(i, Q[m]["rate"]) for m, i in zip(names, y) if Q and m in Q and Q[m]["rate"]]
        if qs:
            ax1.plot([q[1] for q in qs], [q[0] for q in qs], "kD", ms=5,
                     label=f"median of the loads with other work ≤ {self.a.quiet_threshold * 100:.0f} %")
        from matplotlib.ticker import FuncFormatter
        ax1.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
        ax1.set_yticks(y)
        ax1.set_yticklabels([m.replace(" (server-side file)", "") for m in names], fontsize=8)
        ax1.invert_yaxis()
        if copy and copy["rate"]:
            ax1.axvline(0.8 * copy["rate"], color="gray", ls="--", lw=1, label="target: 0.8 × COPY binary")
        ixr = ixs.get("identity")
        if ixr and ixr["rate"]:
            ax1.axvline(8 * ixr["rate"], color="tab:orange", ls=":", lw=1.2, label="target: 8 × InfluxDB 1.6 (plain)")
        ax1.set_xlabel("lines (rows) per second: median of the trials, line: range")
        ax1.set_xlim(0, max(rates + [s["hi"] or 0 for s in S.values()] + [1]) * 1.3)
        ax1.legend(fontsize=8, loc="lower right")
        ax1.set_title(f"{self.a.lines:,} cpu lines, {self.a.connections} requests of "
                      f"{self.a.lines_per_request:,} lines in flight", fontsize=10)
        ax1.grid(True, axis="x", alpha=0.3)
        if self.latency:
            top = 0
            for lt, color in zip(self.latency, ("tab:blue", "tab:purple", "tab:green")):
                xs = lt["lat"]
                if not xs:
                    continue
                ys = [100 * (i + 1) / len(xs) for i in range(len(xs))]
                lab = f"{lt['base']}: {lt['lines_rate'] / 1000:,.0f}k lines/s, p99 {lt['p99']:.0f} ms"
                ax2.plot(xs, ys, color=color, label=lab)
                tl = lt["timeline"]
                ax3.plot([t for t, _, _ in tl], [p for _, _, p in tl], color=color, marker=".",
                         label=f"{lt['base']}: p99 per second")
                if lt.get("samples"):
                    ax3b = getattr(self, "_ax3b", None) or ax3.twinx()
                    self._ax3b = ax3b
                    ax3b.plot([x[0] for x in lt["samples"]], [x[1] * 100 for x in lt["samples"]], color=color,
                              ls=":", lw=1, alpha=0.8)
                    ax3b.set_ylim(0, 100)
                    ax3b.set_ylabel("dotted: % of the CPUs taken by other work", fontsize=8)
                top = max(top, xs[-1])
            t_ms = self.latency[0]["target"]
            for ax in (ax2, ax3):
                ax.grid(True, alpha=0.3)
            ax2.axvline(t_ms, color="red", ls="--", lw=1, label=f"target p99 ≤ {t_ms} ms")
            ax2.axhline(99, color="gray", ls=":", lw=1)
            ax2.set_xscale("log")
            ax2.set_xlabel("request latency, ms (scheduled send → 204), log scale")
            ax2.set_ylabel("% of requests answered within")
            ax2.set_ylim(0, 101)
            ax2.legend(fontsize=7, loc="upper left")
            ax2.set_title(f"latency at {self.a.latency_load * 100:.0f} % of the maximum", fontsize=10)
            ax3.axhline(t_ms, color="red", ls="--", lw=1)
            if top > 10 * t_ms:
                ax3.set_yscale("log")
            else:
                ax3.set_ylim(0, max(top, t_ms) * 1.1)
            ax3.set_xlabel("seconds into the paced run")
            ax3.set_ylabel("p99 ms of the requests answered in that second")
            ax3.legend(fontsize=7)
            ax3.set_title("latency over time", fontsize=10)
        else:
            ax2.axis("off")
            ax3.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=1_000_000, help="cpu lines (= rows) per load (default 1M)")
    p.add_argument("--lines-per-request", type=int, default=5000, help="lines per HTTP request (default 5000)")
    p.add_argument("--connections", type=int, default=8,
                   help="keep-alive connections = requests in flight (default 8)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--gzip-level", type=int, default=6, help="gzip level of the compressed bodies (default 6)")
    p.add_argument("--workers", type=int, default=2, help="influx.workers (default 2)")
    p.add_argument("--batch-size", type=int, default=10000, help="influx.batch_size (default 10000, its default)")
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a server setting for the run, e.g. --set influx.flush_idle=5 (repeatable)")
    p.add_argument("--repeat", type=int, default=5, help="timed trials of every pg_influx/COPY load (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed loads of every method first (default 1)")
    p.add_argument("--no-influxdb", dest="influxdb", action="store_false", help="skip InfluxDB 1.6")
    p.add_argument("--influxdb-repeat", type=int, default=1, help="timed InfluxDB loads per encoding (default 1)")
    p.add_argument("--influxdb-warmup", type=int, default=1, help="untimed InfluxDB loads first (default 1)")
    p.add_argument("--latency-load", type=float, default=0.5, help="share of the maximum rate offered (default 0.5)")
    p.add_argument("--latency-seconds", type=float, default=30, help="length of each paced run (default 30; 0 skips)")
    p.add_argument("--latency-base", default="sustained,burst",
                   help="which maximum the paced runs take a share of: sustained (a closed-loop run of "
                        "--max-seconds first), burst (the median plain 1M-row load), or both (default)")
    p.add_argument("--max-seconds", type=float, default=20, help="length of the sustained closed-loop run (default 20)")
    p.add_argument("--no-perf", dest="perf", action="store_false", help="skip the perf profiles")
    p.add_argument("--perf-freq", type=int, default=999, help="perf record -F (default 999)")
    p.add_argument("--perf-top", type=int, default=12, help="symbols listed per process (default 12)")
    p.add_argument("--no-verify", action="store_true", help="skip the EXCEPT ALL comparisons")
    p.add_argument("--timeout", type=float, default=60, help="longest wait for one answer (s)")
    p.add_argument("--pg-config", default=None,
                   help="pg_config of the PostgreSQL to run (default: the first pg_config on PATH)")
    p.add_argument("--quiet-wait", type=float, default=5,
                   help="before each timed load, wait up to this many seconds for a half second in which other "
                        "work takes at most --quiet-threshold of the CPUs (default 5; 0: do not wait)")
    p.add_argument("--quiet-threshold", type=float, default=0.05, help="share of the CPUs (default 0.05)")
    p.add_argument("--nice", type=int, default=0,
                   help="run the benchmark (this client, the cluster, influxd: all inherit it) at this nice "
                        "value, e.g. -10 on a machine shared with other work (default 0)")
    p.add_argument("--keep", action="store_true", help="keep the cluster and InfluxDB directories")
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--results-dir", default=os.path.join(BENCH_DIR, "results"))
    a = p.parse_args()
    a.no_influx = False  # run.Cluster and run.Bench read it
    a.latency_base = [x for x in a.latency_base.split(",") if x.strip()]
    for x in a.latency_base:
        if x not in ("sustained", "burst"):
            p.error(f"--latency-base: unknown {x}")
    if os.geteuid() != 0:
        p.error("run as root (the cluster runs as the postgres user, influxd as the influxdb user)")
    if a.nice:
        # before any thread or child exists: every one of them inherits it; the session's autogroup
        # (this terminal's, which outlives the script) gets its value back at exit
        import atexit
        try:
            with open("/proc/self/autogroup") as f:
                old = int(f.read().split()[-1])
            atexit.register(lambda: renice(os.getpid(), old))
        except (OSError, ValueError):
            pass
        renice(os.getpid(), a.nice)
    if a.pg_config:
        benchrun.BINDIR = benchrun.run([a.pg_config, "--bindir"]).stdout.strip()
    pg_config = a.pg_config or os.path.join(benchrun.BINDIR, "pg_config")
    libdir = benchrun.run([pg_config, "--pkglibdir"]).stdout.strip()
    if not os.path.exists(os.path.join(libdir, "pg_influx.so")):
        p.error(f"{libdir}/pg_influx.so is not installed: make && make install PG_CONFIG={pg_config}")
    log("building bench/loadgen")
    benchrun.run(["make", "-s", "-C", BENCH_DIR, "loadgen"])
    sys.exit(HttpBench(a).main())


if __name__ == "__main__":
    main()
