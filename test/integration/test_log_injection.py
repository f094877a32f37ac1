"""
test_log_injection.py — names from the network reach log messages escaped.

A measurement, tag or field name may hold any byte but NUL, control characters included.
Printed raw, a CR or LF in a name starts what looks like a log line of its own, and an ESC
sends escape sequences to the terminal of whoever reads the log.  Every message that
shows such a name shows its control characters as \\xNN (docs/monitoring.md).
"""

from conftest import log_size, send_tcp, wait_for

# No table is ever created: every line below names a table that does not exist.
CLUSTER_CONF = {"influx.create_tables": "off", "influx.workers": "1"}

# ESC [ 2 J clears a terminal; the CR would start a forged line.
HOSTILE = "evil\x1b[2J\rFATAL:forged"
ESCAPED = "evil\\x1b[2J\\x0dFATAL:forged"


def log_bytes_since(cluster, offset):
    with open(cluster.logfile, "rb") as f:
        f.seek(offset)
        return f.read()


def test_a_worker_logs_a_hostile_measurement_escaped(listener):
    c = listener
    offset = log_size(c)
    before = c.stat_total("rows_rejected_table")
    send_tcp(c.tcp_port, f"{HOSTILE},host=a v=1i\n")
    wait_for(lambda: c.stat_total("rows_rejected_table") == before + 1, 15,
             what="the row rejected for its missing table")

    def warning():
        log = log_bytes_since(c, offset)
        return log if b"create_tables is off" in log else None

    log = wait_for(warning, 15, what="the WARNING in the server log")
    assert ESCAPED.encode() in log
    assert b"\x1b" not in log and b"\r" not in log
    # influx.stats shows the same text.
    last = c.scalar("SELECT string_agg(last_error, ' ') FROM influx.stats() WHERE kind = 'worker'")
    assert ESCAPED in last and "\x1b" not in last


def test_influx_insert_warns_with_names_escaped(listener, db):
    c = listener
    c.execute('CREATE TABLE hostile_columns (_time timestamptz, "v\x1b[2J" bigint)')
    offset = log_size(c)
    with db.cursor() as cur:
        cur.execute("SELECT influx.insert(%s, create_tables => false)",
                    (f"{HOSTILE},host=a v=1i\n"
                     'hostile_columns v\x1b[2J="not a number"\n',))
        assert cur.fetchone()[0] == 0
    notices = "".join(db.notices)
    # The missing table (insert.cpp) and the bad value's column (table_writer.cpp).
    assert f'no table "public.{ESCAPED}"' in notices
    assert 'column "v\\x1b[2J"' in notices
    assert "\x1b" not in notices and "\r" not in notices
    log = log_bytes_since(c, offset)
    assert b"\\x1b[2J" in log and b"\x1b" not in log and b"\r" not in log
