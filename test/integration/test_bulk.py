"""
test_bulk.py — TCP is lossless: 200,000 lines over 4 concurrent connections arrive exactly
once, with exact values.
"""

import threading

from conftest import send_tcp, wait_for

CONNECTIONS = 4
LINES_PER_CONNECTION = 50_000
T0_NS = 1_700_000_000_000_000_000


def payload(conn):
    # Timestamps in whole microseconds so that timestamptz keeps them exactly.
    return "".join(
        f"bulk,conn=c{conn} seq={i}i,val={i * 0.5} {T0_NS + i * 1000}\n"
        for i in range(LINES_PER_CONNECTION)
    ).encode()


def test_200k_lines_over_4_tcp_connections_arrive_exactly_once(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE bulk (_time timestamptz, conn text, seq int8, val float8)")
    payloads = [payload(c) for c in range(CONNECTIONS)]
    errors = []

    def sender(data):
        try:
            send_tcp(listener.tcp_port, data)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=sender, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors

    total = CONNECTIONS * LINES_PER_CONNECTION
    wait_for(lambda: listener.row_count("bulk") >= total, timeout=120, what=f"{total} rows")
    n = LINES_PER_CONNECTION
    got = listener.query(
        """SELECT conn, count(*), count(DISTINCT seq), min(seq), max(seq), sum(seq),
                  count(*) FILTER (WHERE val <> seq * 0.5),
                  count(*) FILTER (WHERE _time <> to_timestamp(1700000000) + seq * interval '1 microsecond')
           FROM bulk GROUP BY conn ORDER BY conn"""
    )
    expected = [
        (f"c{c}", n, n, 0, n - 1, n * (n - 1) // 2, 0, 0) for c in range(CONNECTIONS)
    ]
    assert got == expected
    assert listener.row_count("bulk") == total
