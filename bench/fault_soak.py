#!/usr/bin/python3
"""pg_influx fault soak: a Telegraf fleet's traffic for minutes, with faults in the middle;
at the end every line sent is accounted for, exactly.

    sudo /usr/bin/python3 bench/fault_soak.py                  # 10 minutes, a fault a minute
    sudo /usr/bin/python3 bench/fault_soak.py --minutes 2 --fault-every 20

What it does (see bench/README.md):
  1. starts a throw-away cluster as the postgres user (bench/latency.py's Cluster: loopback
     only, free ports; influx.workers 2, autovacuum on, fsync and synchronous_commit on)
     with influx.create_tables on in schema influx_fleet;
  2. takes one interval of bench/fleet.py's fleet (--hosts hosts, --prometheus-families
     metric families) and sends it again and again, each round with timestamps one interval
     later, over --connections TCP connections (the lines dealt out round robin), paced at
     --rate lines/s in total; a sender stops only between rounds, so what was sent is known
     line by line;
  3. every --fault-every seconds makes the next fault of the cycle:
       terminate   pg_terminate_backend() of a worker (its uncommitted lines must go to
                   another worker);
       lock        LOCK TABLE <busiest fleet table> IN ACCESS EXCLUSIVE MODE for 10 s, with
                   lock_timeout 500ms set for the workers' database (they must retry,
                   keep the rows and let the senders feel backpressure), and a
                   pg_reload_conf() 5 s in (a retrying flush must keep its tables);
       reload      influx.workers 2 -> 3 (the next reload fault: 3 -> 2), pg_reload_conf();
       cancel      pg_cancel_backend() of every worker (their flushes are tried again);
       restart     influx.restart_workers() (every worker replaced);
  4. samples RssAnon of the listener every --every seconds;
  5. at the end waits for the rows, then reconciles: for every measurement, count(*) of its
     table = lines of it sent; and over influx.stats(): rows inserted = lines sent, no line
     rejected, lost or dropped.  The listener's RssAnon growth (last minute's mean over the
     first minute's highest sample) must stay under --max-growth % or --max-growth-kib.
  Markdown to stdout and bench/results/fault-soak-<timestamp>.md; exit status 0 if it passed.
"""

import argparse
import datetime
import os
import shutil
import socket
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, BENCH_DIR)
import fleet  # noqa: E402
import run as benchrun  # noqa: E402
from latency import Cluster, cluster_args  # noqa: E402

log = benchrun.log
INTERVAL_NS = 10 * 1_000_000_000
FAULTS = ["terminate", "lock", "reload", "cancel", "restart"]


class RoundSender(threading.Thread):
    """One TCP connection sending its share of every round, paced; stops between rounds."""

    def __init__(self, port, lines, rate, stop):
        super().__init__(daemon=True)
        self.port, self.rate, self.stop = port, rate, stop
        # (prefix bytes, timestamp) per line: a round is the lines re-stamped.
        self.parts = []
        for ln in lines:
            head, ts = ln.rsplit(" ", 1)
            self.parts.append((head.encode() + b" ", int(ts)))
        self.rounds = 0
        self.lines = 0
        self.error = None

    def round_bytes(self, r):
        off = r * INTERVAL_NS
        return b"".join(b"%s%d\n" % (h, ts + off) for h, ts in self.parts)

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=120)
            s.settimeout(None)  # backpressure may hold a send for as long as a fault lasts
            t0 = time.monotonic()
            sent_bytes = 0
            while not self.stop.is_set():
                data = self.round_bytes(self.rounds)
                byte_rate = self.rate * len(data) / len(self.parts)
                # 16 pieces a round keep the pace smooth (cut at line ends: a quoted string
                # may hold a newline, so pieces are only for pacing, not for counting)
                step = max(1, len(data) // 16)
                pos = 0
                while pos < len(data):
                    end = min(pos + step, len(data))
                    s.sendall(data[pos:end])
                    sent_bytes += end - pos
                    pos = end
                    due = t0 + sent_bytes / byte_rate
                    now = time.monotonic()
                    if due > now:
                        time.sleep(due - now)
                self.rounds += 1
                self.lines += len(self.parts)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(30)
            while s.recv(4096):
                pass
            s.close()
        except Exception as e:  # reported by the caller
            self.error = repr(e)


def worker_pids(db):
    return [int(r[0]) for r in db.query(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'influx worker'")]


def anon(pid):
    return benchrun.proc_status_kib(pid, "RssAnon")[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--rate", type=int, default=20000, help="lines/s over all connections (default 20000)")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--hosts", type=int, default=60)
    p.add_argument("--prometheus-families", type=int, default=300)
    p.add_argument("--fault-every", type=float, default=60)
    p.add_argument("--every", type=float, default=10, help="memory sample period, s")
    p.add_argument("--max-growth", type=float, default=10, help="RssAnon growth allowed, %% (default 10)")
    p.add_argument("--max-growth-kib", type=float, default=1024,
                   help="RssAnon growth allowed in KiB whatever the percentage (default 1024)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=10000)
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--results-dir", default=os.path.join(BENCH_DIR, "results"))
    a = p.parse_args()
    if os.geteuid() != 0:
        p.error("run as root (the cluster runs as the postgres user)")

    lines, per_round = fleet.generate(hosts=a.hosts, intervals=1, seed=1,
                                      prometheus_families=a.prometheus_families)
    log(f"fleet: {len(lines):,} lines a round, {len(per_round)} measurements")
    shares = [lines[k::a.connections] for k in range(a.connections)]
    share_counts = []
    for sh in shares:
        cnt = {}
        for ln in sh:
            m = ln.split(",", 1)[0].split(" ", 1)[0]
            cnt[m] = cnt.get(m, 0) + 1
        share_counts.append(cnt)

    c = Cluster(cluster_args(a), "pg_influx_fault_soak.")
    db = None
    stop = threading.Event()
    senders, faults, samples = [], [], []
    held = None
    try:
        c.init({"influx.schema": "'influx_fleet'", "influx.restart_delay": "1",
                "max_connections": "200"})
        c.start()
        db = benchrun.Psql(c.dir, c.port)
        db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
        benchrun.writer_schema(db, "influx_fleet")
        b = benchrun.Bench(argparse.Namespace(**vars(a), variants=[], udp_rates=[]))
        if not b.wait_listener(db, timeout=30):
            raise SystemExit(f"listener not ready:\n{c.log_tail()}")
        lpid = int(db.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'influx listener'"))
        for sh in shares:
            senders.append(RoundSender(c.tcp_port, sh, a.rate / a.connections, stop))
        t0 = time.monotonic()
        for s in senders:
            s.start()
        duration = a.minutes * 60
        next_fault, next_sample, k, workers_now = a.fault_every, 0.0, 0, a.workers
        held_until = reload_at = None
        while True:
            t = time.monotonic() - t0
            if t >= duration:
                break
            if held is not None and reload_at is not None and t >= reload_at:
                # A reload while flushes wait out the lock: a retrying flush must keep its
                # tables (it once read its schema from the memory a reload freed).
                db.query("SELECT pg_reload_conf()")
                reload_at = None
            if held is not None and t >= held_until:
                held.close()
                held = None
            if t >= next_sample:
                samples.append((t, anon(lpid)))
                next_sample += a.every
            if t >= next_fault:
                kind = FAULTS[k % len(FAULTS)]
                k += 1
                next_fault += a.fault_every
                note = ""
                if kind == "terminate":
                    pids = worker_pids(db)
                    if pids:
                        db.query(f"SELECT pg_terminate_backend({pids[0]})")
                        note = f"worker {pids[0]}"
                elif kind == "lock":
                    db.query("ALTER DATABASE postgres SET lock_timeout = '500ms'")
                    db.query("SELECT influx.restart_workers()")
                    held = benchrun.Psql(c.dir, c.port)
                    held.query("SET lock_timeout = 0")
                    held.query("BEGIN")
                    held.query("LOCK TABLE influx_fleet.cpu IN ACCESS EXCLUSIVE MODE")
                    held_until, reload_at = t + 10, t + 5
                    note = "influx_fleet.cpu for 10 s, lock_timeout 500ms, a reload after 5 s"
                elif kind == "reload":
                    workers_now = 3 if workers_now == 2 else 2
                    db.query(f"ALTER SYSTEM SET influx.workers = {workers_now}")
                    db.query("SELECT pg_reload_conf()")
                    note = f"influx.workers = {workers_now}"
                elif kind == "cancel":
                    pids = worker_pids(db)
                    for pid in pids:
                        db.query(f"SELECT pg_cancel_backend({pid})")
                    note = f"{len(pids)} workers"
                elif kind == "restart":
                    db.query("SELECT influx.restart_workers()")
                log(f"t={t:5.0f}s fault: {kind} {note}; sent {sum(s.lines for s in senders):,}")
                faults.append((t, kind, note))
            time.sleep(0.2)
        stop.set()
        if held is not None:
            held.close()
            held = None
        for s in senders:
            s.join(300)
        sent = sum(s.lines for s in senders)
        expected = {}
        for s, cnt in zip(senders, share_counts):
            for m, n in cnt.items():
                expected[m] = expected.get(m, 0) + n * s.rounds
        assert sum(expected.values()) == sent, (sum(expected.values()), sent)
        log(f"sent {sent:,} lines; waiting for the rows")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if b.influx_counters(db)["inserted"] >= sent:
                break
            time.sleep(1)
        samples.append((time.monotonic() - t0, anon(lpid)))
        counters = db.query(
            "SELECT coalesce(sum(rows_inserted),0), "
            "coalesce(sum(lines_rejected_syntax + lines_rejected_too_long + lines_rejected_memory"
            " + rows_rejected_value + rows_rejected_insert + rows_rejected_table),0), "
            "coalesce(sum(lines_lost),0), coalesce(sum(lines_rerouted),0), "
            "coalesce(sum(flush_retries),0), coalesce(sum(lines_received) FILTER (WHERE kind = 'listener'),0) "
            "FROM influx.stats()")[0]
        inserted, rejected, lost, rerouted, retries, received = (int(x) for x in counters)
        db.query("ALTER DATABASE postgres RESET lock_timeout")
        actual = {}
        for m in expected:
            actual[m] = int(db.value(f'SELECT count(*) FROM influx_fleet."{m}"', timeout=600) or 0)
        pg_version = db.value("SHOW server_version")
        log_tail = c.log_tail(15)
    finally:
        stop.set()
        if held is not None:
            held.close()
        if db:
            db.close()
        c.stop()
        if not a.keep:
            shutil.rmtree(c.dir, ignore_errors=True)

    errors = [s.error for s in senders if s.error]
    wrong = {m: (expected[m], actual[m]) for m in expected if expected[m] != actual[m]}
    first = [v for t, v in samples if t <= 60.5 and v]
    last = [v for t, v in samples[:-1] if t >= duration - 60 and v]
    growth = grown_kib = None
    if first and last:
        grown_kib = sum(last) / len(last) - max(first)
        growth = grown_kib / max(first) * 100
    # A few hundred KiB on a 4 MiB process is the allocator, not a leak: judge growth in
    # percent, but let anything under --max-growth-kib pass.
    memory_ok = growth is not None and (growth < a.max_growth or grown_kib < a.max_growth_kib)
    ok = (not wrong and not errors and inserted == sent and received == sent and rejected == 0
          and lost == 0 and memory_ok)
    now = datetime.datetime.now()
    L = [f"# pg_influx fault soak — {now:%Y-%m-%d %H:%M:%S}\n"]
    L.append(f"- machine: {benchrun.machine_line()}; PostgreSQL {pg_version}")
    L.append(f"- command: `{' '.join(sys.argv)}`")
    L.append(f"- traffic: bench/fleet.py, {a.hosts} hosts, {a.prometheus_families} prometheus families: "
             f"{len(lines):,} lines a round over {len(per_round)} measurements, re-sent each round with "
             f"timestamps 10 s later, over {a.connections} TCP connections paced at {a.rate:,} lines/s "
             f"for {duration:.0f} s; `influx.workers={a.workers}`, `influx.batch_size={a.batch_size}`")
    L.append(f"- faults, one every {a.fault_every:g} s:\n")
    L.append("| t s | fault | detail |")
    L.append("|--:|---|---|")
    for t, kind, note in faults:
        L.append(f"| {t:.0f} | {kind} | {note} |")
    L.append("")
    L.append("Reconciliation:\n")
    L.append("| what | value |")
    L.append("|---|--:|")
    L.append(f"| lines sent | {sent:,} |")
    L.append(f"| lines received by the listener | {received:,} |")
    L.append(f"| rows inserted (influx.stats) | {inserted:,} |")
    L.append(f"| sum of count(*) over {len(expected)} tables | {sum(actual.values()):,} |")
    L.append(f"| tables whose count(*) differs from the lines sent for them | {len(wrong)} |")
    L.append(f"| lines and rows rejected (every reason) | {rejected:,} |")
    L.append(f"| lines lost | {lost:,} |")
    L.append(f"| lines sent again: a worker exited, or handed them back (locked table) | {rerouted:,} |")
    L.append(f"| flushes retried after a transient error | {retries:,} |")
    L.append("")
    if wrong:
        L.append("Tables off: " + ", ".join(f"{m}: sent {e}, found {f}" for m, (e, f) in
                                            sorted(wrong.items())[:20]))
        L.append("")
    L.append("Listener RssAnon (MiB): " + ", ".join(f"{t:.0f}s {v / 1024:.1f}" for t, v in samples if v))
    L.append("")
    L.append(f"Listener RssAnon growth, last minute's mean over the first minute's highest: "
             + (f"{growth:+.1f} % ({grown_kib:+.0f} KiB)" if growth is not None else "n/a"))
    if errors:
        L.append(f"\nSender errors: {errors}")
    L.append(f"\nResult: **{'pass' if ok else 'FAIL'}** (every table's count equals the lines sent for "
             f"it; inserted = received = sent; nothing rejected or lost; listener RssAnon growth "
             f"< {a.max_growth:g} % or < {a.max_growth_kib:g} KiB)")
    if not ok:
        L.append(f"\nServer log tail:\n\n```\n{log_tail}```")
    text = "\n".join(L) + "\n"
    os.makedirs(a.results_dir, exist_ok=True)
    path = os.path.join(a.results_dir, f"fault-soak-{now:%Y%m%d-%H%M%S}.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
