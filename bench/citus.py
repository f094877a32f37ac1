"""
citus.py — pg_influx into a Citus distributed table against COPY (FORMAT binary) of the same
rows into a twin distributed table, on a coordinator and two workers on this machine (the
throw-away clusters of test/integration/conftest.py; Citus installed, e.g. by
../shared/vendor/citus/install.sh).  1,000,000 cpu lines from bench/loadgen over 4 TCP
connections, timed until influx.stats() counts them all inserted (then checked once with a
distributed count(*), untimed: polling count(*) during the load would take CPU from it).

Each repetition loads three ways, interleaved:
  copy     COPY ... FROM '<file>' (FORMAT binary) on the coordinator, one transaction, in one
           session kept for the whole run;
  1 node   all lines to pg_influx on the coordinator (4 connections);
  2 nodes  half the lines to pg_influx on the coordinator, half to pg_influx on worker node 0
           (2 connections each, at the same time): Citus 11+ takes writes on every node;
  1 worker node   all lines to pg_influx on worker node 0 (4 connections), which writes the
           rows of the shards placed there straight into them and sends the others through
           Citus (docs/scale-out.md, "Shards on this node");
  2 worker nodes  half the lines to each worker node's pg_influx (2 connections each).
On one 2-core machine the nodes share the CPUs, so "2 nodes" shows what spreading the
ingest costs or saves here, not what a second machine would add.

Both loaders run warm, as a long-running ingest does: --warmup untimed loads of each way come
first, and the COPY session keeps its connections to the nodes between loads
(citus.max_cached_conns_per_worker, as the insertion workers do).  A fresh connection opens a
fresh backend on every node, and a fresh backend pays a page fault for every shared buffer it
touches for the first time: measured here, a first load through new connections costs 1-2
CPU seconds more on the nodes, for either loader.

Each load's CPU seconds are split by role (from /proc, every process of the three clusters):
pg_influx's own processes, the COPY backend, the nodes' backends writing the shards (for
either loader), and the rest (WAL writer, checkpointer, ...).

And the ceiling of the other writer design (pg_influx's insertion workers sending each flush
to the coordinator as COPY over libpq): the same binary rows cut into flushes of --flush-rows,
each one `COPY ... FROM STDIN (FORMAT binary)` and commit, over --streams concurrent client
sessions (the insertion workers), with no line parsing at all.

    make -C bench && sudo /usr/bin/python3 bench/citus.py [--reps 5] [--lines 1000000]
"""
import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
from conftest import Cluster, wait_for  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=5)
p.add_argument("--warmup", type=int, default=3, help="untimed loads of each way first")
p.add_argument("--lines", type=int, default=1_000_000)
p.add_argument("--flush-rows", type=int, default=10_000)
p.add_argument("--streams", default="", help="COPY streams for the design ceiling, e.g. 1,2")
p.add_argument("--ways", default="1 node,2 nodes,1 worker node,2 worker nodes",
               help="which pg_influx loads to run, comma-separated")
p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
               help="a setting of every node's pg_influx, e.g. --set influx.batch_size=50000")
args = p.parse_args()
N = args.lines

common = {"fsync": "on", "synchronous_commit": "on", "shared_buffers": "512MB",
          "max_wal_size": "4GB", "autovacuum": "off", "influx.synchronous_commit": "on"}
common.update(kv.split("=", 1) for kv in args.set)
c = Cluster("cb_coord", dict(common, **{"shared_preload_libraries": "'citus,pg_influx'",
                                        "max_worker_processes": "24", "citus.shard_count": "8"}))
# The worker nodes run pg_influx too (idle but for the loads sent to them); tables are made
# on the coordinator only.
ws = [Cluster("cb_w0", dict(common, **{"shared_preload_libraries": "'citus,pg_influx'",
                                       "max_worker_processes": "24",
                                       "influx.create_tables": "off",
                                       "influx.add_columns": "off"})),
      Cluster("cb_w1", dict(common, **{"shared_preload_libraries": "'citus,pg_influx'",
                                       "max_worker_processes": "24",
                                       "influx.create_tables": "off",
                                       "influx.add_columns": "off"}))]
WORK = "/tmp/pg_influx_citus_bench"
LOADGEN = os.path.join(HERE, "loadgen")
os.makedirs(WORK, exist_ok=True)
os.chmod(WORK, 0o755)
for mode, name in (("lp", "cpu.lp"), ("binary", "cpu.bin")):
    subprocess.run([LOADGEN, "--mode", mode, "--lines", str(N), "--out", os.path.join(WORK, name),
                    "--quiet"], check=True, capture_output=True)
    os.chmod(os.path.join(WORK, name), 0o644)
with open(os.path.join(WORK, "cpu.lp"), "rb") as f:
    all_lines = f.read().splitlines(keepends=True)
for k, part in enumerate((all_lines[: N // 2], all_lines[N // 2:])):
    with open(os.path.join(WORK, f"cpu.{k}.lp"), "wb") as f:
        f.writelines(part)


def binary_flushes(path, rows):
    """The binary COPY file cut at tuple boundaries into files of `rows` rows each."""
    import struct
    data = open(path, "rb").read()
    header, pos, out, start, count = data[:19], 19, [], 19, 0
    while True:
        (nfields,) = struct.unpack_from("!h", data, pos)
        if nfields == -1 or count == rows:
            out.append(header + data[start:pos] + b"\xff\xff")
            start, count = pos, 0
            if nfields == -1:
                return out
        pos += 2
        for _ in range(nfields):
            (n,) = struct.unpack_from("!i", data, pos)
            pos += 4 + max(n, 0)
        count += 1


FLUSHES = binary_flushes(os.path.join(WORK, "cpu.bin"), args.flush_rows)
# The typed table loadgen's rows fit (its own DDL), distributed by host.
TABLE = subprocess.run([LOADGEN, "--mode", "ddl", "--shape", "typed"], check=True,
                       capture_output=True, text=True).stdout.strip().rstrip(";")


def distributed_table(name):
    return (TABLE.replace("public.cpu", name, 1)
            + f"; SELECT create_distributed_table('{name}', 'host')")


def send(port, path, connections):
    subprocess.run([LOADGEN, "--mode", "tcp", "--in", path, "--port", str(port),
                    "--connections", str(connections), "--quiet"], check=True, capture_output=True)


POLL = {}  # one session per node for polling: a new connection per poll would fork a backend


def inserted(nodes):
    total = 0
    for n in nodes:
        if n.port not in POLL:
            POLL[n.port] = n.connect()
        with POLL[n.port].cursor() as cur:
            cur.execute("SELECT coalesce(sum(rows_inserted), 0) FROM influx.stats() "
                        "WHERE kind = 'worker'")
            total += cur.fetchone()[0]
    return total


def cpu_by_role(clusters):
    """CPU ticks of every process of `clusters` by role, from /proc."""
    dirs = {x.data: x for x in clusters}
    postmasters = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline").read().split("\0")
        except OSError:
            continue
        if "-D" in cmd and cmd.index("-D") + 1 < len(cmd) and cmd[cmd.index("-D") + 1] in dirs:
            postmasters[pid] = dirs[cmd[cmd.index("-D") + 1]]
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            title = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")
        except OSError:
            continue
        node = postmasters.get(st[1])
        if node is None:
            continue
        where = "coordinator" if node is c else "nodes"
        if "influx " in title:
            role = f"{where} pg_influx"
        elif "(" in title:  # a session: "postgres: user db host(port) ..."
            role = f"{where} sessions"
        else:
            role = "other"
        ticks[(pid, role)] = int(st[11]) + int(st[12])
    return ticks


def cpu_delta(before, after):
    """CPU seconds by role between two cpu_by_role readings (processes that exited: lost)."""
    out = {}
    for key, t in after.items():
        out[key[1]] = out.get(key[1], 0) + (t - before.get(key, 0)) / os.sysconf("SC_CLK_TCK")
    return out


def load(nodes):
    """Sends the lines to pg_influx on `nodes` (split evenly); seconds until all are counted."""
    base = inserted(nodes)
    t0 = time.time()
    if len(nodes) == 1:
        send(nodes[0].tcp_port, os.path.join(WORK, "cpu.lp"), 4)
    else:
        ts = [threading.Thread(target=send, args=(n.tcp_port, os.path.join(WORK, f"cpu.{k}.lp"), 2))
              for k, n in enumerate(nodes)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    wait_for(lambda: inserted(nodes) - base >= N, 300, interval=0.01)
    return time.time() - t0


STREAMS = []  # sessions kept between loads, as the COPY session is


def copy_streams(streams):
    """Seconds to COPY every flush into cpu_copy over `streams` sessions, one transaction each."""
    import io
    import queue
    q = queue.Queue()
    for f in FLUSHES:
        q.put(f)
    while len(STREAMS) < streams:
        x = c.connect()
        x.autocommit = False
        # As the insertion workers do (docs/scale-out.md): keep the shard connections.
        x.cursor().execute("SET citus.max_cached_conns_per_worker = 16; "
                           "SET citus.multi_shard_modify_mode = sequential")
        x.commit()
        STREAMS.append(x)
    conns = STREAMS[:streams]

    def run(conn):
        cur = conn.cursor()
        while True:
            try:
                f = q.get_nowait()
            except queue.Empty:
                return
            cur.copy_expert("COPY cpu_copy FROM STDIN (FORMAT binary)", io.BytesIO(f))
            conn.commit()

    t0 = time.time()
    ts = [threading.Thread(target=run, args=(x,)) for x in conns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.time() - t0


results = []
COPY_SESSION = None


def copy_load():
    """COPY of the whole file in the kept session; seconds, statement to commit."""
    with COPY_SESSION.cursor() as cur:
        t0 = time.time()
        cur.execute("COPY cpu_copy FROM '%s' (FORMAT binary)" % os.path.join(WORK, "cpu.bin"))
        return time.time() - t0


def timed(fn, table):
    """Runs one load into a new `table`; (seconds, CPU seconds by role)."""
    c.execute(f"DROP TABLE IF EXISTS {table}")
    c.execute(distributed_table(table))
    wait_for(lambda: ws[0].scalar("SELECT count(*) FROM pg_dist_partition "
                                  f"WHERE logicalrelid = to_regclass('{table}')"), 30)
    c.execute("CHECKPOINT")
    before = cpu_by_role([c] + ws)
    took = fn()
    cpu = cpu_delta(before, cpu_by_role([c] + ws))
    assert c.scalar(f"SELECT count(*) FROM {table}") == N
    assert c.scalar(f"SELECT pg_relation_size('{table}')") == 0
    for w in ws:
        assert w.scalar(f"SELECT pg_relation_size('{table}')") == 0
    return took, cpu


def describe(took, cpu):
    per_m = 1e6 / N
    return (f"{N / took:,.0f} rows/s, CPU s per M rows: "
            + ", ".join(f"{k} {v * per_m:.2f}" for k, v in sorted(cpu.items())))


try:
    for x in [c] + ws:
        x.init()
        x.start()
        x.execute("CREATE EXTENSION citus")
    c.execute("SELECT citus_set_coordinator_host('localhost', %s)", (c.port,))
    for w in ws:
        c.execute("SELECT citus_add_node('localhost', %s)", (w.port,))
    c.execute("CREATE EXTENSION pg_influx")
    # Created after citus, the coordinator's extension is propagated to the workers; if not,
    # Citus refuses extension commands on a worker node unless the session keeps them local.
    for w in ws:
        w.execute("SET citus.enable_metadata_sync = off; CREATE EXTENSION IF NOT EXISTS pg_influx")
    c.wait_listener_running()
    for w in ws:
        w.wait_listener_running()
    COPY_SESSION = c.connect()
    COPY_SESSION.cursor().execute("SET citus.max_cached_conns_per_worker = 16")
    LOADS = {"1 node": [c], "2 nodes": [c, ws[0]], "1 worker node": [ws[0]],
             "2 worker nodes": ws}
    WAYS = [w.strip() for w in args.ways.split(",") if w.strip()]
    ways = [("copy", copy_load, "cpu_copy")] + [
        (k, (lambda nodes: lambda: load(nodes))(LOADS[k]), "cpu") for k in WAYS]
    for rep in range(-args.warmup, args.reps):
        row = {}
        for label, fn, table in ways:
            row[label], row[label + " cpu"] = timed(fn, table)
        for k in [int(x) for x in args.streams.split(",") if x]:
            c.execute("DROP TABLE IF EXISTS cpu_copy")
            c.execute(distributed_table("cpu_copy"))
            c.execute("CHECKPOINT")
            row[f"copy x{k}"] = copy_streams(k)
            assert c.scalar("SELECT count(*) FROM cpu_copy") == N
        name = f"rep {rep}" if rep >= 0 else f"warm-up {rep + args.warmup + 1} (not counted)"
        print(f"{name}: COPY binary via coordinator {describe(row['copy'], row['copy cpu'])}", flush=True)
        for k in WAYS:
            print(f"    pg_influx on {k}: {row['copy'] / row[k]:.2f}x COPY, "
                  f"{describe(row[k], row[k + ' cpu'])}", flush=True)
        for k in row:
            if k.startswith("copy x"):
                print(f"    COPY of {args.flush_rows:,}-row flushes over {k[6:]} streams "
                      f"{N / row[k]:,.0f} rows/s ({row['copy'] / row[k]:.2f}x COPY)", flush=True)
        if rep >= 0:
            results.append(row)
    for k in WAYS:
        ratios = sorted(r["copy"] / r[k] for r in results)
        print(f"pg_influx on {k}: {ratios[0]:.2f}-{ratios[-1]:.2f}x COPY, "
              f"median {ratios[len(ratios) // 2]:.2f}x over {len(ratios)} repetitions")
finally:
    for x in [c] + ws:
        x.destroy()
