"""
test_limits.py — limits against broken clients: an over-long line is rejected and counted
in influx.stats(), and the next line on the same connection still lands.
"""

import os

from conftest import Cluster, send_tcp, send_udp, wait_for

CLUSTER_CONF = {"influx.max_line_length": "1kB"}


def test_max_line_length_from_module_conf(cluster):
    assert cluster.scalar("SHOW influx.max_line_length") == "1kB"


def test_overlong_tcp_line_is_rejected_and_counted(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE long_ok (_time timestamptz, host text, v float8)")
        cur.execute("CREATE TABLE long_bad (_time timestamptz, host text, s text)")
    before = listener.stat_total("lines_rejected_too_long")
    too_long = 'long_bad,host=a s="' + "x" * 5000 + '"\n'
    send_tcp(listener.tcp_port, too_long + "long_ok,host=a v=1\n")
    wait_for(lambda: listener.row_count("long_ok") == 1, timeout=15, what="the line after the long one")
    wait_for(
        lambda: listener.stat_total("lines_rejected_too_long") >= before + 1,
        timeout=15,
        what="lines_rejected_too_long to count the line",
    )
    assert listener.row_count("long_bad") == 0
    assert listener.query("SELECT host, v FROM long_ok") == [("a", 1.0)]


def test_overlong_line_is_skipped_to_its_real_end(listener, db):
    """A newline inside the quoted string of an over-long line does not end it: the skip
    goes on to the line's real end, so the rest of the string is not read as lines."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE long_after (_time timestamptz, host text, v float8)")
    before_long = listener.stat_total("lines_rejected_too_long")
    before_syntax = listener.stat_total("lines_rejected_syntax")
    too_long = 'long_quoted,host=a s="' + "x" * 3000 + '\nnot_a_line f=1\n' + "y" * 100 + '"\n'
    send_tcp(listener.tcp_port, too_long + "long_after,host=a v=3\n")
    wait_for(lambda: listener.row_count("long_after") == 1, timeout=15, what="the next line")
    wait_for(lambda: listener.stat_total("lines_rejected_too_long") == before_long + 1,
             timeout=15, what="the long line counted once")
    assert listener.scalar("SELECT to_regclass('not_a_line')") is None
    assert listener.stat_total("lines_rejected_syntax") == before_syntax


def test_overlong_udp_line_is_rejected_but_the_datagram_is_not(listener, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE udp_long_ok (_time timestamptz, host text, v float8)")
    before = listener.stat_total("lines_rejected_too_long")
    send_udp(listener.udp_port, 'udp_long_bad,host=a s="' + "y" * 3000 + '"\nudp_long_ok,host=a v=2\n')
    wait_for(lambda: listener.row_count("udp_long_ok") == 1, timeout=15, what="the good line")
    wait_for(
        lambda: listener.stat_total("lines_rejected_too_long") >= before + 1,
        timeout=15,
        what="lines_rejected_too_long to count the line",
    )
    assert listener.row_count("udp_long_bad") == 0


def test_overlong_line_reason_is_visible(listener):
    wait_for(
        lambda: any(r["last_error"] for r in listener.stats()),
        timeout=15,
        what="a last_error in influx.stats()",
    )



def test_out_of_file_descriptors_refuses_and_keeps_serving():
    """A listener that runs out of file descriptors (a service's limit on open files
    against thousands of agents) takes each connection it cannot keep and closes it at
    once, counted as refused; it does not leave it queued (the client would wait forever
    and the listener would wake for it without end). The connections it holds go on
    delivering. The server runs with a hard limit of 160 open files (prlimit), so the
    listener cannot raise it and says so."""
    import select
    import socket

    c = Cluster("fdlimit", {"influx.max_connections": "1000"})
    try:
        c.init()
        # pg_ctl, and so the server, under a hard limit of 160 open files
        c._run("prlimit", "--nofile=160:160", os.path.join(c.bindir, "pg_ctl"), "-D", c.data,
               "-l", c.logfile, "-w", "-t", "60", "start")
        c.running = True
        c.execute("CREATE EXTENSION pg_influx")
        c.wait_listener_running()
        c.execute("CREATE TABLE fd_ok (_time timestamptz, conn int8, v float8)")
        wait_for(lambda: "the listener may open 160 file descriptors" in c.log_tail(200), 10,
                 what="the WARNING about the limit on open files")
        socks = [socket.create_connection(("127.0.0.1", c.tcp_port), timeout=10) for _ in range(220)]
        try:
            # Connections beyond what the listener can hold are closed by it: EOF, no hang.
            closed = set()
            poller = select.poll()
            for s in socks:
                poller.register(s, select.POLLIN)
            by_fd = {s.fileno(): s for s in socks}

            def surplus_closed():
                for fd, _ in poller.poll(100):
                    if fd in closed:
                        continue
                    try:
                        if by_fd[fd].recv(1) == b"":
                            closed.add(fd)
                    except ConnectionResetError:
                        closed.add(fd)
                return len(closed) >= 40
            wait_for(surplus_closed, 15, what="the surplus connections closed by the listener")
            wait_for(lambda: c.stat_total("connections_refused") >= len(closed), 10,
                     what="the refused connections counted")
            # The connections it kept still deliver.
            kept = [s for s in socks if s.fileno() not in closed][:5]
            for i, s in enumerate(kept):
                s.sendall(f"fd_ok conn={i}i,v=1 {1_700_000_000_000_000_000 + i}\n".encode())
            wait_for(lambda: c.row_count("fd_ok") == len(kept), 15, what="rows from kept connections")
        finally:
            for s in socks:
                s.close()
    finally:
        c.destroy()
