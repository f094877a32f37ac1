"""
test_foreign.py — postgres_fdw targets: PostgreSQL's own sharding puts partitions on other
servers as foreign tables.  Rows for them go over postgres_fdw, in batches of the foreign
server's `batch_size` (ExecForeignBatchInsert, as COPY does), one remote INSERT per batch
instead of one per row.  A second, plain cluster holds the remote tables; a statement
trigger there counts the INSERT statements that reach it.
"""

import pytest

from conftest import Cluster, send_tcp, wait_for

CLUSTER_CONF = {"influx.workers": "1"}

T0 = 1_700_006_400  # 2023-11-15 00:00 UTC
NS = 1_000_000_000
BATCH = 100

REMOTE_SETUP = """
CREATE TABLE statements (tbl text, n bigint);
CREATE FUNCTION count_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.statements SELECT TG_TABLE_NAME, count(*) FROM new_rows;
    RETURN NULL;
END $$;
"""


def remote_table(name, columns):
    return (f"CREATE TABLE {name} ({columns});"
            f"CREATE TRIGGER count_statement AFTER INSERT ON {name} "
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION count_statement();")


@pytest.fixture(scope="module")
def remote():
    c = Cluster("fdw_remote", {"shared_preload_libraries": None})
    try:
        c.init()
        c.start()
        c.execute(REMOTE_SETUP)
        yield c
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def fdw(listener, remote):
    c = listener
    c.execute("CREATE EXTENSION postgres_fdw")
    for server, batch in (("shard", BATCH), ("shard_rowwise", None)):
        options = f"host '{remote.dir}', port '{remote.port}', dbname 'postgres'"
        if batch:
            options += f", batch_size '{batch}'"
        c.execute(f"CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({options})")
        c.execute(f"CREATE USER MAPPING FOR postgres SERVER {server} OPTIONS (user 'postgres')")
    return c


def statements(remote, table):
    return remote.query("SELECT count(*), coalesce(sum(n), 0) FROM statements WHERE tbl = %s",
                        (table,))[0]


def stat(c, counter):
    return sum(r.get(counter) or 0 for r in c.stats())


def test_a_foreign_partition_is_written_in_batches_of_the_servers_batch_size(fdw, remote):
    """Daily partitions: yesterday's local, today's on the remote server."""
    remote.execute(remote_table("cpu_today", "_time timestamptz NOT NULL, host text, "
                                             "usage_idle float8"))
    fdw.execute(f"""
        CREATE TABLE cpu (_time timestamptz NOT NULL, host text, usage_idle float8)
            PARTITION BY RANGE (_time);
        CREATE TABLE cpu_yesterday PARTITION OF cpu
            FOR VALUES FROM (to_timestamp({T0 - 86400})) TO (to_timestamp({T0}));
        CREATE FOREIGN TABLE cpu_today PARTITION OF cpu
            FOR VALUES FROM (to_timestamp({T0})) TO (to_timestamp({T0 + 86400}))
            SERVER shard OPTIONS (table_name 'cpu_today');
    """)
    remote_rows, local_rows = 3000, 500
    lines = [f"cpu,host=h{i % 7} usage_idle={i}.5 {(T0 + i) * NS}\n" for i in range(remote_rows)]
    lines += [f"cpu,host=y{i % 3} usage_idle={i} {(T0 - 1 - i) * NS}\n" for i in range(local_rows)]
    send_tcp(fdw.tcp_port, "".join(lines))
    wait_for(lambda: fdw.scalar("SELECT count(*) FROM cpu") == remote_rows + local_rows, 30,
             what="every row, local and remote")
    assert remote.scalar("SELECT count(*) FROM cpu_today") == remote_rows
    assert fdw.scalar("SELECT count(*) FROM ONLY cpu_yesterday") == local_rows
    assert remote.scalar("SELECT sum(usage_idle) FROM cpu_today") == sum(
        i + 0.5 for i in range(remote_rows))
    n, rows = statements(remote, "cpu_today")
    assert rows == remote_rows
    # One INSERT per batch of 100 (a flush's last batch may be shorter), not one per row.
    assert n <= remote_rows // BATCH + 10, f"{n} INSERT statements for {remote_rows} rows"


def test_a_foreign_table_of_its_own_is_written_in_batches(fdw, remote):
    remote.execute(remote_table("mem", "_time timestamptz NOT NULL, host text, used bigint"))
    fdw.execute("CREATE FOREIGN TABLE mem (_time timestamptz NOT NULL, host text, used bigint) "
                "SERVER shard")
    rows = 2500
    send_tcp(fdw.tcp_port, "".join(f"mem,host=h{i % 5} used={i}i {(T0 + i) * NS}\n"
                                   for i in range(rows)))
    wait_for(lambda: remote.scalar("SELECT count(*) FROM mem") == rows, 30,
             what="every row on the remote server")
    n, total = statements(remote, "mem")
    assert total == rows
    assert n <= rows // BATCH + 10, f"{n} INSERT statements for {rows} rows"


def test_a_server_without_batch_size_still_gets_every_row(fdw, remote):
    remote.execute(remote_table("disk", "_time timestamptz NOT NULL, path text, free bigint"))
    fdw.execute("CREATE FOREIGN TABLE disk (_time timestamptz NOT NULL, path text, free bigint) "
                "SERVER shard_rowwise OPTIONS (table_name 'disk')")
    rows = 200
    send_tcp(fdw.tcp_port, "".join(f"disk,path=/p{i % 3} free={i}i {(T0 + i) * NS}\n"
                                   for i in range(rows)))
    wait_for(lambda: remote.scalar("SELECT count(*) FROM disk") == rows, 30,
             what="every row on the remote server")
    n, total = statements(remote, "disk")
    assert (n, total) == (rows, rows)  # batch_size 1: one INSERT per row


def test_a_row_the_remote_server_refuses_is_rejected_alone(fdw, remote):
    """A CHECK on the remote table refuses one row of a batch: the batch fails there, the
    flush is isolated (remote savepoints follow local subtransactions) and only that row is
    rejected and counted."""
    remote.execute(remote_table("temp", "_time timestamptz NOT NULL, room text, "
                                        "celsius float8 CHECK (celsius > -273.15)"))
    fdw.execute("CREATE FOREIGN TABLE temp (_time timestamptz NOT NULL, room text, "
                "celsius float8) SERVER shard")
    rejected = stat(fdw, "rows_rejected_insert")
    rows, bad = 1000, 617
    send_tcp(fdw.tcp_port, "".join(
        f"temp,room=r{i % 4} celsius={-300 if i == bad else i % 40} {(T0 + i) * NS}\n"
        for i in range(rows)))
    wait_for(lambda: stat(fdw, "rows_rejected_insert") == rejected + 1, 30,
             what="the refused row counted")
    wait_for(lambda: remote.scalar("SELECT count(*) FROM temp") == rows - 1, 30,
             what="every other row on the remote server")
    assert remote.scalar("SELECT count(*) FROM temp WHERE celsius < 0") == 0
    assert remote.scalar("SELECT count(*) FROM temp WHERE _time = to_timestamp(%s)",
                         (T0 + bad,)) == 0


def rejected(c):
    return sum(stat(c, k) for k in
               ("rows_rejected_insert", "rows_rejected_table", "rows_rejected_value"))


def test_a_foreign_partitions_server_down_holds_its_rows(fdw, remote):
    """The server of a foreign partition is down: postgres_fdw fails to connect while a row
    is being routed to the partition, before the write knew the row was going to another
    server.  That connection error is the server's, not the row's: the table's lines are
    handed back and come again until the server is back, while another table's rows land;
    not a row is rejected.  (They used to be isolated after a few retries, and each row
    routed to the foreign partition rejected.)"""
    remote.execute(remote_table("net_today", "_time timestamptz NOT NULL, host text, "
                                             "bytes bigint"))
    fdw.execute(f"""
        CREATE TABLE net (_time timestamptz NOT NULL, host text, bytes bigint)
            PARTITION BY RANGE (_time);
        CREATE TABLE net_yesterday PARTITION OF net
            FOR VALUES FROM (to_timestamp({T0 - 86400})) TO (to_timestamp({T0}));
        CREATE FOREIGN TABLE net_today PARTITION OF net
            FOR VALUES FROM (to_timestamp({T0})) TO (to_timestamp({T0 + 86400}))
            SERVER shard OPTIONS (table_name 'net_today');
        CREATE TABLE net_local (_time timestamptz NOT NULL, host text, bytes bigint);
    """)
    before = rejected(fdw)
    retries = stat(fdw, "flush_retries")
    remote.stop()
    try:
        send_tcp(fdw.tcp_port, "".join(
            f"net,host=h{i % 5} bytes={i}i {(T0 + i) * NS}\n"
            f"net,host=y{i % 5} bytes={i}i {(T0 - 1 - i) * NS}\n"
            f"net_local,host=h{i % 5} bytes={i}i {(T0 + i) * NS}\n" for i in range(300)))
        wait_for(lambda: fdw.scalar("SELECT count(*) FROM net_local") == 300, 30,
                 what="the local table's rows while the foreign server is down")
        # Past the retries after which a flush isolates transient errors, several times.
        wait_for(lambda: stat(fdw, "flush_retries") >= retries + 12, 60,
                 what="the foreign partition's rows tried again and again")
        assert rejected(fdw) == before
        assert fdw.scalar("SELECT count(*) FROM net_yesterday") == 0
    finally:
        remote.start()
    wait_for(lambda: fdw.scalar("SELECT count(*) FROM net") == 600, 60,
             what="every row of the partitioned table once the server is back")
    assert remote.scalar("SELECT count(*) FROM net_today") == 300
    assert rejected(fdw) == before
