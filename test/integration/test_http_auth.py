"""
test_http_auth.py — password authentication on the HTTP endpoint (influx.http_auth =
password).  Skipped, with the reason, while the server does not know influx.http_auth.

Assumed: the credentials are a PostgreSQL login role and its password, given in any of the
forms InfluxDB 1.x accepts (u/p query parameters, Basic, `Token user:password`).  Without
credentials, or with wrong ones, a write is 401 with `WWW-Authenticate: Basic realm=...` and
writes nothing; /ping never needs credentials.  (With trust, the default, credentials are
ignored: test_http.py.)
"""

import base64

import pytest

from http_support import (
    T0_NS,
    assert_204,
    assert_influx_headers,
    request,
    require_http,
    setting,
    write,
    write_v2,
)

CLUSTER_CONF = {"influx.http_auth": "password"}

USER, PASSWORD = "http_writer", "w-Secret-42"


@pytest.fixture(scope="module")
def auth(listener):
    value = setting(listener, "influx.http_auth")
    if value is None:
        pytest.skip("the server does not know influx.http_auth: HTTP password authentication "
                    "has not landed yet")
    assert value == "password", f"influx.http_auth is {value!r}, the module set 'password'"
    require_http(listener)
    listener.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
    listener.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {USER}")
    return listener


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def exists(c, table):
    return c.scalar("SELECT to_regclass(%s) IS NOT NULL", (table,))


def assert_401(r):
    assert r.status == 401, r
    assert (r.header("WWW-Authenticate") or "").startswith("Basic realm="), r
    assert (r.header("Content-Type") or "").startswith("application/json"), r
    assert r.json().get("error"), r
    assert_influx_headers(r)


def test_ping_needs_no_credentials(auth):
    assert_204(request(auth.http_port, "GET", "/ping"))


@pytest.mark.parametrize("how", ["none", "u/p", "basic", "token", "unknown user", "root:root"])
def test_missing_or_wrong_credentials_are_401_and_write_nothing(auth, how):
    port, line = auth.http_port, f"auth_denied v=1 {T0_NS}\n"
    if how == "none":
        r = write(port, line)
    elif how == "u/p":
        r = write(port, line, u=USER, p="wrong")
    elif how == "basic":
        r = write(port, line, headers={"Authorization": basic(USER, "wrong")})
    elif how == "token":
        r = write_v2(port, line, bucket="b", headers={"Authorization": f"Token {USER}:wrong"})
    elif how == "unknown user":
        r = write(port, line, u="nobody_here", p=PASSWORD)
    else:  # influxdb-python's default credentials
        r = write(port, line, headers={"Authorization": basic("root", "root")})
    assert_401(r)
    assert not exists(auth, "public.auth_denied")


@pytest.mark.parametrize("how", ["u/p", "basic", "token"])
def test_right_credentials_write(auth, how):
    table = "auth_ok_" + how.replace("/", "")
    port, line = auth.http_port, f"{table} v=1 {T0_NS}\n"
    if how == "u/p":
        r = write(port, line, u=USER, p=PASSWORD)
    elif how == "basic":
        r = write(port, line, headers={"Authorization": basic(USER, PASSWORD)})
    else:
        r = write_v2(port, line, bucket="b", headers={"Authorization": f"Token {USER}:{PASSWORD}"})
    assert_204(r)
    assert auth.scalar(f"SELECT count(*) FROM public.{table}") == 1


def test_python_client_with_and_without_credentials(auth):
    from influxdb import InfluxDBClient
    from influxdb.exceptions import InfluxDBClientError

    good = InfluxDBClient(host="localhost", port=auth.http_port, username=USER,
                          password=PASSWORD, database="public")
    assert good.write_points([{"measurement": "auth_py", "fields": {"v": 1.0}}]) is True
    assert auth.scalar("SELECT count(*) FROM public.auth_py") == 1
    default = InfluxDBClient(host="localhost", port=auth.http_port, database="public")
    with pytest.raises(InfluxDBClientError) as e:
        default.write_points([{"measurement": "auth_py", "fields": {"v": 2.0}}])
    assert e.value.code == 401
    assert auth.scalar("SELECT count(*) FROM public.auth_py") == 1
