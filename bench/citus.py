"""
citus.py — pg_influx into a Citus distributed table against COPY (FORMAT binary) of the same
rows into a twin distributed table, on a coordinator and two workers on this machine (the
throw-away clusters of test/integration/conftest.py; Citus installed, e.g. by
../shared/vendor/citus/install.sh).  500,000 cpu lines from bench/loadgen over 4 TCP
connections, timed until influx.stats() counts them all inserted (then checked once with a
distributed count(*), untimed: polling count(*) during the load would take CPU from it); twice.

    make -C bench && sudo /usr/bin/python3 bench/citus.py
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
from conftest import Cluster, wait_for
common = {"fsync": "on", "synchronous_commit": "on", "shared_buffers": "512MB", "max_wal_size": "4GB", "autovacuum": "off"}
c = Cluster("cb_coord", dict(common, **{"shared_preload_libraries": "'citus,pg_influx'", "max_worker_processes": "24", "citus.shard_count": "8", "influx.synchronous_commit": "on"}))
ws = [Cluster(f"cb_w{i}", dict(common, **{"shared_preload_libraries": "'citus'", "max_worker_processes": "16"})) for i in range(2)]
N = 500000
WORK = "/tmp/pg_influx_citus_bench"
LOADGEN = os.path.join(HERE, "loadgen")
os.makedirs(WORK, exist_ok=True)
os.chmod(WORK, 0o755)
for mode, name in (("lp", "cpu.lp"), ("binary", "cpu.bin")):
    subprocess.run([LOADGEN, "--mode", mode, "--lines", str(N), "--out", os.path.join(WORK, name),
                    "--quiet"], check=True, capture_output=True)
    os.chmod(os.path.join(WORK, name), 0o644)
# The typed table loadgen's rows fit (its own DDL), distributed by host.
TABLE = subprocess.run([LOADGEN, "--mode", "ddl", "--shape", "typed"], check=True,
                       capture_output=True, text=True).stdout.strip().rstrip(";")


def distributed_table(name):
    return (TABLE.replace("public.cpu", name, 1)
            + f"; SELECT create_distributed_table('{name}', 'host')")


try:
    for x in [c] + ws:
        x.init(); x.start(); x.execute("CREATE EXTENSION citus")
    c.execute("SELECT citus_set_coordinator_host('localhost', %s)", (c.port,))
    for w in ws:
        c.execute("SELECT citus_add_node('localhost', %s)", (w.port,))
    c.execute("CREATE EXTENSION pg_influx"); c.wait_listener_running()
    for rep in range(2):
        c.execute("DROP TABLE IF EXISTS cpu, cpu_copy")
        c.execute(distributed_table("cpu")); c.execute(distributed_table("cpu_copy"))
        t0 = time.time()
        c.execute("COPY cpu_copy FROM '%s' (FORMAT binary)" % os.path.join(WORK, "cpu.bin"))
        tc = time.time() - t0
        base = c.stat_total("rows_inserted", kind="worker")
        t0 = time.time()
        subprocess.run([LOADGEN, "--mode", "tcp", "--in", os.path.join(WORK, "cpu.lp"), "--port", str(c.tcp_port), "--connections", "4", "--quiet"], check=True, capture_output=True)
        wait_for(lambda: c.stat_total("rows_inserted", kind="worker") - base >= N, 300,
                 interval=0.01)
        ti = time.time() - t0
        assert c.scalar("SELECT count(*) FROM cpu") == N
        shell = c.scalar("SELECT pg_relation_size('cpu')")
        print(f"rep {rep}: COPY binary via coordinator {N/tc:,.0f} rows/s ({tc:.2f}s); pg_influx TCP {N/ti:,.0f} rows/s ({ti:.2f}s); ratio {tc/ti:.2f}; shell bytes {shell}", flush=True)
finally:
    for x in [c] + ws:
        x.destroy()
