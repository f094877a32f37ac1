"""
test_cluster.py — the fixtures themselves: a preloaded throw-away cluster starts on free
ports with the module's extra settings, and the extension can be created in it.
"""

import socket

import pytest

from conftest import free_port, wait_for

CLUSTER_CONF = {"influx.batch_size": "1234"}


def test_server_preloads_pg_influx(cluster):
    assert cluster.scalar("SHOW shared_preload_libraries") == "pg_influx"


def test_cluster_uses_its_own_ports(cluster):
    assert cluster.scalar("SHOW port") == str(cluster.port)
    assert cluster.scalar("SHOW influx.udp_port") == str(cluster.udp_port)
    assert cluster.scalar("SHOW influx.tcp_port") == str(cluster.tcp_port)
    assert len({cluster.port, cluster.udp_port, cluster.tcp_port}) == 3


def test_module_conf_is_applied(cluster):
    assert cluster.scalar("SHOW influx.batch_size") == "1234"
    assert cluster.scalar("SHOW influx.flush_interval") == "50ms"


def test_server_runs_unprivileged(cluster):
    assert cluster.scalar("SELECT current_setting('data_directory')") == cluster.data
    # initdb refuses root, so a running server proves the switch to the postgres user.
    assert cluster.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")


def test_create_extension(ext):
    assert ext.scalar("SELECT extversion FROM pg_extension WHERE extname = 'pg_influx'") == "1.4"
    assert ext.scalar("SELECT count(*) FROM pg_proc WHERE pronamespace = 'influx'::regnamespace") >= 6


def test_wait_for_returns_first_truthy_value():
    values = iter([None, 0, "", "done"])
    assert wait_for(lambda: next(values), timeout=5, interval=0.001) == "done"


def test_wait_for_times_out():
    with pytest.raises(pytest.fail.Exception, match="timed out"):
        wait_for(lambda: False, timeout=0.1, interval=0.01, what="nothing")


def test_free_port_is_bindable():
    port = free_port(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))
