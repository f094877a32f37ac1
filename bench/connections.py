#!/usr/bin/python3
"""connections.py — thousands of agents, each holding a TCP connection and sending a
Telegraf-sized batch every second: is every line stored, how long until it is visible, what
does each connection cost the listener, and does a connection storm starve anyone?

    sudo /usr/bin/python3 bench/connections.py                      # 5,000 agents, 2 minutes
    sudo /usr/bin/python3 bench/connections.py --agents 1000 --seconds 20   # a quick look

What it does (bench/README.md explains every number):
  1. starts a throw-away cluster (bench/latency.py's: PostgreSQL 5460-5469, influx
     39000-39999; influx.max_connections 10000, flush_interval 200 ms, fsync and
     synchronous_commit on) with the typed `cpu` table and `probe` in schema influx_lat;
  2. starts the probes (one `probe` line every ~100 ms on a connection of its own; a poller
     session records when each becomes visible), and measures the listener's RssAnon;
  3. the storm: opens --agents connections as fast as it can (the time it took is
     reported), while the probes go on;
  4. for --seconds, every agent sends one batch per second, the agents spread evenly over
     the second: --lines-per-batch `cpu` lines (host = the agent, cpu = cpu0...; ten float
     fields; that second's timestamp), ~2 KB; the sender's lag behind its schedule is
     recorded (backpressure shows there);
  5. measures the listener's RssAnon again with every connection open, then closes them
     and waits until influx.stats() shows every line settled, and counts the rows;
  6. reports lines sent / rows stored (must be equal), rows/s, the probes' send-to-visible
     p50/p99 over the whole run and during the storm (target p99 <= flush_interval + 100 ms),
     listener memory per connection (target <= 64 KiB), CPU of listener and workers, and
     writes bench/results/connections-<timestamp>.md.

Only Debian's python3 standard library and psql.
"""

import argparse
import datetime
import os
import resource
import socket
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, BENCH_DIR)
import run as benchrun  # noqa: E402
from latency import Cluster, Probes, cluster_args, percentile, poll, probe_sender  # noqa: E402

log = benchrun.log
FIELDS = ("usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait", "usage_irq",
          "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice")
T0_S = 1_704_067_200  # 2024-01-01 00:00:00 UTC: agent second k is at T0_S + k


def agent_lines(agent, n):
    """The agent's batch without its timestamps: one prefix per line, the timestamp and a
    newline go after it."""
    out = []
    for k in range(n):
        values = ",".join(f"{f}={(agent * 7 + k * 3 + i) % 100 + 0.5}" for i, f in enumerate(FIELDS))
        out.append(f"cpu,cpu=cpu{k},host=agent{agent:05d} {values} ".encode())
    return out


class Agents(threading.Thread):
    """Every agent's connection, and one batch per agent per second, spread over the second."""

    def __init__(self, port, agents, lines_per_batch, seconds):
        super().__init__(daemon=True)
        self.port, self.n, self.per, self.seconds = port, agents, lines_per_batch, seconds
        self.socks = []
        self.prefixes = [agent_lines(i, lines_per_batch) for i in range(agents)]
        self.lines = self.bytes = 0
        self.max_lag = 0.0
        self.lags = []
        self.error = None
        self.storm_secs = None
        self.stop = threading.Event()

    def connect_all(self):
        """All connects at once (non-blocking), then wait for every one to complete: a storm,
        as when a fleet's agents restart together."""
        import select
        import errno
        t0 = time.monotonic()
        pending = {}
        for _ in range(self.n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            e = s.connect_ex(("127.0.0.1", self.port))
            if e not in (0, errno.EINPROGRESS):
                raise OSError(e, os.strerror(e))
            self.socks.append(s)
            pending[s.fileno()] = s
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        deadline = t0 + 60
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(1000):
                s = pending.pop(fd, None)
                if s is None:
                    continue
                poller.unregister(fd)
                e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e != 0:
                    raise OSError(e, os.strerror(e))
        if pending:
            raise RuntimeError(f"{len(pending)} connects not done after 60 s")
        self.storm_secs = time.monotonic() - t0
        for s in self.socks:
            s.setblocking(True)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run(self):
        try:
            start = time.monotonic()
            for sec in range(int(self.seconds)):
                ts = f"{(T0_S + sec) * 10**9}\n".encode()
                tick = start + sec
                for i, s in enumerate(self.socks):
                    if self.stop.is_set():
                        return
                    due = tick + i / self.n
                    now = time.monotonic()
                    if now < due:
                        time.sleep(due - now)
                    else:
                        lag = now - due
                        self.max_lag = max(self.max_lag, lag)
                        if i % 100 == 0:
                            self.lags.append(lag)
                    payload = b"".join(p + ts for p in self.prefixes[i])
                    s.sendall(payload)
                    self.lines += self.per
                    self.bytes += len(payload)
        except Exception as e:  # reported by the caller
            self.error = repr(e)

    def close(self):
        for s in self.socks:
            s.close()


def listener_pid(db):
    return int(db.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'influx listener'"))


def rss_anon(pid):
    return benchrun.proc_status_kib(pid, "RssAnon")[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=5000, help="connections (default 5000)")
    p.add_argument("--seconds", type=float, default=120, help="sending time (default 120)")
    p.add_argument("--lines-per-batch", type=int, default=20, help="lines per agent per second (default 20)")
    p.add_argument("--flush-ms", type=int, default=200, help="influx.flush_interval (default 200)")
    p.add_argument("--probe-ms", type=int, default=100, help="one probe line every N ms (default 100)")
    p.add_argument("--poll-ms", type=float, default=5, help="poll period in ms (default 5)")
    p.add_argument("--give-up", type=float, default=10, help="wait this long for the last probes (s)")
    p.add_argument("--timeout", type=float, default=120, help="longest wait for the rows after sending (s)")
    benchrun.add_looped_load_options(p, lines=0)
    a = p.parse_args()
    if os.geteuid() != 0:
        p.error("run as root (the cluster runs as the postgres user)")
    # This script holds every agent's socket: raise our own soft limit on open files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.agents + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.agents + 1000), hard))
    load_before = os.getloadavg()[0]
    c = Cluster(cluster_args(a), "pg_influx_connections.")
    db = None
    res = {}
    try:
        c.init({"influx.schema": "'influx_lat'", "influx.flush_interval": f"'{a.flush_ms}ms'",
                "influx.max_connections": 10000, "max_connections": 200})
        c.start()
        db = benchrun.Psql(c.dir, c.port)
        db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
        ddl = ("CREATE TABLE public.cpu (_time timestamptz NOT NULL, host text, cpu text, "
               + ", ".join(f"{f} float8" for f in FIELDS) + ");\n"
               "CREATE TABLE public.probe (_time timestamptz NOT NULL, src text, marker int8);")
        benchrun.writer_schema(db, "influx_lat", ddl)
        b = benchrun.Bench(a)
        if not b.wait_listener(db, timeout=30):
            raise SystemExit(f"listener not ready:\n{c.log_tail()}")
        pid = listener_pid(db)
        procs = b.influx_procs(db)
        cpu0 = {q: benchrun.proc_cpu(q) for q in procs}
        base = b.influx_counters(db)
        mem0 = rss_anon(pid)

        agents = Agents(c.tcp_port, a.agents, a.lines_per_batch, a.seconds)
        probes = Probes()
        stop = threading.Event()
        total_s = a.seconds + 10
        pt = threading.Thread(target=probe_sender, daemon=True,
                              args=(c.tcp_port, probes, total_s, a.probe_ms, stop, 1_000_000))
        pt.start()
        poller_out = {}
        poller = threading.Thread(target=lambda: poller_out.setdefault(
            "rtts", poll(benchrun.Psql(c.dir, c.port), probes, a.poll_ms, a.give_up, total_s + a.give_up + 30)),
            daemon=True)
        poller.start()
        time.sleep(2)  # probes before the storm: the quiet baseline
        log(f"storm: opening {a.agents} connections")
        storm_t0 = time.monotonic()
        agents.connect_all()
        storm_t1 = time.monotonic()
        log(f"storm: {a.agents} connections in {agents.storm_secs:.2f} s")
        mem_connected = rss_anon(pid)
        t_send = time.monotonic()
        agents.start()
        agents.join(a.seconds + 60)
        send_secs = time.monotonic() - t_send
        mem_loaded = rss_anon(pid)
        open_conns = int(db.value("SELECT tcp_connections FROM influx.listener_status()"))
        log(f"sent {agents.lines:,} lines in {send_secs:.1f} s; listener RssAnon {mem0} -> "
            f"{mem_connected} (connected) -> {mem_loaded} KiB (loaded); {open_conns} open")
        agents.close()
        stop.set()
        pt.join(10)
        # Every line settled (committed or rejected), then counted.
        deadline = time.monotonic() + a.timeout
        target = agents.lines + len(probes.sent)
        while time.monotonic() < deadline:
            cur = b.influx_counters(db)
            if b.rows_settled(cur) - b.rows_settled(base) >= target:
                break
            time.sleep(0.2)
        after = b.influx_counters(db)
        rows = int(db.value("SELECT count(*) FROM influx_lat.cpu"))
        poller.join(a.give_up + 40)
        cpu = {}
        for q, kind in procs.items():
            c1 = benchrun.proc_cpu(q)
            if c1 is not None and cpu0.get(q) is not None:
                cpu[kind] = cpu.get(kind, 0.0) + c1 - cpu0[q]
        lat_all = sorted((probes.seen[m] - probes.sent[m]) * 1000 for m in probes.seen)
        lat_storm = sorted((probes.seen[m] - probes.sent[m]) * 1000 for m in probes.seen
                           if storm_t0 - 0.5 <= probes.sent[m] <= storm_t1 + 0.5)
        res = dict(sent=agents.lines, rows=rows, send_secs=send_secs, storm=agents.storm_secs,
                   mem0=mem0, mem_connected=mem_connected, mem_loaded=mem_loaded, open=open_conns,
                   lat=lat_all, lat_storm=lat_storm, probes_sent=len(probes.sent),
                   probes_seen=len(probes.seen), cpu=cpu, error=agents.error,
                   max_lag=agents.max_lag, lag_p99=percentile(sorted(agents.lags), 99),
                   d={k: after[k] - base[k] for k in after} if base and after else {},
                   pg=db.value("SHOW server_version"))
    finally:
        c.finish([db], a.keep)
    sys.exit(report(a, res, load_before))


def fmt(x, d=1):
    return "n/a" if x is None else f"{x:,.{d}f}"


def report(a, r, load_before):
    now = datetime.datetime.now()
    target_ms = a.flush_ms + 100
    p99, p99s = percentile(r["lat"], 99), percentile(r["lat_storm"], 99)
    per_conn = (r["mem_loaded"] - r["mem0"]) / a.agents
    checks = {
        "every line stored": r["rows"] == r["sent"] and not r["error"],
        f"probe p99 <= {target_ms} ms": p99 is not None and p99 <= target_ms
                                        and r["probes_seen"] == r["probes_sent"],
        f"probe p99 during the storm <= {target_ms} ms": p99s is not None and p99s <= target_ms,
        "listener memory <= 64 KiB per connection": per_conn <= 64,
    }
    L = [f"# pg_influx: {a.agents:,} agents on TCP — {now:%Y-%m-%d %H:%M:%S}\n"]
    L.append(f"- machine: {benchrun.machine_line()}; PostgreSQL {r['pg']}; pg_influx {benchrun.repo_revision()}")
    L.append(f"- load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    L.append(f"- command: `{' '.join(sys.argv)}`")
    L.append(f"- load: {a.agents:,} TCP connections opened at once (the storm), then each sends "
             f"{a.lines_per_batch} `cpu` lines (~{a.lines_per_batch * 110} bytes) once a second, "
             f"the agents spread over the second, for {a.seconds:.0f} s "
             f"({a.agents * a.lines_per_batch:,} lines/s offered); probes every {a.probe_ms} ms "
             f"on their own connection, polled every {a.poll_ms} ms from another session; "
             f"`influx.flush_interval={a.flush_ms}ms`, `influx.workers={a.workers}`, "
             f"`influx.batch_size={a.batch_size}`, fsync and synchronous_commit on")
    L.append("")
    L.append("| measure | value |")
    L.append("|---|--:|")
    L.append(f"| lines sent / rows stored | {r['sent']:,} / {r['rows']:,} |")
    L.append(f"| sending time, rate | {r['send_secs']:.1f} s, {r['sent'] / r['send_secs']:,.0f} lines/s |")
    L.append(f"| sender lag behind schedule: p99 / max | {fmt((r['lag_p99'] or 0) * 1000)} / {fmt(r['max_lag'] * 1000)} ms |")
    L.append(f"| storm: {a.agents:,} connects took | {r['storm']:.2f} s |")
    L.append(f"| connections open at the end of sending | {r['open']:,} |")
    L.append(f"| probes seen / sent | {r['probes_seen']} / {r['probes_sent']} |")
    L.append(f"| send-to-visible p50 / p99 / max, whole run | {fmt(percentile(r['lat'], 50))} / {fmt(p99)} / "
             f"{fmt(r['lat'][-1] if r['lat'] else None)} ms |")
    L.append(f"| send-to-visible p99 / max, probes sent during the storm ({len(r['lat_storm'])}) | {fmt(p99s)} / "
             f"{fmt(r['lat_storm'][-1] if r['lat_storm'] else None)} ms |")
    L.append(f"| listener RssAnon: idle / connected / after the load | {r['mem0']:,} / "
             f"{r['mem_connected']:,} / {r['mem_loaded']:,} KiB |")
    L.append(f"| listener memory per connection | {per_conn:.1f} KiB |")
    cpu = r["cpu"]
    rows = max(r["rows"], 1)
    L.append(f"| CPU s per million rows: listener / workers | "
             f"{fmt(cpu.get('influx listener', 0) / rows * 1e6, 2)} / {fmt(cpu.get('influx worker', 0) / rows * 1e6, 2)} |")
    d = r["d"]
    L.append(f"| influx.stats() deltas | inserted {d.get('inserted', 0):,}, rejected {d.get('rejected', 0)}, "
             f"errors {d.get('errors', 0)}, queue_full {d.get('queue_full', 0)} |")
    L.append("")
    L.append("## Targets\n")
    for name, ok in checks.items():
        L.append(f"- {name}: **{'met' if ok else 'MISSED'}**")
    if r["error"]:
        L.append(f"- sender error: {r['error']}")
    text = "\n".join(L) + "\n"
    os.makedirs(a.results_dir, exist_ok=True)
    path = os.path.join(a.results_dir, f"connections-{now:%Y%m%d-%H%M%S}.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    main()
