#!/usr/bin/python3
"""pg_influx latency: time from sending a line to its row being visible to another session,
under a moderate background load.

    sudo /usr/bin/python3 bench/latency.py                          # flush_interval 200 and 50 ms
    sudo /usr/bin/python3 bench/latency.py --intervals 200 --seconds 10

What it does (see bench/README.md and docs/benchmarks.md):
  1. starts a throw-away cluster as the postgres user with pg_influx preloaded (PostgreSQL on
     a free port in 5460-5469, influx TCP in 39000-39999, loopback only), default settings
     except influx.flush_interval; creates the typed `cpu` table (DDL from bench/loadgen) and
     `probe (_time timestamptz, src text, marker int8)` in schema `influx_lat`;
  2. per flush interval: a paced TCP sender thread sends cpu lines (bench/loadgen's dataset)
     at --rate lines/s into `cpu`; meanwhile a probe thread sends one `probe` line with a
     unique marker over its own TCP connection every ~100 ms (jittered 80-120 ms, so the
     probes do not lock to the flush period) for --seconds; a poller session runs
     `SELECT marker FROM probe WHERE marker IN (<outstanding markers>)` every --poll-ms ms
     and records, for each marker, the time its row was first seen;
  3. reports count, p50, p90, p99, max of send -> visible in ms, and whether
     p99 <= flush_interval + 100 ms; writes the markdown to stdout and
     bench/results/latency-<timestamp>.md.

"Visible" is taken when the poll query that first returned the marker came back, so a
latency is over-estimated by at most one poll period plus one query round trip (both
printed). The send time is taken just before sendall() of the probe line.

Needs only Debian's python3 standard library, psql and bench/loadgen (built with make).
"""

import argparse
import datetime
import os
import random
import socket
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, BENCH_DIR)
import run as benchrun  # noqa: E402  (bench/run.py: cluster, psql coprocess, /proc helpers)

log = benchrun.log


class Cluster(benchrun.Cluster):
    """run.py's throw-away cluster, on its own port ranges (PostgreSQL 5460-5469, influx
    39000-39999) so that it can run next to bench/run.py."""

    PG_PORTS = range(5460, 5470)
    INFLUX_PORTS = range(39000, 40000)


def cluster_args(a):
    """The attributes run.Cluster.init() reads."""
    return argparse.Namespace(tmpdir=a.tmpdir, shared_buffers=a.shared_buffers, workers=a.workers,
                              batch_size=a.batch_size, no_influx=False, autovacuum=True)


def load_blocks(path, block_bytes=65536):
    """The file cut into blocks of whole lines: [(bytes, line_count)]."""
    with open(path, "rb") as f:
        data = f.read()
    blocks, pos = [], 0
    while pos < len(data):
        end = data.find(b"\n", min(pos + block_bytes, len(data)) - 1)
        end = len(data) if end < 0 else end + 1
        b = data[pos:end]
        blocks.append((b, b.count(b"\n")))
        pos = end
    return blocks


def split_blocks(blocks, max_lines):
    """Smaller blocks (at most max_lines lines each), for smooth pacing at low rates."""
    out = []
    for b, n in blocks:
        if n <= max_lines:
            out.append((b, n))
            continue
        lines = b.splitlines(keepends=True)
        for i in range(0, len(lines), max_lines):
            part = lines[i:i + max_lines]
            out.append((b"".join(part), len(part)))
    return out


class PacedSender(threading.Thread):
    """One TCP connection sending `blocks` (looped) at `rate` lines/s until stop is set or
    `max_seconds` passed. A sender that falls behind (backpressure) catches up by at most
    one second's worth of lines, so it never bursts far above the rate."""

    def __init__(self, port, blocks, rate, stop, max_seconds, start_index=0):
        super().__init__(daemon=True)
        self.port, self.blocks, self.rate, self.stop = port, blocks, rate, stop
        self.max_seconds = max_seconds
        self.i = start_index % len(blocks)
        self.lines = self.bytes = 0
        self.error = None
        self.t0 = self.t1 = None

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.t0 = time.monotonic()
            credit_base, credit_lines = self.t0, 0   # lines owed since credit_base
            deadline = self.t0 + self.max_seconds
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                owed = (now - credit_base) * self.rate - credit_lines
                if owed > self.rate:      # more than 1 s behind: forget the older debt
                    credit_base, credit_lines = now - 1.0, 0
                    owed = self.rate
                b, n = self.blocks[self.i]
                if owed < n:
                    time.sleep(min((n - owed) / self.rate, 0.05))
                    continue
                s.sendall(b)
                self.i = (self.i + 1) % len(self.blocks)
                credit_lines += n
                self.lines += n
                self.bytes += len(b)
            s.close()
        except Exception as e:  # reported by the caller
            self.error = repr(e)
        self.t1 = time.monotonic()


def percentile(xs, p):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
    return xs[k]


class Probes:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}       # marker -> send time
        self.seen = {}       # marker -> visible time
        self.done_sending = False


def probe_sender(port, probes, seconds, period_ms, stop, first_marker):
    s = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rnd = random.Random(first_marker)
        marker = first_marker
        t_end = time.monotonic() + seconds
        nxt = time.monotonic()
        while not stop.is_set() and time.monotonic() < t_end:
            line = f"probe,src=lat marker={marker}i\n".encode()
            with probes.lock:
                probes.sent[marker] = time.monotonic()
            s.sendall(line)
            marker += 1
            nxt += rnd.uniform(0.8, 1.2) * period_ms / 1000
            time.sleep(max(0.0, nxt - time.monotonic()))
    except Exception as e:
        log(f"probe sender: {e!r}")
    finally:
        with probes.lock:
            probes.done_sending = True
        if s:
            s.close()


def poll(db, probes, poll_ms, give_up_s, max_seconds):
    """Tight loop: which outstanding markers are visible? Bounded: stops give_up_s after the
    last probe was sent, and after max_seconds in any case."""
    rtts = []
    last_send_end = None
    hard_end = time.monotonic() + max_seconds
    while time.monotonic() < hard_end:
        with probes.lock:
            outstanding = [m for m in probes.sent if m not in probes.seen]
            done = probes.done_sending
        now = time.monotonic()
        if done:
            last_send_end = last_send_end or now
            if not outstanding or now - last_send_end > give_up_s:
                break
        if outstanding:
            q0 = time.monotonic()
            rows = db.query("SELECT marker FROM influx_lat.probe WHERE marker IN ("
                            + ",".join(map(str, outstanding)) + ")", timeout=30)
            q1 = time.monotonic()
            rtts.append(q1 - q0)
            with probes.lock:
                for r in rows:
                    m = int(r[0])
                    if m not in probes.seen:
                        probes.seen[m] = q1
            time.sleep(max(0.0, poll_ms / 1000 - (time.monotonic() - q0)))
        else:
            time.sleep(poll_ms / 1000)
    return rtts


def one_interval(a, c, db, blocks, flush_ms, first_marker):
    log(f"flush_interval = {flush_ms} ms: setting, restarting workers")
    db.query(f"ALTER SYSTEM SET influx.flush_interval = '{flush_ms}ms'")
    db.query("SELECT pg_reload_conf()")
    time.sleep(0.5)
    db.query("SELECT influx.restart_workers()")
    b = benchrun.Bench(a)
    if not b.wait_listener(db, timeout=30):
        raise SystemExit(f"listener not ready:\n{c.log_tail()}")
    shown = db.value("SHOW influx.flush_interval")
    base = b.influx_counters(db)
    rows0 = int(db.value("SELECT count(*) FROM influx_lat.cpu"))
    procs = b.influx_procs(db)
    cpu0 = {pid: benchrun.proc_cpu(pid) for pid in procs}
    stop = threading.Event()
    senders = []
    if a.rate > 0:
        per = a.rate / a.connections
        step = max(1, len(blocks) // a.connections)
        for k in range(a.connections):
            senders.append(PacedSender(c.tcp_port, blocks, per, stop, a.seconds + a.warmup + 30,
                                       start_index=k * step))
        for s in senders:
            s.start()
        time.sleep(a.warmup)  # let the background load reach its steady state first
    probes = Probes()
    t0 = time.monotonic()
    pt = threading.Thread(target=probe_sender, daemon=True,
                          args=(c.tcp_port, probes, a.seconds, a.probe_ms, stop, first_marker))
    pt.start()
    rtts = poll(db, probes, a.poll_ms, a.give_up, a.seconds + a.give_up + 30)
    probe_secs = time.monotonic() - t0
    stop.set()
    pt.join(10)
    for s in senders:
        s.join(10)
    bg_lines = sum(s.lines for s in senders)
    bg_secs = max((s.t1 - s.t0 for s in senders if s.t0 and s.t1), default=None)
    errors = [s.error for s in senders if s.error]
    time.sleep(flush_ms / 1000 + 0.5)
    after = b.influx_counters(db)
    rows1 = int(db.value("SELECT count(*) FROM influx_lat.cpu"))
    cpu = sum((benchrun.proc_cpu(p) or 0) - (cpu0[p] or 0) for p in procs if cpu0.get(p) is not None)
    lat = sorted((probes.seen[m] - probes.sent[m]) * 1000 for m in probes.seen)
    res = dict(flush_ms=flush_ms, shown=shown, sent=len(probes.sent), seen=len(lat), lat=lat,
               p50=percentile(lat, 50), p90=percentile(lat, 90), p99=percentile(lat, 99),
               max=lat[-1] if lat else None, min=lat[0] if lat else None,
               target=flush_ms + 100,
               bg_rate=bg_lines / bg_secs if bg_secs else 0, bg_lines=bg_lines,
               bg_rows=rows1 - rows0, probe_secs=probe_secs,
               rtt_p50=percentile(sorted(x * 1000 for x in rtts), 50),
               rtt_max=max(rtts) * 1000 if rtts else None, polls=len(rtts),
               d={k: after[k] - base[k] for k in after} if base and after else {},
               cpu=cpu, errors=errors)
    res["ok"] = res["seen"] == res["sent"] and res["p99"] is not None and res["p99"] <= res["target"]
    log(f"flush_interval {flush_ms} ms: {res['seen']}/{res['sent']} probes seen, "
        f"p50 {fmt(res['p50'])} p90 {fmt(res['p90'])} p99 {fmt(res['p99'])} max {fmt(res['max'])} ms; "
        f"background {res['bg_rate']:,.0f} lines/s")
    return res


def fmt(x, d=1):
    return "n/a" if x is None else f"{x:.{d}f}"


def report(a, results, pg_version, load_before):
    now = datetime.datetime.now()
    L = [f"# pg_influx latency — {now:%Y-%m-%d %H:%M:%S}\n"]
    L.append(f"- machine: {benchrun.machine_line()}; PostgreSQL {pg_version}")
    L.append(f"- load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    L.append(f"- command: `{' '.join(sys.argv)}`")
    L.append(f"- background: cpu lines (bench/loadgen, typed table) paced at {a.rate:,} lines/s over "
             f"{a.connections} TCP connection(s), {a.warmup:.0f} s warm-up; probes: one line every "
             f"{a.probe_ms} ms (±20 %) for {a.seconds:.0f} s over their own TCP connection; poll every "
             f"{a.poll_ms} ms from a separate session; `influx.workers={a.workers}`, "
             f"`influx.batch_size={a.batch_size}`, `synchronous_commit` on")
    L.append("")
    L.append("| influx.flush_interval | probes seen / sent | p50 ms | p90 ms | p99 ms | max ms "
             "| target p99 ≤ | result | background lines/s | poll round trip p50 / max ms |")
    L.append("|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|")
    for r in results:
        verdict = "**pass**" if r["ok"] else "**MISSED**"
        if r["seen"] != r["sent"]:
            verdict += f" ({r['sent'] - r['seen']} probes never seen within {a.give_up:.0f} s)"
        L.append(f"| {r['flush_ms']} ms | {r['seen']} / {r['sent']} | {fmt(r['p50'])} | {fmt(r['p90'])} "
                 f"| {fmt(r['p99'])} | {fmt(r['max'])} | {r['target']} ms | {verdict} "
                 f"| {r['bg_rate']:,.0f} | {fmt(r['rtt_p50'], 2)} / {fmt(r['rtt_max'], 1)} |")
    L.append("")
    for r in results:
        d = r["d"]
        L.append(f"- flush_interval {r['flush_ms']} ms: background rows committed "
                 f"{r['bg_rows']:,} of {r['bg_lines']:,} sent; influx.stats() deltas: "
                 f"rows_inserted {d.get('inserted', 'n/a'):,}, rejected {d.get('rejected', 'n/a')}, "
                 f"errors {d.get('errors', 'n/a')}, queue_full {d.get('queue_full', 'n/a')}; "
                 f"listener+workers CPU {r['cpu']:.1f} s; min latency {fmt(r['min'])} ms"
                 + (f"; sender errors: {r['errors']}" if r["errors"] else ""))
    text = "\n".join(L) + "\n"
    os.makedirs(a.results_dir, exist_ok=True)
    path = os.path.join(a.results_dir, f"latency-{now:%Y%m%d-%H%M%S}.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--intervals", default="200,50", help="influx.flush_interval values in ms (default 200,50)")
    p.add_argument("--rate", type=int, default=20000, help="background lines/s (default 20000; 0 = none)")
    p.add_argument("--connections", type=int, default=2, help="background TCP connections (default 2)")
    p.add_argument("--seconds", type=float, default=30, help="probing time per interval (default 30)")
    p.add_argument("--warmup", type=float, default=3, help="background load before probing (default 3 s)")
    p.add_argument("--probe-ms", type=int, default=100, help="one probe line every N ms (default 100)")
    p.add_argument("--poll-ms", type=float, default=5, help="poll period in ms (default 5)")
    p.add_argument("--give-up", type=float, default=10, help="wait this long for the last probes (s)")
    benchrun.add_looped_load_options(p, lines=500_000)
    a = p.parse_args()
    intervals = [int(x) for x in a.intervals.split(",") if x.strip()]
    if os.geteuid() != 0:
        p.error("run as root (the cluster runs as the postgres user)")
    load_before = os.getloadavg()[0]
    benchrun.run(["make", "-s", "-C", BENCH_DIR, "loadgen"])
    c = Cluster(cluster_args(a), "pg_influx_latency.")
    db = None
    results = []
    try:
        c.init({"influx.schema": "'influx_lat'", "influx.flush_interval": f"'{intervals[0]}ms'"})
        c.start()
        db = benchrun.Psql(c.dir, c.port)
        db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
        ddl = benchrun.run([benchrun.LOADGEN, "--mode", "ddl", "--dataset", "cpu"]).stdout
        benchrun.writer_schema(db, "influx_lat", ddl + "\nCREATE TABLE public.probe "
                               "(_time timestamptz NOT NULL, src text, marker int8);")
        lp = os.path.join(c.files, "cpu.lp")
        log(f"generating {a.lines} cpu lines")
        benchrun.loadgen(["--mode", "lp", "--out", lp, "--lines", a.lines, "--threads", 2])
        # small blocks: smooth pacing at a moderate rate (~10 ms of lines per send)
        blocks = split_blocks(load_blocks(lp), max(1, a.rate // a.connections // 100))
        for k, ms in enumerate(intervals):
            results.append(one_interval(a, c, db, blocks, ms, first_marker=(k + 1) * 1_000_000))
        pg_version = db.value("SHOW server_version")
    finally:
        c.finish([db], a.keep)
    report(a, results, pg_version, load_before)
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
