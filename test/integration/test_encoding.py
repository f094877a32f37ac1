"""
test_encoding.py — pg_influx in a database that is not UTF-8 (LATIN1).

Line protocol is UTF-8; PostgreSQL text is in the database encoding.  influx.parse() and
influx.insert() take text in the database encoding and must give back and store the same
characters; the workers receive UTF-8 from the network and must store it converted, and a
character the database encoding cannot hold rejects its row only (counted), never the
batch.  influx.database is the LATIN1 database, so the workers write there too.
"""

import psycopg2
import pytest

from conftest import log_size, log_since, send_tcp, wait_for

DB = "l1"
CLUSTER_CONF = {"influx.database": f"'{DB}'", "influx.workers": "1"}


@pytest.fixture(scope="module")
def latin1(cluster):
    """The cluster, with database l1 (LATIN1) holding the extension and the listener
    running into it."""
    cluster.execute(f"CREATE DATABASE {DB} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
                    "TEMPLATE template0")
    conn = cluster.connect(DB)
    conn.cursor().execute("CREATE EXTENSION pg_influx")
    conn.close()
    cluster.reload()  # the listener looks for influx.database again on a reload

    def running():
        conn = cluster.connect(DB)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT status FROM influx.listener_status()")
                return (cur.fetchone()[0] or "").startswith("running")
        finally:
            conn.close()

    wait_for(running, 30, what="the listener running into database l1")
    return cluster


@pytest.fixture
def l1(latin1):
    conn = latin1.connect(DB)
    conn.set_client_encoding("UTF8")
    yield conn
    conn.close()


def one(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def stat_total(conn, counter):
    return one(conn, f"SELECT coalesce(sum({counter}), 0) FROM influx.stats()")[0]


def test_the_database_is_latin1(l1):
    assert one(l1, "SELECT pg_encoding_to_char(encoding) FROM pg_database "
                   "WHERE datname = current_database()")[0] == "LATIN1"


def test_parse_gives_back_the_characters(l1):
    row = one(l1, """SELECT measurement, tags, fields, field_types, error,
                            convert_to(tags->>'t', 'LATIN1') = '\\xe9'::bytea
                     FROM influx.parse('mé,t=é,k\\ é=x f="ü",ö=1i')""")
    measurement, tags, fields, field_types, error, tag_bytes_are_latin1 = row
    assert error is None
    assert measurement == "mé"
    assert tags == {"t": "é", "k é": "x"}
    assert fields == {"f": "ü", "ö": 1}
    assert field_types == {"f": "string", "ö": "integer"}
    assert tag_bytes_are_latin1


def test_parse_counts_lines_and_reports_errors_in_latin1(l1):
    with l1.cursor() as cur:
        cur.execute("SELECT line, measurement, error IS NOT NULL "
                    "FROM influx.parse(E'é f=1\\nà,t=x\\nü f=\"ö\"') ORDER BY line")
        assert cur.fetchall() == [(1, "é", False), (2, None, True), (3, "ü", False)]


def test_insert_stores_what_insert_stores(l1):
    with l1.cursor() as cur:
        cur.execute("CREATE TABLE enc_sql (_time timestamptz, t text, f text, _tags jsonb)")
        cur.execute("SELECT influx.insert('enc_sql,t=é,u=ö f=\"ü\" 1000000000', 's')")
        assert cur.fetchone()[0] == 1
        cur.execute("""INSERT INTO enc_sql VALUES (to_timestamp(2), 'é', 'ü', '{"u": "ö"}')""")
        cur.execute("SELECT t, f, _tags, octet_length(t) FROM enc_sql ORDER BY _time")
        rows = cur.fetchall()
    assert rows[0] == rows[1] == ("é", "ü", {"u": "ö"}, 1)


def test_workers_convert_and_reject_what_latin1_cannot_hold(l1, latin1):
    with l1.cursor() as cur:
        cur.execute("CREATE TABLE enc_net (_time timestamptz, t text, f text, _tags jsonb)")
    before = stat_total(l1, "rows_rejected_value")
    offset = log_size(latin1)
    send_tcp(latin1.tcp_port,
             'enc_net,t=é f="ü" 1000000000\n'           # stored, converted
             'enc_net,t=€ f="euro" 2000000000\n'        # tag value: no LATIN1 euro sign
             'enc_net,t=x f="日本" 3000000000\n'         # string field
             'enc_net,t=y,u=€ f="tags" 4000000000\n'    # leftover tag into _tags jsonb
             'enc_net,t=ö,u=à f="ä" 5000000000\n')      # stored, _tags converted
    wait_for(lambda: one(l1, "SELECT count(*) FROM enc_net")[0] == 2, 15,
             what="the two storable rows")
    wait_for(lambda: stat_total(l1, "rows_rejected_value") == before + 3, 15,
             what="three rows rejected for their characters")
    with l1.cursor() as cur:
        cur.execute("SELECT t, f, _tags, octet_length(t) FROM enc_net ORDER BY _time")
        assert cur.fetchall() == [("é", "ü", None, 1), ("ö", "ä", {"u": "à"}, 1)]
    log = wait_for(lambda: (lambda s: s if "U+20AC" in s else None)(log_since(latin1, offset)),
                   10, what="the reason in the server log")
    assert 'character U+20AC has no equivalent in encoding "LATIN1"' in log


def test_non_ascii_names_are_rejected_not_mis_decoded(l1, latin1):
    """A measurement or key name is a table or column name: in LATIN1 the UTF-8 bytes of
    'mé' would name a table 'mÃ©'.  Such lines are rejected with the reason (counted)."""
    with l1.cursor() as cur:
        cur.execute("CREATE TABLE enc_names (_time timestamptz, t text, f double precision)")
        cur.execute("SELECT influx.insert(E'encé f=1 1\\nenc_names,té=a f=2 2\\n"
                    "enc_names f=3,fé=4 3\\nenc_names,t=ok f=5 4', 's')")
        assert cur.fetchone()[0] == 1
    before = stat_total(l1, "rows_rejected_value")
    send_tcp(latin1.tcp_port, 'encé f=1 1000000000\nenc_names,té=b f=6 5000000000\n'
                              'enc_names,t=net f=7 6000000000\n')
    wait_for(lambda: stat_total(l1, "rows_rejected_value") == before + 2, 15,
             what="the worker rejecting the two lines with non-ASCII names")
    wait_for(lambda: one(l1, "SELECT count(*) FROM enc_names")[0] == 2, 15,
             what="the rows with ASCII names")
    assert one(l1, "SELECT count(*) FROM pg_class WHERE relname LIKE 'enc%%' "
                   "AND relname NOT IN ('enc_names', 'enc_sql', 'enc_net')")[0] == 0
    assert one(l1, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'enc_names'::regclass "
                   "AND attnum > 0")[0] == 3
