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
import re

import pytest

from conftest import Cluster, log_since, log_size, wait_for

from http_support import (
    T0_NS,
    assert_204,
    assert_influx_headers,
    assert_json_error,
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


def test_failed_logins_are_counted_and_logged(auth):
    """Each failed login counts in /metrics (pg_influx_http_auth_failures_total) and is logged
    with the user name and the client's address, as PostgreSQL logs its own failed logins.
    (First in the module: the log takes 60 such lines a minute, and later tests fail more.)"""
    def failures():
        r = request(auth.http_port, "GET", "/metrics",
                    headers={"Authorization": basic(USER, PASSWORD)})
        assert r.status == 200, r
        for line in r.body.decode().splitlines():
            if line.startswith("pg_influx_http_auth_failures_total "):
                return int(line.split()[1])
        raise AssertionError("no pg_influx_http_auth_failures_total in /metrics")

    before, offset = failures(), log_size(auth)
    assert_401(write(auth.http_port, f"counted v=1 {T0_NS}\n", u="counted_user", p="nope"))
    assert_401(write(auth.http_port, f"counted v=1 {T0_NS}\n",
                     headers={"Authorization": basic(USER, "nope")}))
    assert_401(write_v2(auth.http_port, f"counted v=1 {T0_NS}\n", bucket="b",
                        headers={"Authorization": "Token not-a-token"}))
    assert failures() == before + 3
    wait_for(lambda: 'HTTP login failed (401) for user "counted_user" from 127.0.0.1'
             in log_since(auth, offset), 10, what="the failed login in the server log")
    assert "nope" not in log_since(auth, offset), "a password in the server log"


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


def test_a_request_writes_with_its_roles_privileges(auth):
    """The authenticated role, not the workers' role (a superuser here), is the writer:
    a table it may not insert into rejects its lines; the tables it creates are its own."""
    auth.execute("CREATE TABLE public.auth_locked (_time timestamptz, v float8)")
    auth.execute(f"REVOKE ALL ON public.auth_locked FROM {USER}")
    r = write(auth.http_port, f"auth_locked v=1 {T0_NS}\nauth_mine v=2 {T0_NS}\n",
              u=USER, p=PASSWORD)
    assert r.status == 400, r
    body = r.json()
    assert "partial write" in body["error"] and "dropped=1" in body["error"], body
    assert "permission denied" in body["error"], body
    assert auth.scalar("SELECT count(*) FROM public.auth_locked") == 0
    assert auth.scalar("SELECT count(*) FROM public.auth_mine") == 1
    assert auth.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'auth_mine'") == USER


def test_row_level_security_applies_to_the_role(auth):
    auth.execute("CREATE TABLE public.auth_rls (_time timestamptz, host text, v float8)")
    auth.execute(f"GRANT INSERT, SELECT ON public.auth_rls TO {USER}")
    auth.execute("ALTER TABLE public.auth_rls ENABLE ROW LEVEL SECURITY")
    auth.execute(f"CREATE POLICY only_a ON public.auth_rls FOR INSERT TO {USER} "
                 "WITH CHECK (host = 'a')")
    r = write(auth.http_port, f"auth_rls,host=a v=1 {T0_NS}\nauth_rls,host=b v=2 {T0_NS}\n",
              u=USER, p=PASSWORD)
    assert r.status == 400 and "dropped=1" in r.json()["error"], r
    assert auth.scalar("SELECT string_agg(host, ',') FROM public.auth_rls") == "a"


def test_a_superuser_role_is_refused_unless_allowed(auth):
    """The test cluster runs with influx.allow_superuser = on (its writer is postgres):
    turned off, a superuser's own password does not let it write over HTTP; and with no
    worker running (postgres is refused as the workers' role too), writes are answered 503
    at once, and /health says why."""
    auth.execute("CREATE ROLE http_super SUPERUSER LOGIN PASSWORD 'S-secret-1'")
    auth.execute("ALTER SYSTEM SET influx.allow_superuser = off")
    auth.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: "superuser" in auth.scalar("SELECT status FROM influx.listener_status()"),
                 timeout=10, what="the listener to apply influx.allow_superuser = off")
        r = write(auth.http_port, f"auth_super v=1 {T0_NS}\n", u="http_super", p="S-secret-1")
        assert r.status == 403 and "superuser" in r.json()["error"], r
        r = write(auth.http_port, f"auth_nowork v=1 {T0_NS}\n", u=USER, p=PASSWORD)
        assert r.status == 503 and r.header("Retry-After") == "1", r
        h = request(auth.http_port, "GET", "/health")
        assert h.status == 503 and h.json()["status"] == "fail", h
        assert not exists(auth, "public.auth_super")
        assert not exists(auth, "public.auth_nowork")
    finally:
        auth.execute("ALTER SYSTEM RESET influx.allow_superuser")
        auth.execute("SELECT pg_reload_conf()")


def test_tokens_write_as_their_role_and_stop_when_dropped(auth):
    token = auth.scalar(f"SELECT influx.create_token('{USER}', 'test token')")
    assert token.startswith("pgi_") and len(token) == 52
    # Stored hashed: the token itself is nowhere in the table.
    assert auth.scalar("SELECT count(*) FROM influx.token WHERE hash = sha256(%s::bytea)",
                       (token,)) == 1
    assert auth.scalar("SELECT count(*) FROM influx.token WHERE position(%s::bytea in hash) > 0 "
                       "OR comment = %s", (token, token)) == 0
    line = f"auth_token v=1 {T0_NS}\n"
    # Worker 0 loads new tokens within about a second.
    statuses = []

    def try_token():
        r = write_v2(auth.http_port, line, bucket="b", headers={"Authorization": f"Token {token}"})
        statuses.append(r.status)
        return r if r.status == 204 else None

    r = wait_for(try_token, timeout=10, what="the new token to be accepted")
    assert_204(r)
    assert set(statuses[:-1]) <= {401}, statuses
    assert auth.scalar("SELECT count(*) FROM public.auth_token") == 1, statuses
    assert_204(write(auth.http_port, line, headers={"Authorization": f"Bearer {token}"}))
    assert auth.scalar("SELECT count(*) FROM public.auth_token") == 2
    assert auth.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'auth_token'") == USER
    assert_401(write(auth.http_port, line, headers={"Authorization": f"Token {token}x"}))

    tid = auth.scalar("SELECT id FROM influx.tokens WHERE comment = 'test token'")
    assert auth.scalar("SELECT influx.drop_token(%s)", (tid,)) is True
    assert auth.scalar("SELECT influx.drop_token(%s)", (tid,)) is False
    # Until worker 0 reloads (about a second), the token still works; then it is refused.
    wait_for(lambda: write(auth.http_port, line,
                           headers={"Authorization": f"Token {token}"}).status == 401,
             timeout=10, what="the dropped token to be refused")
    before = auth.scalar("SELECT count(*) FROM public.auth_token")
    assert_401(write(auth.http_port, line, headers={"Authorization": f"Token {token}"}))
    assert auth.scalar("SELECT count(*) FROM public.auth_token") == before


def test_a_token_whose_oid_names_another_role_writes_as_nobody(auth):
    """A token names its role by OID and by name: when that OID names another role -- the
    token restored into another cluster, or left by DROP ROLE until a new role got the OID
    -- the token writes as nobody, not as that role.  (Before, it wrote as whichever role
    had the OID.)"""
    c = auth
    for r in ("tok_oid_owner", "tok_oid_other"):
        c.execute(f"CREATE ROLE {r} LOGIN")
        c.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {r}")
    token = c.scalar("SELECT influx.create_token('tok_oid_owner', 'oid test')")
    headers = {"Authorization": f"Token {token}"}
    wait_for(lambda: write(c.http_port, f"tok_oid v=1 {T0_NS}\n", headers=headers).status == 204,
             20, what="the token to write")
    assert c.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'tok_oid'") == \
        "tok_oid_owner"
    # The row now names another role's OID, as after a restore elsewhere or an OID reused.
    c.execute("UPDATE influx.token SET role = 'tok_oid_other'::regrole WHERE comment = 'oid test'")
    # The listener's copy of the tokens is loaded again within 10 s; until then the token
    # still writes as its own role.
    wait_for(lambda: write(c.http_port, f"tok_oid_later v=1 {T0_NS}\n",
                           headers=headers).status == 401, 30,
             what="the token to be refused (it wrote as the role that got the OID)")
    assert c.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'tok_oid_later'") in (
        None, "tok_oid_owner"), "the token wrote as the role that got the OID"
    c.execute("DELETE FROM influx.token WHERE comment = 'oid test'")


def test_only_members_of_a_role_may_create_or_see_its_tokens(auth):
    auth.execute("CREATE ROLE tok_other LOGIN")
    auth.execute("CREATE ROLE tok_mallory LOGIN")
    theirs = auth.scalar("SELECT influx.create_token('tok_other')")
    assert theirs
    conn = auth.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET ROLE tok_mallory")
            with pytest.raises(Exception) as e:
                cur.execute("SELECT influx.create_token('tok_other')")
            assert "permission denied" in str(e.value)
            cur.execute("SET ROLE tok_mallory")
            cur.execute("SELECT count(*) FROM influx.tokens")
            assert cur.fetchone()[0] == 0
            with pytest.raises(Exception) as e:
                cur.execute("SELECT * FROM influx.token")
            assert "permission denied" in str(e.value)
            cur.execute("SET ROLE tok_mallory")
            cur.execute("SELECT influx.create_token('tok_mallory')")
            cur.execute("SELECT count(*) FROM influx.tokens")
            assert cur.fetchone()[0] == 1
    finally:
        conn.close()
    tid = auth.scalar("SELECT id FROM influx.tokens WHERE role = 'tok_other'::regrole")
    conn = auth.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET ROLE tok_mallory")
            with pytest.raises(Exception) as e:
                cur.execute("SELECT influx.drop_token(%s)", (tid,))
            assert "permission denied" in str(e.value)
    finally:
        conn.close()
    assert auth.scalar("SELECT count(*) FROM influx.tokens WHERE role = 'tok_other'::regrole") == 1


def test_a_database_the_role_may_create_in_but_not_use_falls_back_to_influx_schema(auth):
    """`db` names a schema only where the writing role has both CREATE and USAGE; with
    CREATE alone it could make tables there but never find them, and every line was
    rejected (400, which Telegraf drops).  Such a request writes into influx.schema."""
    c = auth
    c.execute("DROP SCHEMA IF EXISTS create_only CASCADE; CREATE SCHEMA create_only; "
              f"GRANT CREATE ON SCHEMA create_only TO {USER}")
    body = "".join(f"create_only_m,host=h{i % 3} v={i} {T0_NS + i}\n" for i in range(50))
    assert_204(write(c.http_port, body, db="create_only", u=USER, p=PASSWORD))
    assert c.row_count("public.create_only_m") == 50
    assert not exists(c, "create_only.create_only_m")


def test_a_requests_own_table_code_cannot_take_the_workers_role(auth):
    """A request writes as its role, inside a worker logged in as influx.role.  The code of
    a table the role owns (a trigger) runs as the role, but its session is the worker's:
    `SET ROLE <session_user>` used to succeed and hand the trigger the worker's rights (a
    superuser's here).  It is refused, as in a SECURITY DEFINER function."""
    c = auth
    c.execute(f"""
        CREATE SCHEMA escape_attempt AUTHORIZATION {USER};
        SET ROLE {USER};
        CREATE TABLE escape_attempt.m (_time timestamptz, v float8, note text);
        CREATE FUNCTION escape_attempt.take() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            BEGIN
                EXECUTE format('SET LOCAL ROLE %I', session_user);
                NEW.note := 'became ' || current_user;
            EXCEPTION WHEN OTHERS THEN
                NEW.note := 'refused: ' || SQLERRM;
            END;
            RETURN NEW;
        END $$;
        CREATE TRIGGER take BEFORE INSERT ON escape_attempt.m
            FOR EACH ROW EXECUTE FUNCTION escape_attempt.take();
        RESET ROLE;""")
    r = write(c.http_port, f"m v=1 {T0_NS}\n", db="escape_attempt", u=USER, p=PASSWORD)
    assert_204(r)
    note = c.scalar("SELECT note FROM escape_attempt.m")
    assert note.startswith("refused: "), note


def test_a_role_made_superuser_after_logging_in_does_not_hold_up_the_others():
    """With influx.allow_superuser off, a superuser may not write over HTTP (403).  A role
    made superuser while its login was still remembered (a few seconds) got its request
    in; its rows then reached a worker, which held the flush until the role was fixed --
    and every other role's requests behind it (500 timeouts).  Its rows are refused with
    the reason; the others go on."""
    c = Cluster("promoted", {"influx.http_auth": "password", "influx.role": None,
                             "influx.allow_superuser": None, "influx.schema": None})
    try:
        c.init()
        c.start()
        c.execute("CREATE EXTENSION pg_influx")
        c.wait_listener_running()
        for who in ("alice", "bob"):
            c.execute(f"CREATE ROLE {who} LOGIN PASSWORD '{who}-Secret-1';"
                      f"GRANT USAGE, CREATE ON SCHEMA influx_metrics TO {who}")

        def send(who, table, v):
            return write(c.http_port, f"{table},host=h v={v} {T0_NS + v}\n",
                         u=who, p=f"{who}-Secret-1")

        assert_204(send("alice", "alice_m", 1))
        assert_204(send("bob", "bob_m", 1))
        c.execute("ALTER ROLE alice SUPERUSER")
        r = send("alice", "alice_m", 2)  # in on the remembered login
        assert r.status in (400, 403), r
        if r.status == 400:
            assert_json_error(r, 400, contains="superuser")
        for v in range(2, 5):
            assert_204(send("bob", "bob_m", v))
        assert c.scalar("SELECT count(*) FROM influx_metrics.bob_m") == 4
        assert c.scalar("SELECT count(*) FROM influx_metrics.alice_m") == 1
    finally:
        c.destroy()


def test_create_token_refuses_past_the_tokens_in_force(auth):
    """The listener uses the first 1,024 tokens; a token past them used to be created and
    handed out, and then refused every request without a word.  create_token() refuses
    instead, until a token is dropped.  And one role may have at most 100 of them: its
    members could otherwise take every token there is and leave the other roles none."""
    c = auth
    fillers = [f"tok_fill_{k}" for k in range(11)]
    try:
        for r in fillers:
            c.execute(f"CREATE ROLE {r} LOGIN")
        # One role: 100 tokens, then no more for it -- but for others still.
        c.execute(f"SELECT influx.create_token('{fillers[0]}', 'filler') "
                  f"FROM generate_series(1, 100)")
        with pytest.raises(Exception, match=f'role "{fillers[0]}" has 100 tokens'):
            c.execute(f"SELECT influx.create_token('{fillers[0]}', 'one too many')")
        # Up to 1,024 in all, over several roles.
        have = c.scalar("SELECT count(*) FROM influx.token")
        for r in fillers[1:]:
            n = min(100, 1024 - have)
            if n > 0:
                c.execute(f"SELECT influx.create_token('{r}', 'filler') FROM generate_series(1, {n})")
                have += n
        assert c.scalar("SELECT count(*) FROM influx.token") == 1024
        with pytest.raises(Exception, match="holds 1024 tokens"):
            c.execute(f"SELECT influx.create_token('{USER}', 'one too many')")
        made = [r[0] for r in c.query("SELECT id FROM influx.token WHERE comment = 'filler'")]
        c.execute("SELECT influx.drop_token(%s)", (made.pop(),))
        token = c.scalar(f"SELECT influx.create_token('{USER}', 'fits again')")
        assert token.startswith("pgi_")
    finally:
        c.execute("DELETE FROM influx.token WHERE comment IN ('filler', 'fits again')")
        for r in fillers:
            c.execute(f"DROP ROLE IF EXISTS {r}")


def test_an_unknown_user_takes_as_long_to_refuse_as_a_wrong_password(auth):
    """A login naming a role that does not exist is checked against a secret no password
    matches, as PostgreSQL's own mock authentication does: refusing it costs what refusing a
    real role's wrong password costs (a SCRAM hash), so the time of a 401 does not tell which
    role names exist.  (It was answered without hashing anything: several times faster.)"""
    import time

    def median_401_seconds(user):
        times = []
        for i in range(15):
            t0 = time.perf_counter()
            r = write(auth.http_port, f"timing v=1 {T0_NS}\n", u=user, p=f"wrong-{i}")
            times.append(time.perf_counter() - t0)
            assert r.status == 401, r
        return sorted(times)[len(times) // 2]

    median_401_seconds(USER)  # warm: connections, caches
    known = median_401_seconds(USER)
    unknown = median_401_seconds("nobody_at_all_here")
    assert unknown >= 0.6 * known, (
        f"an unknown user's 401 took {unknown * 1000:.2f} ms, a known user's wrong password "
        f"{known * 1000:.2f} ms")


def metric(c, name):
    """A counter of /metrics, 0 if the server has no such counter.  (Right after a flood of
    wrong passwords a new connection's login may be held back: 503, retried.)"""
    def scrape():
        r = request(c.http_port, "GET", f"/metrics?u={USER}&p={PASSWORD}")
        assert r.status in (200, 503), r
        return r if r.status == 200 else None

    r = wait_for(scrape, 10, what="/metrics")
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return 0


def test_a_flood_of_wrong_passwords_does_not_take_the_listener(auth):
    """Each login that misses the login cache costs the listener's loop a SCRAM check (a
    few ms), during which nothing else is served.  For 12 s, 300 connections send wrong
    passwords, four pipelined at a time.  Checks may take a quarter of the loop, the rest
    are answered 503 with Retry-After, and:
    - a client whose keep-alive connection logged in goes on writing, also when its cached
      login is due to be checked again (after 10 s) while checks are held back; before,
      its writes waited a second and more behind the flood;
    - a new connection with the right password is held back like any other while checks
      are: a 503 for wrong passwords and a 204 for the right one would let a guesser test
      passwords as fast as it can send them."""
    import resource
    import socket
    import threading
    import time

    from http_support import Connection, raw_request

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    throttled_before = metric(auth, "pg_influx_http_auth_throttled_total")
    latencies, errors, probes = [], [], []
    stop = threading.Event()

    def cached_writer():
        try:
            with Connection(auth.http_port) as conn:
                i = 0
                while not stop.is_set():
                    t0 = time.monotonic()
                    r = conn.request("POST", f"/write?u={USER}&p={PASSWORD}",
                                     f"flood_ok i={i}i {T0_NS + i}\n")
                    latencies.append((t0, time.monotonic() - t0))
                    if r.status != 204:
                        errors.append(repr(r))
                        return
                    i += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    def prober():
        while not stop.is_set():
            r = request(auth.http_port, "GET", f"/query?q=SHOW+DATABASES&u={USER}&p={PASSWORD}")
            probes.append(r.status)

    # Two keep-alive connections of another role, logged in with two spellings of its
    # password that SCRAM normalises alike (a soft hyphen is mapped to nothing): in turn,
    # each finds the other's in the cache.  They must pay for their checks like anyone.
    auth.execute("CREATE ROLE flood_variant LOGIN PASSWORD 'v-Secret-7'")
    spellings = ["v-Secret-7", "v-Secret-7%C2%AD"]
    variant_statuses = []

    variants_ready = []

    def variant(spelling):
        with Connection(auth.http_port) as conn:
            path = f"/query?q=SHOW+DATABASES&u=flood_variant&p={spelling}"
            r = conn.request("GET", path)  # logs this connection in, before the flood
            if r.status != 200:
                errors.append(f"{spelling}: {r!r}")
                return
            variants_ready.append(spelling)
            while not stop.is_set():
                r = conn.request("GET", path)
                variant_statuses.append(r.status)
                if r.status == 503:
                    stop.wait(0.05)

    variants = [threading.Thread(target=variant, args=(sp,)) for sp in spellings]
    for v in variants:
        v.start()
    wait_for(lambda: len(variants_ready) == 2 or errors, 10, what="both spellings logged in")

    writer = threading.Thread(target=cached_writer)
    writer.start()
    wait_for(lambda: len(latencies) >= 3 or errors, 10, what="the cached writer's first writes")
    started = time.monotonic()
    per_round = 4
    flood = b"".join(raw_request("GET", f"/query?q=SHOW+DATABASES&u={USER}&p=wrong-{k}")
                     for k in range(per_round))
    statuses = {}
    socks = [socket.create_connection(("localhost", auth.http_port)) for _ in range(300)]
    probe = threading.Thread(target=prober)
    probe.start()
    try:
        while time.monotonic() - started < 12:
            for s in socks:
                s.sendall(flood)
            for s in socks:
                s.settimeout(60)
                data = b""
                while len(re.findall(rb"HTTP/1\.1 \d{3} ", data)) < per_round:
                    d = s.recv(1 << 16)
                    assert d, "the listener closed a flooding connection"
                    data += d
                for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data):
                    statuses[int(code)] = statuses.get(int(code), 0) + 1
                answers = data.split(b"HTTP/1.1 ")[1:]
                assert all(b"Retry-After: " in a for a in answers if a.startswith(b"503")), data
    finally:
        stop.set()
        for s in socks:
            s.close()
        writer.join(30)
        probe.join(30)
        for v in variants:
            v.join(30)
    assert errors == [], errors[:3]
    assert set(statuses) <= {401, 503}, statuses
    assert statuses.get(503, 0) > 0 and statuses.get(401, 0) > 0, statuses
    assert metric(auth, "pg_influx_http_auth_throttled_total") > throttled_before
    # The writer's cached login came due during the flood, and it went on writing.
    assert latencies[0][0] + 10.5 < latencies[-1][0], "the flood ended before the cache expired"
    worst = max(lat for _, lat in latencies)
    assert worst < 0.6, f"a write with cached credentials waited {worst:.2f} s behind the flood"
    assert auth.scalar("SELECT count(*) FROM flood_ok") == len(latencies)
    # New connections with the right password: held back too (no oracle), never refused.
    assert set(probes) <= {200, 503}, set(probes)
    assert 503 in probes, f"the right password was let in during the flood: {probes[:20]}"
    # Spellings taking turns ran their checks outside the budget before.
    assert set(variant_statuses) <= {200, 503}, set(variant_statuses)
    assert 503 in variant_statuses, "two spellings of a password ran checks outside the budget"
