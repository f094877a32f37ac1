"""
test_http_limits.py — the HTTP endpoint's settings and its answers when PostgreSQL cannot
keep up: influx.http_write_timeout (a write not committed in time is answered 500 `timeout`,
as InfluxDB 1.x's coordinator write timeout), 503 with Retry-After when no worker can take
the lines (nothing written), and the default precision of HTTP writes (nanoseconds, whatever
influx.precision says for UDP and TCP).

The cluster sets influx.http_write_timeout = 1s and influx.precision = s.
"""

import datetime
import time

import pytest

from conftest import wait_for
from http_support import (
    T0_NS,
    assert_204,
    assert_json_error,
    require_http,
    setting,
    write,
    write_v2,
)

CLUSTER_CONF = {
    "influx.http_write_timeout": "1s",
    "influx.precision": "s",
    "influx.workers": "2",
}

T0 = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def http(listener):
    require_http(listener)
    return listener


def exists(c, table):
    return c.scalar("SELECT to_regclass(%s) IS NOT NULL", (table,))


def test_settings_and_defaults(http):
    assert setting(http, "influx.http_write_timeout") in ("1s", "1000ms")
    assert setting(http, "influx.http_port") == str(http.http_port)
    assert setting(http, "influx.http_max_connections") == "1000"
    assert setting(http, "influx.http_max_body_size") in ("25MB", "25000000", "25000000B")


def test_http_timestamps_are_nanoseconds_by_default(http):
    # influx.precision = s applies to UDP and TCP; an HTTP write without precision= is ns,
    # as every InfluxDB client (and Telegraf, which never sends precision) expects.
    assert_204(write(http.http_port, f"default_prec v=1 {T0_NS}\n"))
    assert_204(write_v2(http.http_port, f"default_prec v=2 {T0_NS}", bucket="b"))
    assert http.query("SELECT _time, v FROM default_prec ORDER BY v") == [(T0, 1.0), (T0, 2.0)]


def test_a_write_not_committed_in_time_is_500_timeout(http, gate):
    close, open_ = gate
    close()
    try:
        started = time.monotonic()
        r = write(http.http_port, f"gate f=1 {T0_NS}\n")
        elapsed = time.monotonic() - started
        assert_json_error(r, 500, contains="timeout")
        # influx.http_write_timeout (1s) is what answered, not the 4s default.
        assert 0.9 <= elapsed < 3.5, elapsed
    finally:
        open_()
    # Once the table can be written again, so can the endpoint.
    assert_204(write(http.http_port, f"gate f=2 {T0_NS + 1}\n"))
    assert http.scalar("SELECT count(*) FROM gate WHERE f = 2") == 1


def test_no_worker_running_is_503_with_retry_after_and_nothing_written(http):
    c = http
    c.execute("ALTER SYSTEM SET influx.workers = 0")
    c.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: not c.backend_pids("influx worker"), 30, what="the workers to stop")
        r = write(c.http_port, f"refused v=1 {T0_NS}\n")
        assert_json_error(r, 503)
        retry_after = r.header("Retry-After")
        assert retry_after is not None and retry_after.isdigit(), r
        r = write_v2(c.http_port, f"refused v=2 {T0_NS}", bucket="b")
        assert_json_error(r, 503)
        assert (r.header("Retry-After") or "").isdigit(), r
        assert not exists(c, "public.refused")
    finally:
        c.execute("ALTER SYSTEM RESET influx.workers")
        c.execute("SELECT pg_reload_conf()")
    wait_for(lambda: len(c.backend_pids("influx worker")) == 2, 30, what="the workers back")

    def accepted():
        r = write(c.http_port, f"after_refusal v=1 {T0_NS}\n")
        assert r.status in (204, 503), r  # 503: nothing was written, try again
        return r.status == 204

    wait_for(accepted, 30, interval=0.2, what="a write accepted again")
    assert c.scalar("SELECT count(*) FROM after_refusal") == 1
    # The refused lines were not kept for later either.
    assert not exists(c, "public.refused")
