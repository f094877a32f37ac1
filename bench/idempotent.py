#!/usr/bin/python3
"""Idempotent writes (issue 14): pg_influx into a table with a unique key on (_time, tags),
by `influx.on_conflict` policy, against the best a client can do itself, in one run on one
throw-away cluster.

    sudo /usr/bin/python3 bench/idempotent.py                  # 1M cpu lines per load, ~4-6 minutes
    sudo /usr/bin/python3 bench/idempotent.py --lines 50000    # a quick look
    sudo /usr/bin/python3 bench/idempotent.py --baselines-only # before influx.on_conflict exists

What it does (bench/README.md explains every number):
  1. builds bench/loadgen, starts a throw-away cluster as the postgres user (bench/run.py's
     Cluster: shared_preload_libraries = pg_influx, fsync, synchronous_commit and
     influx.synchronous_commit on, autovacuum off; PostgreSQL on a free port in 5470-5479,
     influx TCP/UDP/HTTP in 43000-43999) and checks that the installed pg_influx has the
     setting influx.on_conflict (else it stops, unless --baselines-only);
  2. generates the cpu dataset twice with bench/loadgen: A (--seed) and B (the same points:
     tags and timestamps, with other field values: --value-seed), each as line protocol,
     binary COPY and CSV; the client's SQL (multi-row INSERT ... ON CONFLICT DO UPDATE of
     --client-rows rows per statement) is written from the CSV, one file per connection;
  3. creates bench.cpu (loadgen's typed columns + UNIQUE NULLS NOT DISTINCT (_time, host, cpu))
     as the workers' role, and ref.a / ref.b (the datasets by COPY, for the checks);
  4. after an untimed warm-up, per trial: COPY binary into the empty keyed table (reference);
     pg_influx over 4 TCP connections with (a0) error, (a) merge into the empty table, (b)
     merge resending A onto A, (b2) merge sending B onto A, (c) skip sending B onto A; the
     client's INSERT ... ON CONFLICT over 4 psql sessions, A onto A and B onto A. A full table
     is refilled by COPY + VACUUM + CHECKPOINT before each load (untimed). Every load is
     checked: count(*) = lines and every row equal to the dataset it must hold (full join
     with ref.a / ref.b on the key, plus sums of three fields);
  5. writes bench/results/idempotent-<timestamp>.md (+ .png with python3-matplotlib).

Only Debian's python3 standard library and psql (python3-psycopg2 is not needed).
"""

import argparse
import csv
import datetime
import os
import pwd
import re
import sys
import threading
import time
from statistics import median

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, BENCH_DIR)
import run as benchrun  # noqa: E402  (bench/run.py: cluster, psql coprocess, /proc helpers, loads)

log = benchrun.log
fmt_rate, fmt_num = benchrun.fmt_rate, benchrun.fmt_num

POLICIES = ("error", "merge", "skip")
SCHEMA = "bench"
# influx.stats() columns bench/run.py already sums (Bench.influx_counters: inserted, rejected);
# every other rows_* column is taken for a new outcome (merged, skipped, ...) of a line.
KNOWN_ROW_COUNTERS = {"rows_inserted", "rows_rejected_value", "rows_rejected_insert", "rows_rejected_table"}
CHECKED_FIELDS = ("usage_user", "usage_idle", "usage_guest_nice")  # summed in the spot check


class Cluster(benchrun.Cluster):
    """run.py's throw-away cluster, on port ranges of its own so that it can run next to
    bench/run.py (5450-5459), latency.py (5460-5469) and http_write.py (5480-5489)."""

    PG_PORTS = range(5470, 5480)
    INFLUX_PORTS = range(43000, 44000)


class Load:
    """One timed load: what was sent into which table state, and what came out."""

    def __init__(self, key, label, policy, before, data, kind):
        self.key, self.label, self.policy, self.before, self.data, self.kind = key, label, policy, before, data, kind
        self.rows = self.secs = self.cpu = self.client_cpu = self.mcpu = self.busy = None
        self.counters = None
        self.checks = []   # (text, passed)
        self.ok = False

    @property
    def rate(self):
        return self.rows / self.secs if self.ok and self.secs else None


class IdempotentBench:
    def __init__(self, a):
        self.a = a
        self.loads = []
        self.notes = []
        self.ok = True
        self.load_before = os.getloadavg()[0]
        self.policy_setting = None  # pg_settings row of influx.on_conflict, None if missing

    # ----- setup -----

    def gen_files(self):
        a, c, b = self.a, self.c, self.b
        self.lp, self.bin, self.csv = {}, {}, {}
        for name, vseed in (("a", a.seed), ("b", a.value_seed)):
            common = ["--dataset", "cpu", "--lines", a.lines, "--seed", a.seed, "--value-seed", vseed,
                      "--threads", 2]
            log(f"generating dataset {name.upper()}: {a.lines:,} cpu lines (value seed {vseed}), binary COPY, CSV")
            for mode, store, ext in (("lp", self.lp, "lp"), ("binary", self.bin, "bin"), ("csv", self.csv, "csv")):
                store[name] = os.path.join(c.files, f"cpu_{name}.{ext}")
                benchrun.loadgen(["--mode", mode, "--out", store[name]]
                                 + ([] if mode == "lp" else ["--shape", "typed"]) + common)
                os.chmod(store[name], 0o644)
        b.files[("typed", "lp")] = self.lp["a"]
        b.files[("typed", "binary")] = self.bin["a"]

    def table_ddl(self):
        """loadgen's typed DDL for cpu, its tag (text) and field columns, and the key."""
        ddl = benchrun.run([benchrun.LOADGEN, "--mode", "ddl", "--dataset", "cpu", "--shape", "typed"]).stdout
        cols = re.search(r"CREATE TABLE public\.cpu \((.*)\);", ddl).group(1)
        self.columns = [c.split()[0] for c in cols.split(", ")]
        self.tags = [c.split()[0] for c in cols.split(", ") if c.split()[1] == "text"]
        self.fields = [c for c in self.columns if c != "_time" and c not in self.tags]
        self.key = ["_time"] + self.tags
        return ddl

    def create_tables(self, db):
        ddl = self.table_ddl()
        self.key_ddl = (f"ALTER TABLE public.cpu ADD CONSTRAINT cpu_point "
                        f"UNIQUE NULLS NOT DISTINCT ({', '.join(self.key)})")
        benchrun.writer_schema(self.db, SCHEMA, ddl + ";\n" + self.key_ddl)
        db.query("CREATE SCHEMA ref")
        for name in ("a", "b"):
            db.query(ddl.replace("public.cpu", f"ref.{name}"))
            db.query(f"COPY ref.{name} FROM '{self.bin[name]}' (FORMAT binary)", timeout=self.a.timeout)
            db.query(f"VACUUM ANALYZE ref.{name}", timeout=self.a.timeout)
        self.ref_sums = {name: self.sums(db, f"ref.{name}") for name in ("a", "b")}
        if self.ref_sums["a"] == self.ref_sums["b"]:
            raise SystemExit("datasets A and B have the same values: --value-seed must differ from --seed")

    def write_client_sql(self):
        """The client's statements, from the CSV: one file per connection (contiguous slices, as
        loadgen cuts its TCP connections' slices), --client-rows rows per INSERT ... ON CONFLICT
        DO UPDATE of every field. Values are the CSV's text as quoted literals, each typed by its
        column (unquoted numbers would go through numeric first: ~25 % slower here), the same
        doubles as the lines."""
        a, c = self.a, self.c
        cols = ", ".join(self.columns)
        upd = ", ".join(f"{f} = EXCLUDED.{f}" for f in self.fields)
        tail = f"\nON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {upd};\n"

        def literal(v):
            return "'" + v.replace("'", "''") + "'" if v != "" else "NULL"
        self.sql = {}
        for name in ("a", "b"):
            paths = [os.path.join(c.files, f"client_{name}_{k}.sql") for k in range(a.connections)]
            per = -(-a.lines // a.connections)
            with open(self.csv[name], newline="") as f:
                rows = csv.reader(f)
                for path in paths:
                    with open(path, "w") as out:
                        left = per
                        while left > 0:
                            chunk = []
                            for r in rows:
                                chunk.append("(" + ",".join(map(literal, r)) + ")")
                                if len(chunk) == min(a.client_rows, left):
                                    break
                            if not chunk:
                                break
                            left -= len(chunk)
                            out.write(f"INSERT INTO {SCHEMA}.cpu ({cols}) VALUES\n" + ",\n".join(chunk) + tail)
                    os.chmod(path, 0o644)
            self.sql[name] = paths
        log(f"client SQL: {a.connections} files per dataset, {a.client_rows:,} rows per statement")

    # ----- the policy setting -----

    def check_setting(self, db):
        r = db.query("SELECT vartype, coalesce(array_to_string(enumvals, ','), ''), context "
                     "FROM pg_settings WHERE name = 'influx.on_conflict'")
        if not r:
            return None
        vartype, enumvals, context = r[0]
        return dict(vartype=vartype, enumvals=[x for x in enumvals.split(",") if x], context=context)

    def set_policy(self, db, policy, timeout=30):
        """ALTER SYSTEM + reload, then polls: SHOW in this session shows the new value (the
        postmaster, which signals every process after its own reload, has it), then the workers
        are restarted and a new set is running (forked after the reload: they have it too)."""
        db.query(f"ALTER SYSTEM SET influx.on_conflict = '{policy}'")
        db.query("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while db.value("SHOW influx.on_conflict") != policy:
            if time.monotonic() > deadline:
                err = db.query("SELECT coalesce(error, '') FROM pg_file_settings WHERE name = 'influx.on_conflict'")
                raise SystemExit(f"influx.on_conflict did not become {policy!r} within {timeout}s: {err}")
            time.sleep(0.01)
        self.restart_workers(db, deadline)

    def restart_workers(self, db, deadline):
        b = self.b
        old = {pid for pid, k in b.influx_procs(db).items() if k == "influx worker"}
        db.query("SELECT influx.restart_workers()")
        while True:
            status, wanted, running = b.listener_status(db)
            now = {pid for pid, k in b.influx_procs(db).items() if k == "influx worker"}
            if status == "running" and wanted and running == wanted and len(now) == wanted and not (now & old):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"workers not restarted: status={status!r} wanted={wanted} running={running} "
                                 f"old={sorted(old)} now={sorted(now)}\n{self.c.log_tail()}")
            time.sleep(0.02)

    # ----- table states and checks -----

    def refill(self, db, name):
        """The keyed table holding dataset `name` as a fresh COPY would leave it, vacuumed and
        checkpointed: the same state before every load that resends (untimed)."""
        v = self.v
        self.b.copy_load(db, v, lambda t: f"COPY {SCHEMA}.{t} FROM '{self.bin[name]}' (FORMAT binary)",
                         "refill", record=False)
        db.query(f"VACUUM ANALYZE {SCHEMA}.cpu", timeout=self.a.timeout)
        db.query("CHECKPOINT")

    def empty(self, db):
        self.b.truncate(db, SCHEMA, ["cpu"])
        db.query("CHECKPOINT")

    def sums(self, db, table):
        return tuple(db.query("SELECT " + ", ".join(f"sum({f}::numeric)" for f in CHECKED_FIELDS)
                              + f" FROM {table}", timeout=self.a.timeout)[0])

    def check(self, db, load, expect):
        """count(*) = lines, and every row as in ref.<expect>: rows missing on either side or
        with any field different (full join on the key), and the sums of three fields."""
        a = self.a
        n = int(db.value(f"SELECT count(*) FROM {SCHEMA}.cpu"))
        load.checks.append((f"count {n:,}", n == a.lines))
        differ = " OR ".join(f"t.{f} IS DISTINCT FROM r.{f}" for f in self.fields)
        on = " AND ".join(f"t.{k} = r.{k}" for k in self.key)
        bad = int(db.value(f"SELECT count(*) FROM {SCHEMA}.cpu t FULL JOIN ref.{expect} r ON {on} "
                           f"WHERE t._time IS NULL OR r._time IS NULL OR {differ}", timeout=a.timeout))
        load.checks.append((f"values = {expect.upper()}" if bad == 0 else f"{bad:,} rows not as in {expect.upper()}",
                            bad == 0))
        sums = self.sums(db, f"{SCHEMA}.cpu")
        load.checks.append((f"sums = {expect.upper()}'s" if sums == self.ref_sums[expect]
                            else f"sums {sums} != {expect.upper()}'s {self.ref_sums[expect]}",
                            sums == self.ref_sums[expect]))
        load.ok = load.ok and all(p for _, p in load.checks)
        if not load.ok:
            self.ok = False
            self.notes.append(f"{load.label}: checks failed: "
                              + "; ".join(t for t, p in load.checks if not p))
        log(f"{load.label}: " + "; ".join(t for t, _ in load.checks))

    # ----- loads -----

    def settled(self, counters):
        return self.b.rows_settled(counters) + sum(counters[k] for k in self.b.extra_counters)

    def influx_load(self, db, load):
        """bench/run.py's pg_influx TCP load (loadgen over --connections connections, clocked
        from its first byte to the influx.stats() poll that shows every line settled), into the
        table as prepared; then the counters must account for each line exactly once."""
        a, b = self.a, self.b
        base = b.influx_counters(db)
        b.influx_tcp(db, self.v, label=load.label, lp=self.lp[load.data], fresh=False, settled=self.settled)
        r = b.results.pop()  # bench/run.py's record of the load: taken over here
        b.proc_rows.clear()
        load.rows, load.secs, load.cpu, load.mcpu, load.busy = r["rows"], r["secs"], r["cpu"], r["mcpu"], r["busy"]
        load.ok = r["ok"]
        if r.get("note"):
            load.checks.append((r["note"], r["ok"] and not re.search(r"rejected=[1-9]|errors=[1-9]", r["note"])))
        if not r["ok"]:
            self.notes.extend(b.notes)
            b.notes.clear()
        load.counters = self.counter_delta(db, base, a.lines)
        return load

    def counter_delta(self, db, base, target, quiet=1.0, timeout=20):
        """After a load: polls influx.stats() until the settled count has stayed put for `quiet`
        seconds (bounded); it must equal the lines sent. More means a counter named in
        --settled-counters also counts rows rows_inserted counts: the clock would have stopped
        early."""
        b = self.b
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        cur = None
        while time.monotonic() < deadline:
            cur = b.influx_counters(db)
            if cur is None or base is None:
                self.ok = False
                self.notes.append("influx.stats() unavailable after a load")
                return None
            val = self.settled(cur) - self.settled(base)
            if val != last:
                last, since = val, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            time.sleep(0.05)
        d = {k: cur[k] - base[k] for k in ["inserted", "rejected"] + b.extra_counters}
        d["settled"] = last
        if last != target:
            self.ok = False
            self.notes.append(f"influx.stats() settled {last:,} rows for {target:,} lines ({d}): the counters "
                              f"{['rows_inserted', 'rows_rejected_*'] + b.extra_counters} do not count each line "
                              f"once; name the right ones with --settled-counters")
        return d

    def client_load(self, db, load):
        """The client: --connections psql sessions (connected before the clock starts), each
        running its file of multi-row INSERT ... ON CONFLICT DO UPDATE (autocommit: one
        transaction per statement), timed from the first `\\i` to the last session's end.
        Bounded by --timeout; a stall (no new statement started in any session for --stall
        seconds, seen in pg_stat_activity.query_start) terminates the sessions."""
        a = self.a
        sessions = [benchrun.Psql(self.c.dir, self.c.port) for _ in self.sql[load.data]]
        pids = [s.backend_pid for s in sessions]
        errors = []

        def one(s, path):
            try:
                s.query(f"\\i {path}", timeout=a.timeout)
            except benchrun.SqlError as e:
                errors.append(str(e)[:300])
        try:
            cpu0 = [benchrun.proc_cpu(p) for p in pids]
            ccpu0 = [benchrun.proc_cpu(s.p.pid) for s in sessions]
            threads = [threading.Thread(target=one, args=(s, path), daemon=True)
                       for s, path in zip(sessions, self.sql[load.data])]
            m0 = benchrun.machine_cpu()
            t0 = time.monotonic()
            for t in threads:
                t.start()
            last, since = None, time.monotonic()
            while True:
                alive = [t for t in threads if t.is_alive()]
                if not alive:
                    break
                alive[0].join(0.05)
                if time.monotonic() - since < 0.5:
                    continue
                q = db.value("SELECT max(query_start) FROM pg_stat_activity WHERE pid IN (%s)"
                             % ",".join(map(str, pids)))
                if q != last:
                    last, since = q, time.monotonic()
                elif time.monotonic() - since > a.stall:
                    errors.append(f"stalled: no new statement for {a.stall}s")
                    db.query("SELECT pg_terminate_backend(pid) FROM unnest(ARRAY[%s]) pid" % ",".join(map(str, pids)))
                    break
            for t in threads:
                t.join(timeout=30)
            secs = time.monotonic() - t0
            load.mcpu, load.busy = benchrun.machine_delta(m0)
            cpus = [benchrun.proc_cpu(p) for p in pids]
            load.cpu = sum(c1 - c0 for c0, c1 in zip(cpu0, cpus) if c0 is not None and c1 is not None)
            ccpus = [benchrun.proc_cpu(s.p.pid) for s in sessions]
            load.client_cpu = sum(c1 - c0 for c0, c1 in zip(ccpu0, ccpus) if c0 is not None and c1 is not None)
        finally:
            for s in sessions:
                s.close()
        load.rows, load.secs = int(db.value(f"SELECT count(*) FROM {SCHEMA}.cpu")), secs
        load.ok = not errors
        if errors:
            load.checks.append((f"client errors: {errors[0]}", False))
            self.notes.append(f"{load.label}: {len(errors)} session(s) failed: {errors}")
        return load

    def copy_reference(self, db, load):
        rows = self.b.copy_binary(db, self.v, record=True)
        r = self.b.results.pop()
        load.rows, load.secs, load.cpu, load.mcpu, load.busy = rows, r["secs"], r["cpu"], r["mcpu"], r["busy"]
        load.ok = True
        return load

    def full_plan(self):
        return bool(self.policy_setting) and not self.a.baselines_only

    def plan(self):
        """(key, label, policy, table before, data sent, kind, expected contents) per load."""
        P = []
        P.append(("copy", "COPY binary (server-side file)", None, "empty", "a", "copy", "a"))
        base_policy = "error" if self.policy_setting else None
        P.append(("a0", "(a0) pg_influx, error, no conflicts" if base_policy
                  else "(a0) pg_influx, no influx.on_conflict (today's behaviour), no conflicts",
                  base_policy, "empty", "a", "influx", "a"))
        if self.full_plan():
            P += [("a", "(a) pg_influx, merge, no conflicts", "merge", "empty", "a", "influx", "a"),
                  ("b", "(b) pg_influx, merge, 100 % conflicts, same values", "merge", "a", "a", "influx", "a"),
                  ("b2", "(b2) pg_influx, merge, 100 % conflicts, changed values", "merge", "a", "b", "influx", "b"),
                  ("c", "(c) pg_influx, skip, 100 % conflicts (changed values, none may be written)",
                   "skip", "a", "b", "influx", "a")]
        P += [("client", "client INSERT ... ON CONFLICT DO UPDATE, same values", None, "a", "a", "client", "a"),
              ("client2", "client INSERT ... ON CONFLICT DO UPDATE, changed values", None, "a", "b", "client", "b")]
        return P

    def run_load(self, db, spec, record=True):
        key, label, policy, before, data, kind, expect = spec
        load = Load(key, label, policy, before, data, kind)
        if policy and self.current_policy != policy:
            self.set_policy(db, policy)
            self.current_policy = policy
        if before == "empty":
            self.empty(db)
        else:
            self.refill(db, before)
        {"copy": self.copy_reference, "influx": self.influx_load, "client": self.client_load}[kind](db, load)
        self.check(db, load, expect)
        if record:
            self.loads.append(load)
        elif not load.ok:
            self.ok = False
        rate = load.rows / load.secs if load.secs else None
        log(f"{label}{'' if record else ' (warm-up)'}: {load.rows:,} rows, {fmt_num(load.secs)} s = "
            f"{fmt_rate(rate)} rows/s{'' if load.ok else ' FAILED'}")
        return load

    # ----- main -----

    def main(self):
        a = self.a
        self.c = c = Cluster(a, prefix="pg_influx_idem.")
        self.b = b = benchrun.Bench(a)
        b.cluster = c
        v = self.v = benchrun.Variant("typed", "cpu", "typed", False, "keyed typed table")
        v.influx_schema = v.copy_schema = SCHEMA
        v.tables = ["cpu"]
        db = None
        try:
            settings = {"fsync": "on", "synchronous_commit": "on", "influx.synchronous_commit": "on",
                        "influx.schema": f"'{SCHEMA}'"}
            settings.update(kv.split("=", 1) for kv in a.set)
            c.init(settings)
            c.start()
            self.db = db = benchrun.Psql(c.dir, c.port)
            db.query("CREATE EXTENSION IF NOT EXISTS pg_influx")
            if not b.wait_listener(db, timeout=30):
                raise SystemExit(f"listener not ready: {b.listener_status(db)}\n{c.log_tail()}")
            self.server_so = benchrun.loaded_library(b.influx_procs(db))
            self.policy_setting = self.check_setting(db)
            if self.policy_setting is None and not a.baselines_only:
                raise SystemExit(
                    f"influx.on_conflict does not exist in the installed pg_influx ({self.server_so[0]}, "
                    f"sha256 {self.server_so[1]}…): this build has no idempotent writes (issue 14) yet. Install "
                    f"a build that has them (make && sudo make install), or run with --baselines-only to "
                    f"measure only COPY, the client's INSERT ... ON CONFLICT and the load into the keyed table "
                    f"with today's behaviour.")
            if self.policy_setting:
                missing = [p for p in POLICIES if self.policy_setting["enumvals"]
                           and p not in self.policy_setting["enumvals"]]
                if missing:
                    raise SystemExit(f"influx.on_conflict has no value(s) {missing}: {self.policy_setting}")
                if self.policy_setting["context"] != "sighup":
                    self.notes.append(f"influx.on_conflict is a `{self.policy_setting['context']}` setting, "
                                      f"not `sighup` as this script assumes")
            cols = [r[0] for r in db.query(
                "SELECT n FROM pg_proc p, unnest(p.proargnames, p.proargmodes::text[]) AS x(n, m) "
                "WHERE p.oid = 'influx.stats'::regproc AND m IN ('o', 't')")]
            b.extra_counters = (a.settled_counters if a.settled_counters is not None
                                else [n for n in cols if n.startswith("rows_") and n not in KNOWN_ROW_COUNTERS])
            log("lines settle as rows_inserted + rows_rejected_*"
                + "".join(f" + {n}" for n in b.extra_counters) + " (influx.stats())")
            self.current_policy = None
            self.gen_files()
            self.create_tables(db)
            self.write_client_sql()
            self.pg_version = db.value("SHOW server_version")
            plan = self.plan()
            for w in range(a.warmup):
                log(f"warm-up {w + 1} of {a.warmup} (not recorded)")
                for spec in plan:
                    if spec[0] in ("copy", "a0", "client"):
                        self.run_load(db, spec, record=False)
            for trial in range(1, a.repeat + 1):
                log(f"=== trial {trial} of {a.repeat}")
                for spec in plan:
                    self.run_load(db, spec)
            self.settings = db.query(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name LIKE 'influx.%' "
                "OR name IN ('shared_buffers','synchronous_commit','fsync','max_wal_size','autovacuum',"
                "'checkpoint_timeout','wal_sync_method') ORDER BY name")
        finally:
            c.finish([db], a.keep)
        return self.report()

    # ----- report -----

    def summary(self):
        """Per load key: median rate and CPU over the trials, the range, all checks."""
        S = {}
        for ld in self.loads:
            S.setdefault(ld.key, []).append(ld)
        out = {}
        for key, ls in S.items():
            rates = [x.rate for x in ls if x.rate]

            def per_m(attr):
                xs = [getattr(x, attr) / x.rows * 1e6 for x in ls if x.rate and getattr(x, attr) is not None]
                return median(xs) if xs else None
            out[key] = dict(first=ls[0], n=len(ls), ok=all(x.ok for x in ls),
                            rate=median(rates) if rates else None,
                            lo=min(rates, default=None), hi=max(rates, default=None),
                            secs=median([x.secs for x in ls if x.rate]) if rates else None,
                            cpu=per_m("cpu"), client_cpu=per_m("client_cpu"), mcpu=per_m("mcpu"),
                            busy=median([x.busy for x in ls if x.rate and x.busy is not None] or [None])
                            if rates else None,
                            checks=list(dict.fromkeys(t for x in ls for t, _ in x.checks)),
                            counters=ls[-1].counters)
        return out

    def report(self):
        a = self.a
        now = datetime.datetime.now()
        S = self.summary()
        L = [f"# pg_influx idempotent writes (issue 14) — {now:%Y-%m-%d %H:%M:%S}\n"]
        so, sha = getattr(self, "server_so", (None, None))
        L.append(f"- machine: {benchrun.machine_line()}")
        L.append(f"- load average (1 min) before / after the run: {self.load_before:.2f} / {os.getloadavg()[0]:.2f}")
        L.append(f"- PostgreSQL {getattr(self, 'pg_version', '?')} (`{benchrun.BINDIR}`), repository "
                 f"{benchrun.repo_revision()}, library `{so}` (sha256 {sha}…)")
        ps = self.policy_setting
        L.append("- `influx.on_conflict`: " + (f"{ps['vartype']} ({', '.join(ps['enumvals'])}), context {ps['context']}"
                                               if ps else "**missing** from this build: `--baselines-only`, the "
                                               "policy loads (a), (b), (b2), (c) were not run"))
        L.append(f"- command: `{' '.join(sys.argv)}`")
        L.append(f"- data: bench/loadgen cpu dataset, {a.lines:,} lines per load (100 hosts × 5 cpu series, 10 "
                 f"float fields, explicit ns timestamps); A = seed {a.seed}, B = the same points (tags, "
                 f"timestamps) with the values of value seed {a.value_seed}")
        L.append(f"- table: `{SCHEMA}.cpu`, loadgen's typed columns + `{self.key_ddl.split(' ADD ')[1]}`, owned by "
                 f"the workers' role; autovacuum off; a table that must hold data before a load is refilled by "
                 f"binary COPY, `VACUUM ANALYZE` and `CHECKPOINT` first (untimed), an empty one truncated")
        L.append(f"- pg_influx: bench/loadgen over {a.connections} TCP connections, from its first byte to the "
                 f"influx.stats() poll (every 10 ms) that shows every line settled (rows_inserted + rows_rejected_*"
                 + "".join(f" + {n}" for n in self.b.extra_counters) + "), stall after "
                 f"{a.stall:g} s without progress; listener + workers CPU")
        L.append(f"- client: {a.connections} psql sessions (connected before the clock), each `\\i` a file of "
                 f"`INSERT INTO {SCHEMA}.cpu (...) VALUES (...), ... ON CONFLICT ({', '.join(self.key)}) DO UPDATE "
                 f"SET <every field> = EXCLUDED.<field>` of {a.client_rows:,} rows, autocommit (a transaction per "
                 f"statement); from the first `\\i` to the last session done; server CPU = their backends, "
                 f"client CPU = the psql processes")
        L.append(f"- every timed load {a.repeat} time(s) (median, range in brackets), after {a.warmup} untimed "
                 f"warm-up(s) of COPY, (a0) and the client")
        if getattr(self, "settings", None):
            L.append("- settings: " + ", ".join(f"`{k}={v}`" for k, v in self.settings
                                                if k not in ("influx.tcp_port", "influx.udp_port", "influx.http_port")))
        L.append("\n## Throughput\n")
        L.append("| load | table before | sent | rows/s | seconds | vs (a0) | vs COPY | server CPU s / M rows "
                 "| client CPU s / M rows | machine CPU s / M rows | machine busy | influx.stats() | checks |")
        L.append("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
        a0 = S.get("a0", {}).get("rate")
        copy = S.get("copy", {}).get("rate")
        for key, s in S.items():
            f = s["first"]
            rng = f" ({fmt_rate(s['lo'])}-{fmt_rate(s['hi'])})" if s["n"] > 1 and s["rate"] else ""
            busy = "-" if s["busy"] is None else f"{s['busy'] * 100:.0f} %"
            ctr = ", ".join(f"{k}={v:,}" for k, v in (s["counters"] or {}).items() if v or k == "settled")
            L.append(f"| {f.label} | {'empty' if f.before == 'empty' else f.before.upper()} | {f.data.upper()} "
                     f"| {fmt_rate(s['rate'])}{rng} | {fmt_num(s['secs'])} "
                     f"| {fmt_num(s['rate'] / a0) if s['rate'] and a0 else 'n/a'} "
                     f"| {fmt_num(s['rate'] / copy) if s['rate'] and copy else 'n/a'} | {fmt_num(s['cpu'])} "
                     f"| {fmt_num(s['client_cpu']) if f.kind == 'client' else '-'} | {fmt_num(s['mcpu'])} "
                     f"| {busy} "
                     f"| {ctr or '-'} | {'; '.join(s['checks'])}{'' if s['ok'] else ' **FAILED**'} |")
        L.append("\n## Targets (issue 14)\n")
        self.targets = []

        def target(name, num, den, den_name, want):
            if not (num and den):
                L.append(f"- {name}: " + ("not measured (`--baselines-only` or no `influx.on_conflict`)"
                                          if not self.full_plan() else "n/a: a load failed (see the checks)"))
                return
            ratio = num / den
            met = ratio >= want
            self.targets.append((name, ratio, want, met))
            L.append(f"- {name}: {num:,.0f} / {den:,.0f} rows/s = **{ratio:.2f}×** {den_name} — target ≥ "
                     f"{want:g}×: {'met' if met else '**MISSED**'}")
        g = {k: S.get(k, {}).get("rate") for k in ("a", "a0", "b", "b2", "c", "client", "client2")}
        target("(a) merge, no conflicts", g["a"], g["a0"], "(a0) error", 0.8)
        target("(b) merge, 100 % conflicts, same values", g["b"], g["client"], "client, same values", 2)
        target("(b2) merge, 100 % conflicts, changed values (the same bar, not in the issue)",
               g["b2"], g["client2"], "client, changed values", 2)
        if g["c"] and g["client2"]:
            L.append(f"- (c) skip: {g['c']:,.0f} rows/s = {g['c'] / g['client2']:.2f}× the client sending the same "
                     f"lines (changed values; no target)")
        if self.notes:
            L.append("\n## Notes\n")
            L += [f"- {n}" for n in self.notes]
        text = "\n".join(L) + "\n"
        os.makedirs(a.results_dir, exist_ok=True)
        stamp = now.strftime("%Y%m%d-%H%M%S")
        png = None if a.no_plot else self.plot(os.path.join(a.results_dir, f"idempotent-{stamp}.png"), S)
        benchrun.write_report(os.path.join(a.results_dir, f"idempotent-{stamp}.md"), text, png, "rows/s per load")
        return 0 if self.ok and all(s["ok"] for s in S.values()) else 1

    def plot(self, path, S):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log("matplotlib missing (apt-get install -y python3-matplotlib): no plot")
            return None
        keys = [k for k in S if S[k]["rate"]]
        if not keys:
            return None
        colors = {"copy": "0.6", "influx": "tab:blue", "client": "tab:orange"}
        fig, ax = plt.subplots(figsize=(10, 0.55 * len(keys) + 1.6))
        y = range(len(keys))[::-1]
        ax.barh(list(y), [S[k]["rate"] for k in keys], color=[colors[S[k]["first"].kind] for k in keys])
        for yi, k in zip(y, keys):
            ax.text(S[k]["rate"], yi, f" {S[k]['rate']:,.0f}", va="center", fontsize=8)
        ax.set_yticks(list(y))
        ax.set_yticklabels([S[k]["first"].label for k in keys], fontsize=8)
        from matplotlib.ticker import FuncFormatter
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.set_xlabel("rows/s (median)")
        ax.set_xlim(0, max(S[k]["rate"] for k in keys) * 1.18)
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_title(f"pg_influx idempotent writes: {self.a.lines:,} cpu rows per load, keyed table")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchrun.add_looped_load_options(p, 1_000_000)  # --lines (per load), --workers, --batch-size, --keep, ...
    p.add_argument("--seed", type=int, default=42, help="dataset A (default 42)")
    p.add_argument("--value-seed", type=int, default=None,
                   help="values of dataset B, same points as A (default --seed + 1)")
    p.add_argument("--connections", type=int, default=4, help="TCP connections and client sessions (default 4)")
    p.add_argument("--client-rows", type=int, default=1000, help="rows per client INSERT statement (default 1000)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="extra postgresql.conf line, e.g. --set influx.flush_interval=100")
    p.add_argument("--repeat", type=int, default=1, help="timed trials of every load (default 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed COPY, (a0) and client loads first (default 1)")
    p.add_argument("--baselines-only", action="store_true",
                   help="COPY, (a0) and the client only (runs without influx.on_conflict: (a0) is then "
                        "today's behaviour)")
    p.add_argument("--settled-counters", default=None,
                   help="comma list of the influx.stats() columns that count a line merged/skipped/... besides "
                        "rows_inserted and rows_rejected_* (default: every other rows_* column)")
    p.add_argument("--timeout", type=float, default=300, help="longest wait for one load (s)")
    p.add_argument("--stall", type=float, default=30, help="give up after this long without progress (s)")
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args()
    a.no_influx = False  # run.Cluster and run.Bench read it
    if a.value_seed is None:
        a.value_seed = a.seed + 1
    if a.value_seed == a.seed:
        p.error("--value-seed must differ from --seed (dataset B needs other values)")
    if a.settled_counters is not None:
        a.settled_counters = [x.strip() for x in a.settled_counters.split(",") if x.strip()]
    if a.lines < a.connections or a.client_rows < 1:
        p.error("--lines must be at least --connections, --client-rows at least 1")
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        p.error("run as root (the cluster runs as the postgres user) or as postgres")
    lib = os.path.join(benchrun.run(["pg_config", "--pkglibdir"]).stdout.strip(), "pg_influx.so")
    if not os.path.exists(lib):
        p.error(f"{lib} is not installed: make && sudo make install")
    log("building bench/loadgen")
    benchrun.run(["make", "-s", "-C", BENCH_DIR, "loadgen"])
    sys.exit(IdempotentBench(a).main())


if __name__ == "__main__":
    main()
