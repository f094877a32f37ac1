"""
test_udp_drops.py — UDP datagrams the kernel drops because the listener is held back are
counted exactly: datagrams_dropped + datagrams that became rows == datagrams sent.
"""

import socket
import threading

from conftest import send_tcp, wait_for

# One worker with the smallest ring and UDP buffer: a locked table holds the listener back
# within a few kilobytes, and the kernel then drops datagrams.
CLUSTER_CONF = {
    "influx.workers": "1",
    "influx.queue_size": "64kB",
    "influx.udp_receive_buffer": "64kB",
}


def test_dropped_datagrams_are_counted_exactly(listener):
    c = listener
    c.execute("CREATE TABLE udpdrop (_time timestamptz, host text, v bigint)")
    dropped_before = c.stat_total("datagrams_dropped")
    lock_conn = c.connect()
    lock_conn.autocommit = False
    lock_conn.cursor().execute("LOCK TABLE udpdrop IN ACCESS EXCLUSIVE MODE")
    tcp_lines = 200_000
    payload = "".join(f"udpdrop,host=t v={i}i {1_600_000_000_000_000_000 + i}\n"
                      for i in range(tcp_lines)).encode()
    sender = threading.Thread(target=send_tcp, args=(c.tcp_port, payload))
    try:
        sender.start()
        wait_for(lambda: c.stat_total("queue_full") > 0, 30, what="the ring to fill up")
        n = 5000
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(n):
                s.sendto(f"udpdrop,host=u v={i}i {1_700_000_000_000_000_000 + i}\n".encode(),
                         ("127.0.0.1", c.udp_port))
        # Polled once a second while the listener is held back.
        wait_for(lambda: c.stat_total("datagrams_dropped") > dropped_before, 15,
                 what="dropped datagrams to be counted")
    finally:
        lock_conn.rollback()
        lock_conn.close()
    sender.join(120)
    wait_for(lambda: c.scalar("SELECT count(*) FROM udpdrop WHERE host = 't'") == tcp_lines, 120,
             what="every TCP line")

    def accounted():
        rows = c.scalar("SELECT count(*) FROM udpdrop WHERE host = 'u'")
        dropped = c.stat_total("datagrams_dropped") - dropped_before
        return (rows, dropped) if rows + dropped == n else None

    rows, dropped = wait_for(accounted, 30, what="sent == inserted + dropped")
    assert 0 < dropped < n and rows > 0
