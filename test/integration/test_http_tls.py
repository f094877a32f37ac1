"""
test_http_tls.py — influx.http_tls = on: the HTTP endpoint speaks TLS only, with the
server's ssl_cert_file and ssl_key_file, checked by curl --cacert and Python's ssl module;
a plain HTTP request to the port is not served.
"""

import http.client
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile

import pytest

from conftest import wait_for
from http_support import T0_NS

CERT_DIR = tempfile.mkdtemp(prefix="pg_influx_tls_")
CERT = os.path.join(CERT_DIR, "server.crt")
KEY = os.path.join(CERT_DIR, "server.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                "-keyout", KEY, "-out", CERT], check=True, capture_output=True)
os.chmod(CERT_DIR, 0o755)
os.chmod(KEY, 0o600)
if os.geteuid() == 0:
    pg = pwd.getpwnam("postgres")
    for f in (CERT, KEY):
        os.chown(f, pg.pw_uid, pg.pw_gid)

CLUSTER_CONF = {
    "influx.http_tls": "on",
    "ssl_cert_file": f"'{CERT}'",
    "ssl_key_file": f"'{KEY}'",
}


@pytest.fixture(scope="module")
def tls(listener):
    yield listener
    shutil.rmtree(CERT_DIR, ignore_errors=True)


def https(port, method, path, body=None):
    ctx = ssl.create_default_context(cafile=CERT)
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_curl_with_the_ca_certificate_pings_and_writes(tls):
    port = tls.http_port
    wait_for(lambda: subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", CERT,
         f"https://localhost:{port}/ping"], capture_output=True, text=True).stdout == "204",
        timeout=20, what="GET /ping over TLS")
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", CERT, "-XPOST",
         f"https://localhost:{port}/write", "--data-binary", f"tls_curl v=1 {T0_NS}"],
        capture_output=True, text=True, timeout=30)
    assert out.stdout == "204", out
    assert tls.scalar("SELECT count(*) FROM tls_curl") == 1


def test_python_https_client_writes_many_lines(tls):
    body = "".join(f"tls_py,h=a v={i}i {T0_NS + i}\n" for i in range(20000))
    status, headers, _ = https(tls.http_port, "POST", "/write?precision=ns", body)
    assert status == 204, headers
    assert headers.get("X-Influxdb-Version")
    assert tls.scalar("SELECT count(DISTINCT v) FROM tls_py") == 20000


def test_an_unverified_certificate_is_refused_by_a_careful_client(tls):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          f"https://localhost:{tls.http_port}/ping"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and out.stdout == "000", out


def test_plain_http_is_not_served_on_the_tls_port(tls):
    conn = http.client.HTTPConnection("localhost", tls.http_port, timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            conn.request("POST", "/write", body=f"tls_plain v=1 {T0_NS}\n")
            conn.getresponse()
    finally:
        conn.close()
    assert tls.scalar("SELECT to_regclass('tls_plain') IS NULL")
