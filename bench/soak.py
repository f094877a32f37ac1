#!/usr/bin/python3
"""pg_influx soak: is the listener's and the workers' memory flat over a sustained load?

    sudo /usr/bin/python3 bench/soak.py                        # 5 minutes at 150 000 lines/s
    sudo /usr/bin/python3 bench/soak.py --minutes 1 --rate 100000

What it does (see bench/README.md and docs/benchmarks.md):
  1. starts a throw-away cluster as the postgres user with pg_influx preloaded (PostgreSQL on
     a free port in 5460-5469, influx TCP in 39000-39999, loopback only; the settings of
     bench/run.py: shared_buffers 1GB, influx.workers 2, influx.batch_size 10000, fsync and
     synchronous_commit on) and the typed `cpu` table (DDL from bench/loadgen);
  2. sends bench/loadgen's cpu dataset (a pre-generated file, looped) over --connections TCP
     connections, each paced at rate/connections lines/s, for --minutes;
  3. every --every seconds samples VmRSS and RssAnon (/proc/<pid>/status) of the listener and
     of each worker, sum(rows_inserted) and sum(errors) from influx.stats();
  4. reports the samples, and per process the growth of RssAnon from the first minute of
     load to the last minute: the mean of the last minute's samples against the highest
     sample of the first minute (what the process had already reached; the first samples
     can be low while the allocator settles, which is not growth); passes if every process
     grew less than --max-growth (10 %) and no errors were counted. Markdown to stdout and
     bench/results/soak-<timestamp>.md.

VmRSS includes the shared memory a process touched (shared_buffers pages a worker wrote
count there, up to shared_buffers), so it is reported but not judged; RssAnon is the
process's private memory.
"""

import argparse
import datetime
import os
import shutil
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, BENCH_DIR)
import run as benchrun  # noqa: E402
from latency import Cluster, PacedSender, cluster_args, load_blocks  # noqa: E402

log = benchrun.log


def proc_status(pid):
    """(VmRSS, RssAnon) in KiB (None if the process is gone)."""
    return benchrun.proc_status_kib(pid, "VmRSS", "RssAnon")


def mib(k):
    return "n/a" if k is None else f"{k / 1024:.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5, help="length of the sustained load (default 5)")
    p.add_argument("--rate", type=int, default=150000, help="lines/s over all connections (default 150000)")
    p.add_argument("--connections", type=int, default=4, help="TCP connections (default 4)")
    p.add_argument("--every", type=float, default=10, help="sample every N seconds (default 10)")
    p.add_argument("--max-growth", type=float, default=10,
                   help="pass if RssAnon grows less (%%, default 10): last minute's mean over the first minute's highest")
    benchrun.add_looped_load_options(p, lines=1_000_000)
    a = p.parse_args()
    if os.geteuid() != 0:
        p.error("run as root (the cluster runs as the postgres user)")
    if a.minutes * 60 < 3 * a.every:
        p.error("--minutes too short: at least three samples are needed")
    load_before = os.getloadavg()[0]
    benchrun.run(["make", "-s", "-C", BENCH_DIR, "loadgen"])
    c = Cluster(cluster_args(a), "pg_influx_soak.")
    db = None
    samples = []          # dict(t, rows, errors, procs={pid: (kind, rss, anon)})
    senders = []
    stop = threading.Event()
    try:
        c.init({"influx.schema": "'influx_soak'"})
        c.start()
        db = benchrun.Psql(c.dir, c.port)
        db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
        ddl = benchrun.run([benchrun.LOADGEN, "--mode", "ddl", "--dataset", "cpu"]).stdout
        benchrun.writer_schema(db, "influx_soak", ddl)
        b = benchrun.Bench(a)
        db.query("SELECT influx.restart_workers()")  # fresh workers, schema settled
        if not b.wait_listener(db, timeout=30):
            raise SystemExit(f"listener not ready:\n{c.log_tail()}")
        lp = os.path.join(c.files, "cpu.lp")
        log(f"generating {a.lines} cpu lines")
        benchrun.loadgen(["--mode", "lp", "--out", lp, "--lines", a.lines, "--threads", 2])
        blocks = load_blocks(lp, block_bytes=32768)

        def sample(t):
            procs = b.influx_procs(db)
            r = db.query("SELECT coalesce(sum(rows_inserted),0), coalesce(sum(errors),0), "
                         "coalesce(sum(queue_full),0) FROM influx.stats()")[0]
            s = dict(t=t, rows=int(r[0]), errors=int(r[1]), queue_full=int(r[2]),
                     sent=sum(x.lines for x in senders), procs={})
            for pid, kind in sorted(procs.items(), key=lambda kv: (kv[1], kv[0])):
                s["procs"][pid] = (kind,) + proc_status(pid)
            samples.append(s)
            return s

        duration = a.minutes * 60
        log(f"sustained load: {a.rate:,} lines/s over {a.connections} connections for {duration:.0f} s")
        sample(0.0)
        per = a.rate / a.connections
        step = max(1, len(blocks) // a.connections)
        t0 = time.monotonic()
        for k in range(a.connections):
            senders.append(PacedSender(c.tcp_port, blocks, per, stop, duration, start_index=k * step))
        for s in senders:
            s.start()
        n = 1
        while True:
            t_next = t0 + n * a.every
            if t_next > t0 + duration + 0.5:
                break
            time.sleep(max(0.0, t_next - time.monotonic()))
            s = sample(time.monotonic() - t0)
            prev = samples[-2]
            dt = s["t"] - prev["t"]
            log(f"t={s['t']:5.0f}s rows/s {(s['rows'] - prev['rows']) / dt:9,.0f} sent/s "
                f"{(s['sent'] - prev['sent']) / dt:9,.0f} errors {s['errors']} "
                + " ".join(f"{v[0].split()[-1]}:{mib(v[2])}" for v in s["procs"].values()))
            n += 1
        stop.set()
        for s in senders:
            s.join(30)
        send_secs = max((s.t1 - s.t0 for s in senders if s.t0 and s.t1), default=None)
        # drain: rows still in rings/batches, bounded
        sent = sum(s.lines for s in senders)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = int(db.value("SELECT coalesce(sum(rows_inserted),0) FROM influx.stats()"))
            if rows >= sent:
                break
            time.sleep(0.5)
        final = sample(time.monotonic() - t0)
        count = int(db.value("SELECT count(*) FROM influx_soak.cpu", timeout=600))
        pg_version = db.value("SHOW server_version")
        log_tail = c.log_tail(10)
    finally:
        stop.set()
        if db:
            db.close()
        c.stop()
        if a.keep:
            log(f"kept {c.dir}")
        else:
            shutil.rmtree(c.dir, ignore_errors=True)
    errors = [s.error for s in senders if s.error]
    return report(a, samples, final, sent, send_secs, count, errors, pg_version, load_before, duration,
                  log_tail)


def report(a, samples, final, sent, send_secs, count, errors, pg_version, load_before, duration,
           log_tail):
    now = datetime.datetime.now()
    load = [s for s in samples if s["t"] > 0 and s is not final]
    # process columns: in the order of the first load sample; a pid that appears later is added
    pids = []
    for s in load:
        for pid in s["procs"]:
            if pid not in pids:
                pids.append(pid)
    kinds = {}
    for s in samples:
        for pid, v in s["procs"].items():
            kinds[pid] = v[0]
    label = {}
    wn = 0
    for pid in pids:
        if kinds[pid] == "influx listener":
            label[pid] = f"listener ({pid})"
        else:
            label[pid] = f"worker {wn} ({pid})"
            wn += 1
    L = [f"# pg_influx soak — {now:%Y-%m-%d %H:%M:%S}\n"]
    L.append(f"- machine: {benchrun.machine_line()}; PostgreSQL {pg_version}")
    L.append(f"- load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    L.append(f"- command: `{' '.join(sys.argv)}`")
    achieved = sent / send_secs if send_secs else 0
    L.append(f"- load: cpu lines (typed table) paced at {a.rate:,} lines/s over {a.connections} TCP "
             f"connections for {duration:.0f} s: {sent:,} lines sent ({achieved:,.0f} lines/s achieved), "
             f"{final['rows']:,} rows inserted (influx.stats), count(*) {count:,}; "
             f"`influx.workers={a.workers}`, `influx.batch_size={a.batch_size}`, "
             f"`shared_buffers={a.shared_buffers}`, `synchronous_commit` on")
    L.append(f"- influx.stats() at the end: errors {final['errors']}, queue_full {final['queue_full']}"
             + (f"; sender errors: {errors}" if errors else ""))
    L.append("")
    L.append("Samples (memory in MiB; rows/s over the preceding interval):\n")
    head = "| t s | rows/s | rows inserted | errors | " + " | ".join(
        f"{label[p]} RSS / RssAnon" for p in pids) + " |"
    L.append(head)
    L.append("|--:|--:|--:|--:|" + "--:|" * len(pids))
    prev = None
    for s in samples:
        rate = (s["rows"] - prev["rows"]) / (s["t"] - prev["t"]) \
            if prev and s["t"] > prev["t"] and s is not final else None
        cells = []
        for p in pids:
            v = s["procs"].get(p)
            cells.append(f"{mib(v[1])} / {mib(v[2])}" if v else "—")
        tag = " (drained)" if s is final else ""
        L.append(f"| {s['t']:.0f}{tag} | {benchrun.fmt_rate(rate)} | {s['rows']:,} | {s['errors']} | "
                 + " | ".join(cells) + " |")
        prev = s
    L.append("")
    first = [s for s in load if s["t"] <= 60.5]
    last = [s for s in load if s["t"] >= duration - 60 - 0.5]
    L.append(f"RssAnon, first minute of load (t ≤ 60 s, {len(first)} samples: mean and highest) "
             f"vs last minute (t ≥ {max(0, duration - 60):.0f} s, {len(last)} samples: mean); growth "
             f"is the last minute's mean over the first minute's highest sample:\n")
    L.append("| process | first minute mean MiB | first minute highest MiB | last minute mean MiB "
             "| growth | max RssAnon MiB | max VmRSS MiB | result |")
    L.append("|---|--:|--:|--:|--:|--:|--:|---|")
    ok = final["errors"] == 0 and not errors
    for p in pids:
        f_ = [s["procs"][p][2] for s in first if p in s["procs"] and s["procs"][p][2] is not None]
        l_ = [s["procs"][p][2] for s in last if p in s["procs"] and s["procs"][p][2] is not None]
        allanon = [s["procs"][p][2] for s in load if p in s["procs"] and s["procs"][p][2] is not None]
        allrss = [s["procs"][p][1] for s in load if p in s["procs"] and s["procs"][p][1] is not None]
        if f_ and l_:
            fm, fx, lm = sum(f_) / len(f_), max(f_), sum(l_) / len(l_)
            g = (lm - fx) / fx * 100
            passed = g < a.max_growth
            res = "pass" if passed else f"**MISSED** (≥ {a.max_growth:g} %)"
            L.append(f"| {label[p]} | {fm / 1024:.2f} | {fx / 1024:.2f} | {lm / 1024:.2f} | {g:+.1f} % | "
                     f"{max(allanon) / 1024:.2f} | {max(allrss) / 1024:.1f} | {res} |")
        else:
            passed = False
            L.append(f"| {label[p]} | n/a | n/a | n/a | | | **not present for the whole run** |")
        ok = ok and passed
    L.append("")
    L.append(f"Result: **{'pass' if ok else 'FAIL'}** (RssAnon growth < {a.max_growth:g} % for every "
             f"process, influx.stats() errors = 0)")
    if not ok:
        L.append(f"\nServer log tail:\n\n```\n{log_tail}```")
    text = "\n".join(L) + "\n"
    os.makedirs(a.results_dir, exist_ok=True)
    path = os.path.join(a.results_dir, f"soak-{now:%Y%m%d-%H%M%S}.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
