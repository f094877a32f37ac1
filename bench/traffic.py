#!/usr/bin/python3
"""traffic.py — pg_influx on the traffic deployments send, against `COPY (FORMAT binary)` of
the same rows into the same tables, in one run on one throw-away cluster.

    sudo /usr/bin/python3 bench/traffic.py                          # both scenarios, ~5 minutes
    sudo /usr/bin/python3 bench/traffic.py --scenarios fleet --repeat 5

Scenarios (bench/README.md explains every number):
  fleet        bench/fleet.py's Telegraf fleet (--hosts agents x --intervals gathers; every
               agent sends its cpu, mem, disk, net, docker, syslog, ... and --prometheus-families
               exporter families: hundreds of measurements in flight, sparse fields, strings
               with escapes, integers, unsigned, booleans) over 4 TCP connections into the
               typed tables pg_influx creates itself; against one COPY per table, back to back
               in one session and one transaction (what a client that pre-sorted its rows by
               table could do best).
  partitioned  bench/loadgen's cpu lines (1M by default, 10 days of data) into a table
               range-partitioned by _time into daily partitions (as pg_partman makes them)
               with a btree index on (host, _time); against one COPY into the partitioned
               table.

How the COPY side gets the same rows: fleet — an untimed first load through pg_influx creates
the tables (influx.add_columns on, so every field gets its column); each table is then
written to a binary file with `COPY ... TO` and recreated for COPY with
`CREATE TABLE ... (LIKE ... INCLUDING ALL)`; partitioned — loadgen writes the binary file
from the same generator as the lines.  Every timed load starts from truncated tables (no DDL
in a timed load) after a CHECKPOINT.  Each pg_influx load is timed from loadgen's first byte
to the influx.stats() poll that shows every line committed; afterwards the row count of every
table is checked against the generator's own count, and after the last trial both schemas
are compared row for row (EXCEPT ALL).

Reports to bench/results/traffic-<timestamp>.md (bench/run.py's report: rows/s, the ratio to
COPY, server CPU seconds per million rows for both).  Only Debian's python3 standard library.
"""

import argparse
import datetime
import os
import pwd
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, BENCH_DIR)
import fleet  # noqa: E402  (bench/fleet.py: the Telegraf fleet generator)
import run as benchrun  # noqa: E402  (bench/run.py: cluster, psql, loads, report)

log = benchrun.log
DAY_NS = 86_400 * 10**9
START_NS = 1_704_067_200 * 10**9  # loadgen's first timestamp: 2024-01-01 00:00:00 UTC
_write_report = benchrun.write_report


RESULTS = []  # the run's results, for the plot


def write_report(path, text, png=None, caption=""):
    """bench/run.py's report as traffic-<timestamp>.md (+ .png), its one-dataset line
    replaced by the scenarios' own (in its notes)."""
    text = "\n".join(x for x in text.split("\n") if not x.startswith("- dataset:"))
    head, name = os.path.split(path)
    path = os.path.join(head, "traffic-" + name)
    png = plot(path[:-3] + ".png")
    return _write_report(path, text, png, "rows/s per scenario: binary COPY and pg_influx")


def plot(path):
    """A bar per scenario and method: median rows/s (python3-matplotlib; none without it)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (apt-get install -y python3-matplotlib): no plot")
        return None
    from statistics import median
    bars = {}
    for r in RESULTS:
        if r.get("secs") and r.get("ok", True):
            bars.setdefault((r["variant"].name, r["method"]), []).append(r["rows"] / r["secs"])
    if not bars:
        return None
    keys = list(bars)
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(keys) + 1.5))
    y = list(range(len(keys)))[::-1]
    rates = [median(bars[k]) for k in keys]
    ax.barh(y, rates, color=["0.6" if "COPY" in k[1] else "tab:blue" for k in keys])
    for yi, rate in zip(y, rates):
        ax.text(rate, yi, f" {rate:,.0f}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{k[0]}: {k[1].strip('`')}" for k in keys], fontsize=8)
    ax.set_xlim(0, max(rates) * 1.2)
    ax.set_xlabel("rows/s (median of the timed trials)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("pg_influx on real traffic vs binary COPY of the same rows (bench/traffic.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


benchrun.write_report = write_report


def cut_safe(lines, connections):
    """The fleet's lines joined into one file whose loadgen cuts all fall at the end of a
    line.  loadgen splits a file into `connections` byte ranges, cutting after the first
    newline at or after byte size*c/C; a line with a raw newline inside a quoted string
    there would be cut in two, so it is swapped with the next line that has none (the same
    rows, in a slightly other order)."""
    lines = list(lines)
    size = sum(len(x.encode()) + 1 for x in lines)
    for c in range(1, connections):
        target = size * c // connections
        while True:
            pos, i = 0, 0  # line i holds byte target - 1, where loadgen's search starts
            while pos + len(lines[i].encode()) + 1 < target:
                pos += len(lines[i].encode()) + 1
                i += 1
            if "\n" not in lines[i]:
                break
            j = next(k for k in range(i + 1, len(lines)) if "\n" not in lines[k])
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


def last_timestamp(path):
    """The timestamp of a line-protocol file's last line (loadgen writes them in time order)."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 4096))
        return int(f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].rsplit(b" ", 1)[1])


class Traffic(benchrun.Bench):
    def __init__(self, args):
        super().__init__(args)
        self.results = RESULTS
        self.expected = {}  # variant name -> {table: rows}

    # ----- the fleet -----

    def setup_fleet(self, c, db, v):
        a = self.args
        lines, expected = fleet.generate(hosts=a.hosts, intervals=a.intervals, seed=a.seed,
                                         prometheus_families=a.prometheus_families)
        data = cut_safe(lines, a.connections)
        lp = os.path.join(c.files, "fleet.lp")
        with open(lp, "w") as f:
            f.write(data)
        os.chmod(lp, 0o644)
        self.files[(v.name, "lp")] = lp
        v.lines = len(lines)
        self.expected[v.name] = expected
        log(f"fleet: {len(lines):,} lines, {len(expected)} measurements, {len(data) / 1e6:.1f} MB "
            f"({a.hosts} hosts x {a.intervals} gathers, {a.prometheus_families} prometheus families)")

        # The tables, as pg_influx creates them: an untimed first load.
        benchrun.writer_schema(db, v.influx_schema)
        self.set_influx(db, schema=v.influx_schema, add_columns="on")
        base = self.influx_counters(db)
        benchrun.loadgen(["--mode", "tcp", "--in", lp, "--port", c.tcp_port,
                          "--connections", a.connections, "--quiet"])
        self.wait_settled(db, base, v.lines)
        v.tables = [r[0] for r in db.query(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = "
            f"'{v.influx_schema}'::regnamespace ORDER BY relname")]
        missing = sorted(set(expected) - set(v.tables))
        if missing:
            raise SystemExit(f"fleet: tables not created by the first load: {missing[:10]}")

        # The same rows for COPY: each table to a binary file, and a twin table.
        pattern = os.path.join(c.files, "fleet_%m.bin")
        self.files[(v.name, "binary")] = pattern
        db.query(f"DROP SCHEMA IF EXISTS {v.copy_schema} CASCADE")
        db.query(f"CREATE SCHEMA {v.copy_schema}")
        for t in v.tables:
            db.query(f'COPY {v.influx_schema}."{t}" TO \'{pattern.replace("%m", t)}\' (FORMAT binary)')
            db.query(f'CREATE TABLE {v.copy_schema}."{t}" (LIKE {v.influx_schema}."{t}" INCLUDING ALL)')
        columns = int(db.value("SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                               f"WHERE c.relnamespace = '{v.influx_schema}'::regnamespace AND c.relkind = 'r' "
                               "AND a.attnum > 0 AND NOT a.attisdropped"))
        self.notes.append(f"fleet: {v.lines:,} lines into {len(v.tables)} tables of {columns:,} columns "
                          f"in all (created by the untimed first load, influx.add_columns on)")

    def wait_settled(self, db, base, n):
        t0 = benchrun.time.monotonic()
        last, last_change = -1, t0
        while True:
            cur = self.influx_counters(db)
            done = self.rows_settled(cur) - self.rows_settled(base)
            if done >= n:
                return
            now = benchrun.time.monotonic()
            if done != last:
                last, last_change = done, now
            elif now - last_change > self.args.stall:
                raise SystemExit(f"first load stalled at {done} of {n} rows")
            benchrun.time.sleep(0.05)

    # ----- partitioned -----

    def setup_partitioned(self, c, db, v):
        a = self.args
        lp = os.path.join(c.files, "part.lp")
        binary = os.path.join(c.files, "part.bin")
        interval = a.days * DAY_NS // max(1, a.part_lines // 500)  # a first guess: 500 series per tick
        for _ in range(3):
            common = ["--dataset", "cpu", "--lines", a.part_lines, "--seed", a.seed, "--threads", 2,
                      "--interval-ns", interval]
            benchrun.loadgen(["--mode", "lp", "--out", lp] + common)
            span = last_timestamp(lp) - START_NS
            if span < a.days * DAY_NS:
                break
            interval = interval * (a.days * DAY_NS) * 97 // (100 * span)
        else:
            raise SystemExit("partitioned: could not fit the lines into the days")
        benchrun.loadgen(["--mode", "binary", "--shape", "typed", "--out", binary] + common)
        for p in (lp, binary):
            os.chmod(p, 0o644)
        self.files[(v.name, "lp")] = lp
        self.files[(v.name, "binary")] = binary
        table = benchrun.run([benchrun.LOADGEN, "--mode", "ddl", "--dataset", "cpu", "--shape",
                              "typed"]).stdout.strip().rstrip(";")
        start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        ddl = [table + " PARTITION BY RANGE (_time)", "CREATE INDEX ON public.cpu (host, _time)"]
        for d in range(a.days):
            lo, hi = start + datetime.timedelta(days=d), start + datetime.timedelta(days=d + 1)
            ddl.append(f"CREATE TABLE public.cpu_p{lo:%Y%m%d} PARTITION OF public.cpu "
                       f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')")
        ddl = ";\n".join(ddl) + ";"
        v.tables = ["cpu"]
        v.lines = a.part_lines
        self.expected[v.name] = {"cpu": a.part_lines}
        db.query(f"DROP SCHEMA IF EXISTS {v.copy_schema} CASCADE")
        db.query(f"CREATE SCHEMA {v.copy_schema}")
        db.query(ddl.replace("public.", v.copy_schema + "."))
        db.query(f"DROP SCHEMA IF EXISTS {v.influx_schema} CASCADE")
        benchrun.writer_schema(db, v.influx_schema, ddl)
        self.set_influx(db, schema=v.influx_schema)
        self.notes.append(f"partitioned: {a.part_lines:,} cpu lines over {a.days} days (a tick every "
                          f"{interval / 1e9:.0f} s), {a.days} daily partitions, btree (host, _time)")

    # ----- the run -----

    def check_counts(self, db, v, schema):
        wrong = {t: (int(db.value(f'SELECT count(*) FROM {schema}."{t}"')), n)
                 for t, n in self.expected[v.name].items()}
        return {t: x for t, x in wrong.items() if x[0] != x[1]}

    def main(self):
        a = self.args
        c = self.cluster = benchrun.Cluster(a, prefix="pg_influx_traffic.")
        db = None
        try:
            c.init(dict(kv.split("=", 1) for kv in a.set))
            c.start()
            pw = pwd.getpwnam("postgres")
            os.chown(c.files, pw.pw_uid, pw.pw_gid)  # COPY ... TO writes the fleet's files here
            db = benchrun.Psql(c.dir, c.port)
            db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
            if not self.wait_listener(db, timeout=30):
                raise SystemExit("the listener did not start")
            for name in a.scenarios:
                v = benchrun.Variant(name, name, "typed", name == "partitioned", SCENARIOS[name])
                log(f"=== {name}: {v.title}")
                (self.setup_fleet if name == "fleet" else self.setup_partitioned)(c, db, v)
                a.lines = v.lines  # what influx_tcp waits for
                for trial in range(a.warmup + a.repeat):
                    record = trial >= a.warmup
                    self.copy_binary(db, v, record=record)
                    wrong = self.check_counts(db, v, v.copy_schema)
                    if wrong:
                        raise SystemExit(f"{name}: COPY left wrong counts: {list(wrong.items())[:5]}")
                    if self.influx_tcp(db, v, record=record) is None:
                        raise SystemExit(f"{name}: the pg_influx load did not complete")
                    wrong = self.check_counts(db, v, v.influx_schema)
                    if wrong:
                        raise SystemExit(f"{name}: pg_influx left wrong counts: {list(wrong.items())[:5]}")
                diff = self.verify(db, v)
                last = [r for r in self.results if r["variant"] is v and r["method"].startswith("pg_influx")]
                last[-1]["verify"] = diff
                log(f"{name}: rows differing between pg_influx and COPY: {diff}")
            self.pg_version = db.value("SHOW server_version")
            self.final_settings = db.query(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name LIKE 'influx.%' "
                "OR name IN ('shared_buffers','synchronous_commit','fsync','max_wal_size',"
                "'autovacuum') ORDER BY name")
        finally:
            c.finish([db], a.keep)
        return self.report()


SCENARIOS = {
    "fleet": "Telegraf fleet: hundreds of measurements, sparse fields, strings, typed tables",
    "partitioned": "cpu into daily range partitions with a btree (host, _time)",
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default="fleet,partitioned", help="comma list of fleet,partitioned")
    p.add_argument("--hosts", type=int, default=200, help="fleet: agents (default 200: 475,335 lines)")
    p.add_argument("--intervals", type=int, default=4, help="fleet: gathers per agent (default 4)")
    p.add_argument("--prometheus-families", type=int, default=300,
                   help="fleet: exporter families per agent (default 300)")
    p.add_argument("--lines", dest="part_lines", type=int, default=1_000_000,
                   help="partitioned: cpu lines (default 1M)")
    p.add_argument("--days", type=int, default=10, help="partitioned: days = daily partitions (default 10)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workers", type=int, default=2, help="influx.workers (default 2)")
    p.add_argument("--batch-size", type=int, default=10000, help="influx.batch_size (default 10000)")
    p.add_argument("--connections", type=int, default=4, help="TCP connections (default 4)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="extra postgresql.conf setting")
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--repeat", type=int, default=3, help="timed trials of every load (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed trials first (default 1)")
    p.add_argument("--timeout", type=float, default=300, help="longest wait for one load (s)")
    p.add_argument("--stall", type=float, default=30, help="give up after this long without progress (s)")
    p.add_argument("--keep", action="store_true", help="keep the cluster directory")
    p.add_argument("--tmpdir", default="/tmp")
    p.add_argument("--results-dir", default=os.path.join(BENCH_DIR, "results"))
    a = p.parse_args()
    a.scenarios = [x for x in a.scenarios.split(",") if x]
    for n in a.scenarios:
        if n not in SCENARIOS:
            p.error(f"unknown scenario {n}")
    # bench/run.py's Cluster and report read these
    a.no_influx, a.no_verify, a.udp_rates, a.sweep = False, False, [], False
    a.lines = 0  # bench/run.py's loads wait for a.lines rows: set per scenario
    if os.geteuid() != 0:
        p.error("run as root (the cluster runs as the postgres user)")
    log("building bench/loadgen")
    benchrun.run(["make", "-s", "-C", BENCH_DIR, "loadgen"])
    sys.exit(Traffic(a).main())


if __name__ == "__main__":
    main()
