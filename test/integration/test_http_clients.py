"""
test_http_clients.py — real InfluxDB clients against the HTTP endpoint, unmodified, with
their own defaults:

    python3-influxdb (Debian)        InfluxDBClient in HTTP mode: ping, create_database,
                                     write_points (JSON points, line strings, precisions, gzip)
    influx 1.x CLI (Debian influxdb-client)   -execute 'INSERT ...', CREATE/SHOW DATABASES
    Go influxdb1-client (Debian golang-github-influxdata-influxdb1-client-dev)
                                     go/influx1_client.go, built offline in GOPATH mode
    node-influx (npm influx)         node/node_influx.js: ping, createDatabase,
                                     getDatabaseNames, writePoints
    @influxdata/influxdb-client (npm)  node/v2_write.js: writeApi(org, bucket), flush, close
    Telegraf outputs.influxdb        replayed byte for byte: /query CREATE DATABASE, then
                                     chunked gzip 5,000-line batches on one keep-alive connection

Each client call that returned (a client raises or exits non-zero on anything but its
success status) is followed at once by a query on a new connection: the rows are there.
The npm packages are installed by node/install.sh (npm ci, pinned lock file); a missing
client fails the test, it does not skip.
"""

import datetime
import json

import pytest

from http_support import (
    INFLUXDB_VERSION,
    Connection,
    go_client,
    influx_cli,
    node,
    require_http,
    run,
    telegraf_batch,
    telegraf_create_database,
    telegraf_write,
)

UTC = datetime.timezone.utc
T0 = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def http(listener):
    require_http(listener)
    listener.execute("CREATE SCHEMA clients")
    return listener


def columns(c, table):
    """{column: type} of a table."""
    return dict(c.query(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (table,)))


def sec(n):
    return T0 + datetime.timedelta(seconds=n)


# ---------------------------------------------------------------------------------------
# python3-influxdb
# ---------------------------------------------------------------------------------------


@pytest.fixture
def pyclient(http):
    from influxdb import InfluxDBClient

    # Its defaults: root:root as Basic auth on every request, no gzip, retries=3.
    client = InfluxDBClient(host="localhost", port=http.http_port, database="clients", timeout=30)
    yield client
    client.close()


def test_python_client_ping_and_create_database(pyclient):
    # ping() reads X-Influxdb-Version (KeyError without it) and needs 204.
    assert pyclient.ping() == INFLUXDB_VERSION
    pyclient.create_database("clients")  # 200 with JSON, or it raises
    pyclient.create_database("py_other")
    names = [d["name"] for d in pyclient.get_list_database()]
    assert "public" in names, names


def test_python_client_write_points(http, pyclient):
    points = [
        {
            "measurement": "py_points",
            "tags": {"host": f"web {i}", "dc": "eu,1"},
            "time": 1_700_000_000 + i,
            "fields": {"load": i + 0.25, "procs": 17 + i, "up": i % 2 == 0, "note": f'x "{i}"'},
        }
        for i in range(3)
    ]
    assert pyclient.write_points(points, time_precision="s") is True
    assert http.query("SELECT _time, host, dc, load, procs, up, note FROM clients.py_points "
                      "ORDER BY _time") == [
        (sec(i), f"web {i}", "eu,1", i + 0.25, 17 + i, i % 2 == 0, f'x "{i}"') for i in range(3)
    ]
    types = columns(http, "clients.py_points")
    assert types["procs"] == "bigint" and types["load"] == "double precision", types
    assert types["up"] == "boolean" and types["note"] == "text", types


def test_python_client_rfc3339_times_and_batches(http, pyclient):
    points = [{"measurement": "py_batched", "tags": {"n": str(i)},
               "time": (T0 + datetime.timedelta(milliseconds=i)).isoformat(),
               "fields": {"v": float(i)}} for i in range(2500)]
    assert pyclient.write_points(points, batch_size=1000) is True  # three requests
    assert http.query("SELECT count(*), min(_time), max(_time) FROM clients.py_batched") == [
        (2500, T0, T0 + datetime.timedelta(milliseconds=2499))
    ]


def test_python_client_line_protocol(http, pyclient):
    # write() with protocol='line' and explicit params, as applications call it.
    lines = ["py_line,host=a v=1i 1700000000000", "py_line,host=b v=2i 1700000001000"]
    assert pyclient.write(lines, params={"db": "clients", "precision": "ms"},
                          protocol="line") is True
    assert http.query("SELECT _time, host, v FROM clients.py_line ORDER BY host") == [
        (sec(0), "a", 1), (sec(1), "b", 2)
    ]
    # write_points with strings and protocol='line'; precision u.
    assert pyclient.write_points(["py_line2,host=c v=3i 1700000002000000"],
                                 time_precision="u", protocol="line") is True
    assert http.query("SELECT _time, host, v FROM clients.py_line2") == [(sec(2), "c", 3)]


def test_python_client_gzip(http):
    from influxdb import InfluxDBClient

    client = InfluxDBClient(host="localhost", port=http.http_port, database="clients", gzip=True)
    try:
        assert client.write_points(
            [{"measurement": "py_gzip", "time": 1_700_000_000_000_000_000 + i,
              "fields": {"v": i}} for i in range(500)]) is True
    finally:
        client.close()
    assert http.query("SELECT count(*), sum(v) FROM clients.py_gzip") == [(500, 124750)]


def test_python_client_unknown_database_goes_to_the_default_schema(http):
    from influxdb import InfluxDBClient

    client = InfluxDBClient(host="localhost", port=http.http_port, database="not_a_schema")
    try:
        assert client.write_points([{"measurement": "py_default", "fields": {"v": 1.5}}]) is True
    finally:
        client.close()
    assert http.query("SELECT v FROM public.py_default") == [(1.5,)]


# ---------------------------------------------------------------------------------------
# influx CLI (1.x)
# ---------------------------------------------------------------------------------------


def cli_ok(r):
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "ERR" not in out, out  # the CLI prints server errors and still exits 0
    return out


def test_influx_cli_insert(http):
    # It pings first, then POST /write?consistency=all&db=clients&precision=ns&rp= with a
    # body that starts with a space (" cli_cpu,host=a v=1\n").
    before = http.scalar("SELECT now()")
    cli_ok(influx_cli(http.http_port, "-execute", "INSERT cli_cpu,host=a v=1", database="clients"))
    rows = http.query("SELECT host, v, _time FROM clients.cli_cpu")
    assert [r[:2] for r in rows] == [("a", 1.0)]
    assert abs((rows[0][2] - before).total_seconds()) < 60


def test_influx_cli_insert_with_precision(http):
    cli_ok(influx_cli(http.http_port, "-precision", "s", "-execute",
                      "INSERT cli_prec,host=b v=2i 1700000000", database="clients"))
    assert http.query("SELECT _time, host, v FROM clients.cli_prec") == [(T0, "b", 2)]


def test_influx_cli_create_and_show_databases(http):
    # /query?chunked=true&db=&epoch=ns&q=CREATE+DATABASE+cli_db (unquoted name).
    cli_ok(influx_cli(http.http_port, "-execute", "CREATE DATABASE cli_db"))
    out = cli_ok(influx_cli(http.http_port, "-execute", "SHOW DATABASES"))
    assert "public" in out.split(), out


# ---------------------------------------------------------------------------------------
# Go influxdb1-client
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_binary(tmp_path_factory):
    return go_client(str(tmp_path_factory.mktemp("go")))


@pytest.mark.parametrize("gzip", [False, True])
def test_go_client_ping_query_and_batch_write(http, go_binary, gzip):
    table = "go_gzip" if gzip else "go_plain"
    cmd = [go_binary, "-addr", f"http://localhost:{http.http_port}", "-db", "clients",
           "-measurement", table, "-n", "50"]
    if gzip:
        cmd.append("-gzip")
    r = run(cmd, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [f"version {INFLUXDB_VERSION}", "ok"], r.stdout
    assert http.query(f"SELECT count(*), min(_time), max(_time), sum(i), "
                      f"count(*) FILTER (WHERE ok) FROM clients.{table}") == [
        (50, T0, sec(49), 1225000, 25)
    ]
    assert http.query(f"SELECT host, f, i, s, ok FROM clients.{table} WHERE host = 'go-3'") == [
        ("go-3", 3.5, 3000, 'say "3"', False)
    ]
    types = columns(http, f"clients.{table}")
    assert (types["f"], types["i"], types["s"], types["ok"]) == (
        "double precision", "bigint", "text", "boolean"), types


# ---------------------------------------------------------------------------------------
# npm: node-influx (1.x) and @influxdata/influxdb-client (2.x API)
# ---------------------------------------------------------------------------------------


def test_node_influx(http):
    r = node("node_influx.js", http.http_port, "clients", "node_points")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["version"] == INFLUXDB_VERSION
    assert "public" in out["databases"], out
    assert http.query("SELECT _time, host, f, i, s, ok FROM clients.node_points "
                      "ORDER BY _time") == [
        (sec(i), f"node-{i}", i + 0.5, i * 1000, f'say "{i}"', i % 2 == 0) for i in range(3)
    ]
    assert columns(http, "clients.node_points")["i"] == "bigint"


def test_influxdb_client_js_v2_write_api(http):
    # bucket "clients/autogen" → schema clients; three requests of at most 1000 points, no
    # trailing newline, precision ms, Authorization: Token root:root.
    r = node("v2_write.js", http.http_port, "my-org", "clients/autogen", "v2_points", 2500)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "ok"
    assert http.query("SELECT count(*), count(DISTINCT _time), min(_time), sum(i), sum(u) "
                      "FROM clients.v2_points") == [(2500, 2500, T0, 3123750, 6247500)]
    assert http.query("SELECT host, f, i, u, s, ok FROM clients.v2_points "
                      "WHERE _time = %s", (T0 + datetime.timedelta(milliseconds=7),)) == [
        ("v2-7", 7.25, 7, 14, 'line 7, "quoted"', False)
    ]
    types = columns(http, "clients.v2_points")
    assert types["u"] == "numeric" and types["i"] == "bigint", types


# ---------------------------------------------------------------------------------------
# Telegraf outputs.influxdb, replayed
# ---------------------------------------------------------------------------------------


def test_telegraf_replay(http):
    batches, size = 3, 5000
    expected = {}
    with Connection(http.http_port) as conn:
        r = telegraf_create_database(conn)
        assert r.status == 200, r
        assert r.json() == {"results": [{"statement_id": 0}]}
        first = conn.socket_id()
        # CREATE DATABASE may have made a schema "telegraf"; otherwise the default one.
        schema = http.scalar("SELECT coalesce((SELECT nspname::text FROM pg_namespace "
                             "WHERE nspname = 'telegraf'), 'public')")
        for b in range(batches):
            body, counts = telegraf_batch(b, size)
            r = telegraf_write(conn, body)
            assert r.status == 204, r  # Telegraf v1 accepts nothing else
            for table, n in counts.items():
                expected[table] = expected.get(table, 0) + n
            # The instant the 204 arrives, a new connection sees every line of the batch.
            seen = dict(http.query(" UNION ALL ".join(
                f"SELECT '{t}', count(*) FROM {schema}.{t}" for t in sorted(expected))))
            assert seen == expected, f"batch {b}: {seen} != {expected}"
            assert conn.socket_id() == first, f"keep-alive connection closed after batch {b}"
    total = batches * size
    assert sum(expected.values()) == total
    # Values survive: escapes in tags and strings, unsigned, booleans in both spellings.
    assert http.query(f"SELECT path, free FROM {schema}.tg_disk WHERE free = 8192") == [
        ("/var/lib/data 2", 8192)
    ]
    assert http.query(f"SELECT cmdline, running, \"user\" FROM {schema}.tg_procstat "
                      "WHERE pid = 6") == [('/usr/bin/python3 "-c" C:\\temp\\6', False, "te st")]
    assert http.query(f"SELECT uptime_format FROM {schema}.tg_system WHERE uptime = 4") == [
        ("4 days,  3:04",)
    ]
