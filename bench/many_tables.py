#!/usr/bin/python3
"""many_tables.py — many distinct measurements: what the workers' memory does as the
number of tables they have written grows, and how fast rows go once the tables exist.

    sudo /usr/bin/python3 bench/many_tables.py                       # 20,000 measurements
    sudo /usr/bin/python3 bench/many_tables.py --measurements 2000   # a quick look

What it does (bench/README.md):
  1. a throw-away cluster (bench/latency.py's; influx.max_tables 0, the default hooks create
     a typed table per measurement);
  2. baseline: --lines `m0` lines (one table, created first) over 4 TCP connections, timed
     until influx.stats() shows them committed: the single-table rate;
  3. first sightings: --measurements distinct measurements `m0` ... in rounds of --round
     new ones (one line each, a tag and two fields), one round after the other; after each
     round, the workers' RssAnon and the number of tables; the time the round took;
  4. after all are created: --lines lines spread over --spread of the tables (default all of
     them), --run consecutive lines per table (50: an agent sends a measurement's lines
     together; 1 is round-robin, the worst case), timed like the baseline: the rate once
     every table was seen; --passes times (default 2). In the first pass a worker may
     write a table for the first time (each table was created by the worker its first line
     went to): its caches fill then; later passes are the steady state of agents that send
     every table again and again;
  5. reports the samples (tables vs worker memory), both rates and their ratio, to
     bench/results/many-tables-<timestamp>.md.

Only Debian's python3 standard library and psql.
"""

import argparse
import datetime
import os
import socket
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, BENCH_DIR)
import run as benchrun  # noqa: E402
from latency import Cluster, cluster_args  # noqa: E402

log = benchrun.log
T0_NS = 1_704_067_200 * 10**9


def send(port, data, connections=4):
    """data (bytes of whole lines) over `connections` TCP connections, split at line ends."""
    cuts = [0]
    for k in range(1, connections):
        pos = max(cuts[-1], len(data) * k // connections)
        nl = data.find(b"\n", pos)
        cuts.append(len(data) if nl < 0 else nl + 1)
    cuts.append(len(data))
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(connections)]
    for s, lo, hi in zip(socks, cuts, cuts[1:]):
        s.sendall(data[lo:hi])
    for s in socks:
        s.shutdown(socket.SHUT_WR)
        s.close()


def worker_memory(db):
    pids = [int(r[0]) for r in db.query(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'influx worker'")]
    return [benchrun.proc_status_kib(p, "RssAnon")[0] for p in pids]


def timed_load(b, db, port, data, n, timeout):
    base = b.influx_counters(db)
    t0 = time.monotonic()
    send(port, data)
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        cur = b.influx_counters(db)
        if b.rows_settled(cur) - b.rows_settled(base) >= n:
            return time.monotonic() - t0, {k: cur[k] - base[k] for k in cur}
        time.sleep(0.01)
    raise SystemExit(f"load of {n} lines not settled after {timeout} s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measurements", type=int, default=20000, help="distinct measurements (default 20000)")
    p.add_argument("--round", type=int, default=1000, help="new measurements per round (default 1000)")
    p.add_argument("--spread", type=int, default=0, help="tables the spread load covers (default: all)")
    p.add_argument("--run", type=int, default=50,
                   help="spread load: consecutive lines per table, as an agent sends a "
                        "measurement's lines together (default 50; 1 = round-robin, the worst case)")
    p.add_argument("--passes", type=int, default=2, help="spread loads, one after the other (default 2)")
    p.add_argument("--timeout", type=float, default=900, help="longest wait for one load or round (s)")
    benchrun.add_looped_load_options(p, lines=1_000_000)
    a = p.parse_args()
    if os.geteuid() != 0:
        p.error("run as root (the cluster runs as the postgres user)")
    load_before = os.getloadavg()[0]
    c = Cluster(cluster_args(a), "pg_influx_many.")
    db = None
    samples = []
    try:
        c.init({"influx.schema": "'influx_many'", "influx.max_tables": 0})
        c.start()
        db = benchrun.Psql(c.dir, c.port)
        db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
        benchrun.writer_schema(db, "influx_many")
        b = benchrun.Bench(a)
        if not b.wait_listener(db, timeout=30):
            raise SystemExit(f"listener not ready:\n{c.log_tail()}")

        def line(m, i):
            return f"m{m},host=h{i % 100} a={i}i,b={i * 0.5} {T0_NS + i * 1000}\n"

        # The single-table rate (m0 created by a first line).
        timed_load(b, db, c.tcp_port, line(0, 0).encode(), 1, a.timeout)
        data = "".join(line(0, i + 1) for i in range(a.lines)).encode()
        secs, _ = timed_load(b, db, c.tcp_port, data, a.lines, a.timeout)
        single = a.lines / secs
        log(f"single table: {a.lines:,} lines in {secs:.2f} s = {single:,.0f} rows/s")
        samples.append(dict(tables=1, secs=None, mem=worker_memory(db)))

        # First sightings, a round at a time.
        t_all = time.monotonic()
        for lo in range(1, a.measurements, a.round):
            hi = min(a.measurements, lo + a.round)
            data = "".join(line(m, m) for m in range(lo, hi)).encode()
            secs, d = timed_load(b, db, c.tcp_port, data, hi - lo, a.timeout)
            mem = worker_memory(db)
            samples.append(dict(tables=hi, secs=secs, mem=mem, rejected=d["rejected"]))
            log(f"{hi:,} tables: round of {hi - lo} new in {secs:.1f} s; workers RssAnon "
                f"{', '.join(f'{x / 1024:.0f}' for x in mem)} MiB")
        create_secs = time.monotonic() - t_all

        # Rows once every table exists: spread round-robin.
        spread = a.spread or a.measurements
        spread_rates = []
        for k in range(a.passes):
            t1 = a.measurements + k * a.lines
            data = "".join(line((i // a.run) % spread, t1 + i) for i in range(a.lines)).encode()
            secs, d = timed_load(b, db, c.tcp_port, data, a.lines, a.timeout)
            spread_rates.append(a.lines / secs)
            log(f"spread pass {k + 1} over {spread:,} tables, runs of {a.run}: {a.lines:,} lines in "
                f"{secs:.2f} s = {spread_rates[-1]:,.0f} rows/s")
        mem_end = worker_memory(db)
        tables = int(db.value("SELECT count(*) FROM pg_class WHERE relnamespace = "
                              "'influx_many'::regnamespace AND relkind = 'r'"))
        pg = db.value("SHOW server_version")
    finally:
        c.finish([db], a.keep)

    now = datetime.datetime.now()
    L = [f"# pg_influx: {a.measurements:,} measurements — {now:%Y-%m-%d %H:%M:%S}\n"]
    L.append(f"- machine: {benchrun.machine_line()}; PostgreSQL {pg}; pg_influx {benchrun.repo_revision()}")
    L.append(f"- load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    L.append(f"- command: `{' '.join(sys.argv)}`; `influx.workers={a.workers}`, "
             f"`influx.batch_size={a.batch_size}`, fsync and synchronous_commit on")
    L.append(f"- tables at the end: {tables:,}; first sightings took {create_secs:.0f} s in all")
    L.append("")
    L.append("| load | rows/s | ratio |")
    L.append("|---|--:|--:|")
    L.append(f"| {a.lines:,} lines into one table | {single:,.0f} | 1.00 |")
    for k, rate in enumerate(spread_rates):
        L.append(f"| {a.lines:,} lines over {spread:,} existing tables, {a.run} consecutive lines per table, "
                 f"pass {k + 1}{' (workers meet tables first)' if k == 0 else ''} | {rate:,.0f} | "
                 f"{rate / single:.2f} |")
    L.append("")
    L.append("| tables seen | round s | workers RssAnon MiB |")
    L.append("|--:|--:|---|")
    for s in samples:
        secs = "-" if s["secs"] is None else f"{s['secs']:.1f}"
        mem = ", ".join(f"{x / 1024:.0f}" for x in s["mem"])
        L.append(f"| {s['tables']:,} | {secs} | {mem} |")
    L.append(f"| after the spread load | | {', '.join(f'{x / 1024:.0f}' for x in mem_end)} |")
    text = "\n".join(L) + "\n"
    os.makedirs(a.results_dir, exist_ok=True)
    path = os.path.join(a.results_dir, f"many-tables-{now:%Y%m%d-%H%M%S}.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
