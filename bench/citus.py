"""
citus.py — pg_influx into a Citus distributed table against COPY (FORMAT binary) of the same
rows into a twin distributed table, on a coordinator and two workers on this machine (the
throw-away clusters of test/integration/conftest.py; Citus installed, e.g. by
../shared/vendor/citus/install.sh).  500,000 cpu lines from bench/loadgen over 4 TCP
connections, timed until influx.stats() counts them all inserted (then checked once with a
distributed count(*), untimed: polling count(*) during the load would take CPU from it).

Each repetition loads three ways, interleaved:
  copy     COPY ... FROM '<file>' (FORMAT binary) on the coordinator, one transaction;
  1 node   all lines to pg_influx on the coordinator (4 connections);
  2 nodes  half the lines to pg_influx on the coordinator, half to pg_influx on worker node 0
           (2 connections each, at the same time): Citus 11+ takes writes on every node.
On one 2-core machine the nodes share the CPUs, so "2 nodes" shows what spreading the
ingest costs or saves here, not what a second machine would add.

And the ceiling of the other writer design (pg_influx's insertion workers sending each flush
to the coordinator as COPY over libpq): the same binary rows cut into flushes of --flush-rows,
each one `COPY ... FROM STDIN (FORMAT binary)` and commit, over --streams concurrent client
sessions (the insertion workers), with no line parsing at all.

    make -C bench && sudo /usr/bin/python3 bench/citus.py [--reps 2] [--lines 500000]
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
p.add_argument("--reps", type=int, default=2)
p.add_argument("--lines", type=int, default=500_000)
p.add_argument("--flush-rows", type=int, default=10_000)
p.add_argument("--streams", default="2,4", help="COPY streams for the design ceiling")
p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
               help="a setting of every node's pg_influx, e.g. --set influx.batch_size=50000")
args = p.parse_args()
N = args.lines

common = {"fsync": "on", "synchronous_commit": "on", "shared_buffers": "512MB",
          "max_wal_size": "4GB", "autovacuum": "off", "influx.synchronous_commit": "on"}
common.update(kv.split("=", 1) for kv in args.set)
c = Cluster("cb_coord", dict(common, **{"shared_preload_libraries": "'citus,pg_influx'",
                                        "max_worker_processes": "24", "citus.shard_count": "8"}))
# Worker node 0 runs pg_influx too (idle but for the "2 nodes" loads); tables are made on
# the coordinator only.
ws = [Cluster("cb_w0", dict(common, **{"shared_preload_libraries": "'citus,pg_influx'",
                                       "max_worker_processes": "24",
                                       "influx.create_tables": "off",
                                       "influx.add_columns": "off"})),
      Cluster("cb_w1", dict(common, **{"shared_preload_libraries": "'citus'",
                                       "max_worker_processes": "16"}))]
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


def inserted(nodes):
    return sum(n.stat_total("rows_inserted", kind="worker") for n in nodes)


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


def copy_streams(streams):
    """Seconds to COPY every flush into cpu_copy over `streams` sessions, one transaction each."""
    import io
    import queue
    q = queue.Queue()
    for f in FLUSHES:
        q.put(f)
    conns = [c.connect() for _ in range(streams)]
    for x in conns:
        # As the insertion workers do (docs/scale-out.md): keep the shard connections.
        x.cursor().execute("SET citus.max_cached_conns_per_worker = 16; "
                           "SET citus.multi_shard_modify_mode = sequential")

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
    took = time.time() - t0
    for x in conns:
        x.close()
    return took


results = []
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
    ws[0].execute("SET citus.enable_metadata_sync = off; CREATE EXTENSION IF NOT EXISTS pg_influx")
    c.wait_listener_running()
    ws[0].wait_listener_running()
    for rep in range(args.reps):
        row = {}
        c.execute("DROP TABLE IF EXISTS cpu_copy")
        c.execute(distributed_table("cpu_copy"))
        t0 = time.time()
        c.execute("COPY cpu_copy FROM '%s' (FORMAT binary)" % os.path.join(WORK, "cpu.bin"))
        row["copy"] = time.time() - t0
        for label, nodes in (("1 node", [c]), ("2 nodes", [c, ws[0]])):
            c.execute("DROP TABLE IF EXISTS cpu")
            c.execute(distributed_table("cpu"))
            wait_for(lambda: ws[0].scalar("SELECT count(*) FROM pg_dist_partition "
                                          "WHERE logicalrelid = to_regclass('cpu')"), 30)
            c.execute("CHECKPOINT")
            row[label] = load(nodes)
            assert c.scalar("SELECT count(*) FROM cpu") == N
            assert c.scalar("SELECT pg_relation_size('cpu')") == 0
            assert ws[0].scalar("SELECT pg_relation_size('cpu')") == 0
        for k in [int(x) for x in args.streams.split(",") if x]:
            c.execute("DROP TABLE IF EXISTS cpu_copy")
            c.execute(distributed_table("cpu_copy"))
            c.execute("CHECKPOINT")
            row[f"copy x{k}"] = copy_streams(k)
            assert c.scalar("SELECT count(*) FROM cpu_copy") == N
        results.append(row)
        print(f"rep {rep}: COPY binary via coordinator {N / row['copy']:,.0f} rows/s; "
              + "; ".join(f"pg_influx on {k} {N / row[k]:,.0f} rows/s ({row['copy'] / row[k]:.2f}x COPY)"
                          for k in ("1 node", "2 nodes"))
              + "; " + "; ".join(f"COPY of {args.flush_rows:,}-row flushes over {k[6:]} streams "
                                 f"{N / row[k]:,.0f} rows/s ({row['copy'] / row[k]:.2f}x COPY)"
                                 for k in row if k.startswith("copy x")), flush=True)
finally:
    for x in [c] + ws:
        x.destroy()
