"""
test_ingest.py — lines sent over TCP and UDP (raw sockets and the real InfluxDB client)
land as rows with exact values; a line split across TCP segments is reassembled; an
unknown measurement gets a typed table.
"""

import datetime

from conftest import FLUSH_INTERVAL_MS, TcpStream, send_tcp, send_udp, wait_for

# 2023-11-14 22:13:20 UTC
T0_NS = 1_700_000_000_000_000_000
T0 = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)


def rows(cluster, sql):
    return cluster.query(sql)


def test_tcp_line_becomes_a_row_within_flush_interval(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE tcp_basic (_time timestamptz, host text, usage float8)")
    send_tcp(listener.tcp_port, f"tcp_basic,host=a usage=1.5 {T0_NS}\n")
    wait_for(
        lambda: listener.row_count("tcp_basic") == 1,
        timeout=FLUSH_INTERVAL_MS / 1000 + 1,
        what="the TCP row",
    )
    assert rows(listener, "SELECT _time, host, usage FROM tcp_basic") == [(T0, "a", 1.5)]


def test_udp_line_becomes_a_row(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE udp_basic (_time timestamptz, host text, usage float8)")
    send_udp(listener.udp_port, f"udp_basic,host=b usage=2.25 {T0_NS}\n")
    wait_for(lambda: listener.row_count("udp_basic") == 1, timeout=5, what="the UDP row")
    assert rows(listener, "SELECT _time, host, usage FROM udp_basic") == [(T0, "b", 2.25)]


def test_udp_datagram_with_several_lines(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE udp_multi (_time timestamptz, host text, n int8)")
    lines = "".join(f"udp_multi,host=h{i} n={i}i {T0_NS + i * 1000}\n" for i in range(100))
    send_udp(listener.udp_port, lines)
    wait_for(lambda: listener.row_count("udp_multi") == 100, timeout=5, what="100 UDP rows")
    assert rows(listener, "SELECT sum(n), count(DISTINCT host) FROM udp_multi") == [(4950, 100)]


def test_influxdb_client_send_packet_line_protocol(influx_udp_client, listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE client_line (_time timestamptz, host text, region text, value float8)")
    influx_udp_client.send_packet(
        [
            f"client_line,host=server01,region=us-west value=0.64 {T0_NS}",
            f"client_line,host=server02,region=us-west value=0.55 {T0_NS + 1000}",
        ],
        protocol="line",
    )
    wait_for(lambda: listener.row_count("client_line") == 2, timeout=5, what="the client's rows")
    assert rows(listener, "SELECT host, region, value FROM client_line ORDER BY host") == [
        ("server01", "us-west", 0.64),
        ("server02", "us-west", 0.55),
    ]


def test_influxdb_client_write_points(influx_udp_client, listener, db):
    with db.cursor() as cur:
        cur.execute(
            "CREATE TABLE client_points (_time timestamptz, host text, load float8, procs int8, up bool)"
        )
    influx_udp_client.write_points(
        [
            {
                "measurement": "client_points",
                "tags": {"host": "web 1"},
                "time": "2023-11-14T22:13:20Z",
                "fields": {"load": 0.25, "procs": 17, "up": True},
            }
        ]
    )
    wait_for(lambda: listener.row_count("client_points") == 1, timeout=5, what="the client's point")
    assert rows(listener, "SELECT _time, host, load, procs, up FROM client_points") == [
        (T0, "web 1", 0.25, 17, True)
    ]


def test_line_split_across_tcp_segments(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE split_line (_time timestamptz, host text, value float8)")
    line = f"split_line,host=a value=12.5 {T0_NS}\n".encode()
    first, rest = line[:17], line[17:]
    before = listener.stat_total("bytes_received", kind="listener")
    with TcpStream(listener.tcp_port) as s:
        s.send(first)
        # The listener has read the first half (and must hold it) before the rest is sent.
        wait_for(
            lambda: listener.stat_total("bytes_received", kind="listener") >= before + len(first),
            timeout=5,
            what="the listener to read the first half of the line",
        )
        assert listener.row_count("split_line") == 0
        s.send(rest)
    wait_for(lambda: listener.row_count("split_line") == 1, timeout=5, what="the reassembled row")
    assert rows(listener, "SELECT _time, host, value FROM split_line") == [(T0, "a", 12.5)]


def test_unknown_measurement_gets_a_typed_table(listener):
    send_tcp(
        listener.tcp_port,
        f'auto_created,host=h1,region=eu f=1.5,i=42i,b=true,s="hello world" {T0_NS}\n',
    )
    wait_for(lambda: listener.row_count("public.auto_created") == 1, timeout=10, what="auto-created table")
    types = dict(
        listener.query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'public.auto_created'::regclass AND attnum > 0 AND NOT attisdropped"
        )
    )
    assert types["_time"] == "timestamp with time zone"
    assert types["host"] == "text"
    assert types["region"] == "text"
    assert types["f"] == "double precision"
    assert types["i"] == "bigint"
    assert types["b"] == "boolean"
    assert types["s"] == "text"
    assert rows(listener, "SELECT _time, host, region, f, i, b, s FROM auto_created") == [
        (T0, "h1", "eu", 1.5, 42, True, "hello world")
    ]


def test_line_without_timestamp_gets_server_time(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE no_ts (_time timestamptz, v float8)")
    send_tcp(listener.tcp_port, "no_ts v=1\n")
    wait_for(lambda: listener.row_count("no_ts") == 1, timeout=5, what="the row")
    assert listener.scalar("SELECT abs(extract(epoch FROM now() - _time)) < 60 FROM no_ts")


def test_column_defaults_including_a_domain_default_set_later(listener, db):
    """Columns a line leaves out get their defaults: the column's own, an identity, and a
    domain's, which ALTER DOMAIN can set without touching the table (no invalidation of
    what a worker knows of it)."""
    with db.cursor() as cur:
        cur.execute("""
            CREATE DOMAIN note_text AS text;
            CREATE TABLE dflt (_time timestamptz, host text, v float8,
                               note text DEFAULT 'from the column',
                               d note_text,
                               id bigint GENERATED BY DEFAULT AS IDENTITY)""")
    send_tcp(listener.tcp_port, f"dflt,host=a v=1 {T0_NS}\n")
    wait_for(lambda: listener.row_count("dflt") == 1, timeout=5, what="the first row")
    with db.cursor() as cur:
        cur.execute("ALTER DOMAIN note_text SET DEFAULT 'from the domain'")
    send_tcp(listener.tcp_port, f"dflt,host=b v=2 {T0_NS + 1000}\n")
    wait_for(lambda: listener.row_count("dflt") == 2, timeout=5, what="the second row")
    assert rows(listener, "SELECT host, note, d, id FROM dflt ORDER BY _time") == [
        ("a", "from the column", None, 1),
        ("b", "from the column", "from the domain", 2),
    ]
