"""
test_security.py — who pg_influx writes as, on its default configuration.

The cluster runs with nothing configured for identity (influx.role, influx.schema and
influx.allow_superuser at their defaults).  A hostile table owner, `mallory`, may create
tables in the schema the workers write to (an administrator granted it CREATE there) and
tries to act with the rights of whoever inserts: through a trigger, a column DEFAULT, a
CHECK constraint and an index expression.  Each of her functions records current_user and
tries to make her a superuser and to drop a table of the writing role.  Her tables are
refused to the workers (neither she nor the writer holds the other's privileges); a
superuser's influx.insert() runs her code as her.  Further tests: the caller of
influx.insert() gaining an owner's rights, partitions, rules, RLS, column privileges,
schema USAGE, typmods, bounded table creation, a superuser writer.
"""

import psycopg2
import pytest

from conftest import send_tcp, wait_for

CLUSTER_CONF = {
    "influx.role": None,
    "influx.allow_superuser": None,
    "influx.schema": None,
    "influx.workers": "1",
}


def schema(c):
    return c.scalar("SELECT current_setting('influx.schema')")


def as_role(c, role, sql, params=None):
    conn = c.connect(user=role)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def counter(c, name):
    return c.stat_total(name)


def reported(c, text):
    """Whether a process reported `text` (its last error), or the server logged it (log
    lines of one kind are rate-limited: a repeat may be suppressed)."""
    return (text in " ".join(r["last_error"] or "" for r in c.stats())
            or text in c.log_tail(400))


@pytest.fixture(scope="module")
def mallory(listener):
    """Role mallory, allowed to create tables in the workers' schema, with her functions."""
    c = listener
    s = schema(c)
    # The writing role's own table, which mallory must not be able to drop through it.
    send_tcp(c.tcp_port, "victim v=1\n")
    wait_for(lambda: c.row_count(f"{s}.victim") == 1, what="victim created by the workers")
    c.execute("CREATE ROLE mallory LOGIN")
    c.execute(f"GRANT USAGE, CREATE ON SCHEMA {s} TO mallory")
    c.execute("CREATE SCHEMA mallory AUTHORIZATION mallory")
    as_role(c, "mallory", f"""
        CREATE TABLE mallory.log (tbl text, who text);
        -- Tries what only the inserting identity could do; records who it ran as.
        CREATE FUNCTION mallory.grab(tbl text) RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO mallory.log VALUES (tbl, current_user);
            BEGIN
                ALTER ROLE mallory SUPERUSER;
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            BEGIN
                DROP TABLE {s}.victim;
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            RETURN true;
        END $$;
        CREATE FUNCTION mallory.on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM mallory.grab(TG_TABLE_NAME);
            RETURN NULL;
        END $$;
        -- Index expressions must be IMMUTABLE; a volatile call inside still runs.
        CREATE FUNCTION mallory.idx(v double precision) RETURNS double precision
        LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN
            PERFORM mallory.grab('by_index');
            RETURN v;
        END $$;
        CREATE TABLE {s}.by_trigger (_time timestamptz, v double precision);
        CREATE TRIGGER grab AFTER INSERT ON {s}.by_trigger
            FOR EACH ROW EXECUTE FUNCTION mallory.on_insert();
        CREATE TABLE {s}.by_default (_time timestamptz, v double precision,
                                    grabbed boolean DEFAULT mallory.grab('by_default'));
        CREATE TABLE {s}.by_check (_time timestamptz, v double precision,
                                  CHECK (mallory.grab('by_check')));
        CREATE TABLE {s}.by_index (_time timestamptz, v double precision);
        CREATE INDEX ON {s}.by_index (mallory.idx(v));
        -- Would fire at commit, after the write's user is back: refused.
        CREATE TABLE {s}.by_deferred (_time timestamptz, v double precision);
        CREATE CONSTRAINT TRIGGER grab AFTER INSERT ON {s}.by_deferred
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mallory.on_insert();
        GRANT INSERT ON {s}.by_trigger, {s}.by_default, {s}.by_check, {s}.by_index,
            {s}.by_deferred TO PUBLIC;
        GRANT USAGE ON SCHEMA mallory TO PUBLIC;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA mallory TO PUBLIC;
        GRANT INSERT ON mallory.log TO PUBLIC;
    """)
    return c


def test_defaults_write_as_an_unprivileged_role_into_a_dedicated_schema(listener, db):
    c = listener
    s = schema(c)
    assert s != "public"
    role = c.scalar("SELECT current_setting('influx.role')")
    assert role, "influx.role has a default"
    sup, bypass = c.query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s",
                          (role,))[0]
    assert (sup, bypass) == (False, False)
    send_tcp(c.tcp_port, "defaults_cpu,host=a usage=1.5\n")
    wait_for(lambda: c.row_count(f"{s}.defaults_cpu") == 1, what="the row in the schema")
    assert c.scalar("SELECT to_regclass('public.defaults_cpu')") is None
    owner = c.scalar("SELECT tableowner FROM pg_tables WHERE schemaname = %s "
                     "AND tablename = 'defaults_cpu'", (s,))
    assert owner == role
    users = {r[0] for r in c.query(
        "SELECT usename FROM pg_stat_activity WHERE backend_type = 'influx worker'")}
    assert users == {role}


VECTORS = ["by_trigger", "by_default", "by_check", "by_index"]


@pytest.mark.parametrize("table", VECTORS)
def test_a_table_owner_cannot_act_with_the_writers_rights(mallory, table):
    """mallory and the writer do not hold each other's privileges: her code would run with
    the writer's rights (or, as her, give the network her rights), so her tables are
    refused, counted, and none of her code runs."""
    c = mallory
    s = schema(c)
    before = counter(c, "rows_rejected_table")
    send_tcp(c.tcp_port, f"{table} v=1\n")
    wait_for(lambda: counter(c, "rows_rejected_table") == before + 1,
             what=f"the row for {table} refused")
    assert c.row_count(f"{s}.{table}") == 0
    assert c.scalar("SELECT count(*) FROM mallory.log WHERE tbl = %s", (table,)) == 0
    assert c.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") is False
    assert c.scalar(f"SELECT to_regclass('{s}.victim') IS NOT NULL")
    assert reported(c, "neither the table's owner nor the writing role")


@pytest.mark.parametrize("table", VECTORS)
def test_a_superuser_calling_insert_runs_a_users_table_code_as_that_user(mallory, table):
    """A superuser's influx.insert() into mallory's table: her code runs as her, so her
    attempts at ALTER ROLE and at dropping the writer's table fail, and the row lands."""
    c = mallory
    s = schema(c)
    n = c.scalar("SELECT influx.insert(%s, schema_name => %s)", (f"{table} v=2 1", s))
    assert n == 1
    who = {r[0] for r in c.query("SELECT who FROM mallory.log WHERE tbl = %s", (table,))}
    assert who == {"mallory"}, f"{table}'s code ran as {who}"
    assert c.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") is False
    assert c.scalar(f"SELECT to_regclass('{s}.victim') IS NOT NULL")


def test_deferred_triggers_of_a_less_privileged_owner_are_refused(mallory):
    """Deferred triggers would fire at commit, as the caller, not as their owner."""
    c = mallory
    s = schema(c)
    conn = c.connect()
    try:
        conn.notices.clear()
        with conn.cursor() as cur:
            cur.execute("SELECT influx.insert('by_deferred v=1 1', schema_name => %s)", (s,))
            assert cur.fetchone()[0] == 0
        assert any("deferrable constraints or triggers" in n for n in conn.notices)
    finally:
        conn.close()
    assert c.row_count(f"{s}.by_deferred") == 0
    assert c.scalar("SELECT count(*) FROM mallory.log WHERE tbl = 'by_deferred'") == 0
    assert c.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") is False


def test_insert_caller_cannot_act_with_the_owners_rights(listener):
    """bob may INSERT into carol's table, whose trigger updates a table only carol may
    write.  INSERT runs the trigger as bob (denied); influx.insert() must not run it as
    carol: the table is refused."""
    c = listener
    c.execute("CREATE ROLE carol LOGIN; CREATE ROLE bob LOGIN")
    c.execute("CREATE SCHEMA carol_s AUTHORIZATION carol")
    as_role(c, "carol", """
        CREATE TABLE carol_s.balance (acct text, amount float8);
        INSERT INTO carol_s.balance VALUES ('bob', 0);
        CREATE TABLE carol_s.deposits (_time timestamptz, host text, v float8);
        CREATE FUNCTION carol_s.credit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE carol_s.balance SET amount = amount + NEW.v WHERE acct = NEW.host;
            RETURN NULL;
        END $$;
        CREATE TRIGGER credit AFTER INSERT ON carol_s.deposits
            FOR EACH ROW EXECUTE FUNCTION carol_s.credit();
        GRANT USAGE ON SCHEMA carol_s TO bob;
        GRANT INSERT ON carol_s.deposits TO bob;
    """)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        as_role(c, "bob", "INSERT INTO carol_s.deposits VALUES (now(), 'bob', 1000000)")
    n = as_role(c, "bob", "SELECT influx.insert('deposits,host=bob v=1000000 1', "
                          "schema_name => 'carol_s')")[0][0]
    assert n == 0
    assert c.scalar("SELECT amount FROM carol_s.balance WHERE acct = 'bob'") == 0


def test_a_partition_with_another_owner_gets_no_rows(listener):
    """A leaf partition owned by mallory under a partitioned table the writer may write:
    its trigger would run as the writer; rows routed to it are refused, the others land."""
    c = listener
    s = schema(c)
    role = c.scalar("SELECT current_setting('influx.role')")
    c.execute("CREATE ROLE leafowner LOGIN")
    c.execute("CREATE SCHEMA leaf_s AUTHORIZATION leafowner")
    c.execute(f"CREATE TABLE {s}.lp (_time timestamptz, host text, v float8) "
              "PARTITION BY LIST (host)")
    c.execute(f"CREATE TABLE {s}.lp_b PARTITION OF {s}.lp FOR VALUES IN ('b')")
    c.execute(f"GRANT INSERT ON {s}.lp TO {role}")
    as_role(c, "leafowner", """
        CREATE TABLE leaf_s.log (who text);
        CREATE TABLE leaf_s.lp_a (_time timestamptz, host text, v float8);
        CREATE FUNCTION leaf_s.note() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO leaf_s.log VALUES (current_user);
            RETURN NULL;
        END $$;
        CREATE TRIGGER note AFTER INSERT ON leaf_s.lp_a
            FOR EACH ROW EXECUTE FUNCTION leaf_s.note();
        GRANT INSERT ON leaf_s.log TO PUBLIC;
        GRANT USAGE ON SCHEMA leaf_s TO PUBLIC;
    """)
    c.execute(f"ALTER TABLE {s}.lp ATTACH PARTITION leaf_s.lp_a FOR VALUES IN ('a')")
    before = counter(c, "rows_rejected_insert")
    send_tcp(c.tcp_port, "lp,host=a v=1\nlp,host=b v=2\nlp,host=a v=3\n")
    wait_for(lambda: counter(c, "rows_rejected_insert") == before + 2,
             what="the rows routed to the foreign-owned partition, refused")
    wait_for(lambda: c.row_count(f"{s}.lp") == 1, what="the row for the other partition")
    assert c.row_count("leaf_s.log") == 0


def test_a_partitioned_table_below_with_another_owner_refuses_the_table(mallory):
    """Routing evaluates the partition key of every partitioned table on the way down,
    before any leaf is known: a sub-partitioned table of mallory's under a table of the
    writer's would run her key function as the writer.  The table is refused first."""
    c = mallory
    s = schema(c)
    role = c.scalar("SELECT current_setting('influx.role')")
    as_role(c, "mallory", """
        CREATE FUNCTION mallory.key(v double precision) RETURNS double precision
        LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN
            PERFORM mallory.grab('by_subpartition');
            RETURN v;
        END $$;
        CREATE TABLE mallory.mid (_time timestamptz NOT NULL, v double precision)
            PARTITION BY RANGE (mallory.key(v));
        CREATE TABLE mallory.leaf PARTITION OF mallory.mid
            FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
    """)
    c.execute(f"CREATE TABLE {s}.parted (_time timestamptz NOT NULL, v double precision) "
              "PARTITION BY RANGE (_time)")
    c.execute(f'ALTER TABLE {s}.parted OWNER TO "{role}"')
    c.execute(f"ALTER TABLE {s}.parted ATTACH PARTITION mallory.mid "
              "FOR VALUES FROM (MINVALUE) TO (MAXVALUE)")
    before = counter(c, "rows_rejected_table")
    send_tcp(c.tcp_port, "parted v=1\n")
    wait_for(lambda: counter(c, "rows_rejected_table") == before + 1,
             what="the row refused with its table")
    assert c.scalar("SELECT count(*) FROM mallory.log WHERE tbl = 'by_subpartition'") == 0
    assert c.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") is False
    assert reported(c, "a partitioned table below it")


def test_table_creation_limit_holds_for_concurrent_creators(listener):
    """Sessions creating tables at once (influx.insert(), each with its own process-wide
    count) must not overshoot influx.max_tables."""
    import threading
    c = listener
    s = schema(c)
    have = c.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = %s::regnamespace "
                    "AND relkind IN ('r', 'p', 'f')", (s,))
    c.execute(f"ALTER SYSTEM SET influx.max_tables = {have + 6}")
    c.execute("SELECT pg_reload_conf()")
    errors = []

    def creator(k):
        try:
            conn = c.connect()
            try:
                with conn.cursor() as cur:
                    for i in range(10):
                        cur.execute("SELECT influx.insert(%s, schema_name => %s)",
                                    (f"race_{k}_{i} v=1 1", s))
            finally:
                conn.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    try:
        wait_for(lambda: c.scalar(
            "SELECT setting::int FROM pg_settings WHERE name = 'influx.max_tables'") == have + 6)
        threads = [threading.Thread(target=creator, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        total = c.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = %s::regnamespace "
                         "AND relkind IN ('r', 'p', 'f')", (s,))
        assert total == have + 6
    finally:
        c.execute("ALTER SYSTEM RESET influx.max_tables")
        c.execute("SELECT pg_reload_conf()")


def test_a_system_column_name_as_a_key_does_not_sink_the_table(listener):
    """A tag named xmin can name no column: it is left out of the new table (and of new
    columns) instead of making CREATE TABLE fail for every row of the measurement."""
    c = listener
    s = schema(c)
    n = c.scalar("SELECT influx.insert(%s, schema_name => %s)",
                 ("sysnames,host=a v=1 1\nsysnames,host=b v=2 2\nsysnames,xmin=evil v=3 3", s))
    assert n == 3
    assert c.row_count(f"{s}.sysnames") == 3
    cols = {r[0] for r in c.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
        (f"{s}.sysnames",))}
    assert cols == {"_time", "host", "v"}


def test_a_table_with_insert_rules_is_refused(listener):
    """INSERT would apply the rule; pg_influx writes tables itself, so it refuses them."""
    c = listener
    s = schema(c)
    role = c.scalar("SELECT current_setting('influx.role')")
    c.execute(f"CREATE TABLE {s}.ruled (_time timestamptz, host text, v float8)")
    c.execute("CREATE TABLE quarantine (_time timestamptz, host text, v float8)")
    c.execute(f"CREATE RULE big AS ON INSERT TO {s}.ruled WHERE NEW.v > 100 "
              "DO INSTEAD INSERT INTO public.quarantine VALUES (NEW.*)")
    c.execute(f"GRANT INSERT ON {s}.ruled TO {role}")
    before = counter(c, "rows_rejected_table")
    send_tcp(c.tcp_port, "ruled,host=x v=1000\nruled,host=y v=1\n")
    wait_for(lambda: counter(c, "rows_rejected_table") == before + 2, what="both rows refused")
    assert c.row_count(f"{s}.ruled") == 0
    assert reported(c, "rules ON INSERT")


def test_session_advisory_locks_taken_by_table_code_do_not_outlive_the_flush(listener):
    c = listener
    s = schema(c)
    role = c.scalar("SELECT current_setting('influx.role')")
    c.execute("CREATE FUNCTION public.hold() RETURNS trigger LANGUAGE plpgsql AS $$ "
              "BEGIN PERFORM pg_advisory_lock(4242); RETURN NULL; END $$")
    c.execute(f"CREATE TABLE {s}.holder (_time timestamptz, v float8)")
    c.execute(f"CREATE TRIGGER hold AFTER INSERT ON {s}.holder "
              "FOR EACH STATEMENT EXECUTE FUNCTION public.hold()")
    c.execute(f"GRANT INSERT ON {s}.holder TO {role}")
    send_tcp(c.tcp_port, "holder v=1\n")
    wait_for(lambda: c.row_count(f"{s}.holder") == 1, what="the row")
    # The worker published the flush as done after releasing; poll, the release is prompt.
    wait_for(lambda: c.scalar("SELECT pg_try_advisory_xact_lock(4242)"), 10,
             what="the lock free again")


def test_partition_triggers_leak_no_relation(listener):
    """AFTER ROW triggers on leaves open relations that the write must close (as COPY)."""
    c = listener
    c.execute("CREATE TABLE pt (_time timestamptz, host text, v float8) PARTITION BY LIST (host)")
    c.execute("CREATE TABLE pt_a PARTITION OF pt FOR VALUES IN ('a')")
    c.execute("CREATE TABLE pt_log (n int)")
    c.execute("CREATE FUNCTION public.pt_note() RETURNS trigger LANGUAGE plpgsql AS $$ "
              "BEGIN INSERT INTO public.pt_log VALUES (1); RETURN NULL; END $$")
    c.execute("CREATE TRIGGER note AFTER INSERT ON pt_a FOR EACH ROW "
              "EXECUTE FUNCTION public.pt_note()")
    conn = c.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT influx.insert(E'pt,host=a v=1 1\\npt,host=a v=2 2', "
                        "schema_name => 'public')")
            assert cur.fetchone()[0] == 2
        assert not [n for n in conn.notices if "leak" in n], conn.notices
    finally:
        conn.close()
    assert c.row_count("pt_log") == 2


def test_deferred_foreign_keys_of_the_callers_own_table_work(listener):
    """Acting as the writer is not security-restricted: deferred constraints fire at
    commit as for INSERT."""
    c = listener
    c.execute("CREATE TABLE parent (host text PRIMARY KEY)")
    c.execute("INSERT INTO parent VALUES ('a')")
    c.execute("CREATE TABLE child (_time timestamptz, host text REFERENCES parent "
              "DEFERRABLE INITIALLY DEFERRED, v float8)")
    assert c.scalar("SELECT influx.insert('child,host=a v=1 1', schema_name => 'public')") == 1
    assert c.row_count("child") == 1


def test_a_writer_made_superuser_stops_writing_and_keeps_its_lines(listener):
    c = listener
    s = schema(c)
    role = c.scalar("SELECT current_setting('influx.role')")
    c.execute(f'ALTER ROLE "{role}" SUPERUSER')
    try:
        retries = counter(c, "flush_retries")
        send_tcp(c.tcp_port, "made_super v=1\nmade_super v=2\n")
        wait_for(lambda: counter(c, "flush_retries") > retries, 20,
                 what="the worker refusing to write as a superuser")
        assert c.row_count(f"{s}.made_super") == 0
        assert reported(c, "is a superuser")
    finally:
        c.execute(f'ALTER ROLE "{role}" NOSUPERUSER')
    wait_for(lambda: c.row_count(f"{s}.made_super") == 2, 30, what="the lines, once fixed")
    assert counter(c, "lines_lost") == 0


def test_a_measurement_cannot_name_another_schema(listener):
    c = listener
    s = schema(c)
    c.execute("CREATE SCHEMA other")
    c.execute("CREATE TABLE other.t (_time timestamptz, v double precision)")
    c.execute("GRANT USAGE ON SCHEMA other TO PUBLIC")
    c.execute("GRANT INSERT ON other.t TO PUBLIC")
    send_tcp(c.tcp_port, "other.t v=1\n")
    wait_for(lambda: c.row_count(f'{s}."other.t"') == 1, what="the row in the dotted table")
    assert c.row_count("other.t") == 0


def test_insert_checks_schema_usage(listener):
    c = listener
    c.execute("CREATE ROLE walled_user LOGIN")
    c.execute("CREATE SCHEMA walled")
    c.execute("CREATE TABLE walled.t (_time timestamptz, v double precision)")
    c.execute("GRANT INSERT ON walled.t TO walled_user")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        as_role(c, "walled_user", "INSERT INTO walled.t VALUES (now(), 1)")
    inserted = as_role(c, "walled_user",
                       "SELECT influx.insert('t v=2 1', schema_name => 'walled')")[0][0]
    assert inserted == 0
    assert c.row_count("walled.t") == 0


def test_values_get_their_columns_typmods_as_insert_does(listener):
    c = listener
    s = schema(c)
    role = c.scalar("SELECT current_setting('influx.role')")
    c.execute(f"CREATE TABLE {s}.typmods (_time timestamptz(0), n numeric(5,2), s varchar(3))")
    c.execute(f"GRANT INSERT ON {s}.typmods TO {role}")
    c.execute("CREATE TABLE typmods_ref (_time timestamptz(0), n numeric(5,2), s varchar(3))")
    c.execute("INSERT INTO typmods_ref VALUES "
              "(to_timestamp(1700000000.987654), 1.234, 'abc'), "
              "(to_timestamp(1700000001.4), 999.994, 'xy')")
    before = counter(c, "rows_rejected_value") + counter(c, "rows_rejected_insert")
    send_tcp(c.tcp_port,
             'typmods n=1.234,s="abc" 1700000000987654000\n'
             'typmods n=999.994,s="xy" 1700000001400000000\n'
             'typmods n=12345.6,s="ok" 1700000002000000000\n'   # numeric overflow
             'typmods n=1.0,s="abcd" 1700000003000000000\n')    # too long for varchar(3)
    wait_for(lambda: counter(c, "rows_rejected_value") + counter(c, "rows_rejected_insert")
             - before == 2, what="the two rows INSERT would refuse, rejected")
    got = c.query(f"SELECT _time, n, s FROM {s}.typmods ORDER BY _time")
    want = c.query("SELECT _time, n, s FROM typmods_ref ORDER BY _time")
    assert got == want


def test_row_level_security_applies_with_check_per_row(listener):
    c = listener
    s = schema(c)
    role = c.scalar("SELECT current_setting('influx.role')")
    c.execute(f"CREATE TABLE {s}.guarded (_time timestamptz, host text, v double precision)")
    c.execute(f"CREATE TABLE {s}.guarded_parts (_time timestamptz, host text, v double precision)"
              " PARTITION BY LIST (host)")
    c.execute(f"CREATE TABLE {s}.guarded_parts_a PARTITION OF {s}.guarded_parts "
              "FOR VALUES IN ('a', 'b')")
    for t in ("guarded", "guarded_parts"):
        c.execute(f"GRANT INSERT ON {s}.{t} TO {role}")
        c.execute(f"ALTER TABLE {s}.{t} ENABLE ROW LEVEL SECURITY")
        c.execute(f"CREATE POLICY small ON {s}.{t} FOR INSERT TO {role} WITH CHECK (v < 100)")
    before = counter(c, "rows_rejected_insert")
    lines = "".join(f"{t},host={h} v={v}\n" for t in ("guarded", "guarded_parts")
                    for h, v in (("a", 1), ("b", 500), ("a", 2)))
    send_tcp(c.tcp_port, lines)
    wait_for(lambda: counter(c, "rows_rejected_insert") - before == 2,
             what="the rows the policy refuses, rejected")
    for t in ("guarded", "guarded_parts"):
        wait_for(lambda: c.row_count(f"{s}.{t}") == 2, what=f"the rows of {t} that pass")
        assert sorted(r[0] for r in c.query(f"SELECT v FROM {s}.{t}")) == [1, 2]


def test_insert_applies_the_callers_row_level_security(listener):
    c = listener
    c.execute("CREATE ROLE rls_user LOGIN")
    c.execute("CREATE SCHEMA rls AUTHORIZATION postgres")
    c.execute("GRANT USAGE ON SCHEMA rls TO rls_user")
    c.execute("CREATE TABLE rls.t (_time timestamptz, host text, v double precision)")
    c.execute("GRANT INSERT ON rls.t TO rls_user")
    c.execute("ALTER TABLE rls.t ENABLE ROW LEVEL SECURITY")
    c.execute("CREATE POLICY own_host ON rls.t FOR INSERT TO rls_user "
              "WITH CHECK (host = current_user)")
    n = as_role(c, "rls_user", "SELECT influx.insert("
                "E't,host=rls_user v=1 1\\nt,host=other v=2 2', schema_name => 'rls')")[0][0]
    assert n == 1
    assert c.query("SELECT host, v FROM rls.t") == [("rls_user", 1.0)]


def test_column_privileges_are_checked_per_row(listener):
    c = listener
    s = schema(c)
    role = c.scalar("SELECT current_setting('influx.role')")
    c.execute(f"CREATE TABLE {s}.colpriv (_time timestamptz, host text, v double precision, "
              "secret text)")
    c.execute(f"GRANT INSERT (_time, host, v) ON {s}.colpriv TO {role}")
    before = counter(c, "rows_rejected_table")
    send_tcp(c.tcp_port, 'colpriv,host=a v=1\ncolpriv,host=b v=2,secret="x"\n'
                         "colpriv,host=c v=3\n")
    wait_for(lambda: counter(c, "rows_rejected_table") - before == 1,
             what="the row that sets an ungranted column, rejected")
    wait_for(lambda: c.row_count(f"{s}.colpriv") == 2, what="the other rows")
    assert c.scalar(f"SELECT count(*) FROM {s}.colpriv WHERE secret IS NOT NULL") == 0


def test_table_creation_is_bounded(listener):
    c = listener
    s = schema(c)
    have = c.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = %s::regnamespace "
                    "AND relkind IN ('r', 'p', 'f')", (s,))
    c.execute(f"ALTER SYSTEM SET influx.max_tables = {have + 2}")
    c.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: c.scalar(
            "SELECT setting::int FROM pg_settings WHERE name = 'influx.max_tables'") == have + 2)
        before = counter(c, "rows_rejected_table")
        send_tcp(c.tcp_port, "".join(f"bounded_{i} v=1\n" for i in range(5)))
        wait_for(lambda: counter(c, "rows_rejected_table") - before == 3,
                 what="rows of the tables beyond the limit, rejected")
        created = c.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = %s "
                           "AND tablename LIKE 'bounded%%'", (s,))
        assert created == 2
        assert reported(c, "influx.max_tables")
    finally:
        c.execute("ALTER SYSTEM RESET influx.max_tables")
        c.execute("SELECT pg_reload_conf()")


def test_a_superuser_role_starts_no_workers_unless_allowed(listener):
    c = listener
    s = schema(c)
    c.execute("ALTER SYSTEM SET influx.role = 'postgres'")
    c.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: "superuser" in (c.listener_status() or {}).get("status", ""),
                 timeout=30, what="the listener refusing the superuser role")
        wait_for(lambda: not c.backend_pids("influx worker"), timeout=30,
                 what="no workers")
        c.execute("ALTER SYSTEM SET influx.allow_superuser = on")
        c.execute("SELECT pg_reload_conf()")
        send_tcp(c.tcp_port, "as_superuser v=1\n")
        wait_for(lambda: c.row_count(f"{s}.as_superuser") == 1, timeout=30,
                 what="the row written once allowed")
        assert "which is a superuser" in c.log_tail(400)
    finally:
        c.execute("ALTER SYSTEM RESET influx.role")
        c.execute("ALTER SYSTEM RESET influx.allow_superuser")
        c.execute("SELECT pg_reload_conf()")
    role = c.scalar("SELECT current_setting('influx.role')")
    wait_for(lambda: {r[0] for r in c.query(
        "SELECT usename FROM pg_stat_activity WHERE backend_type = 'influx worker'")} == {role},
        timeout=30, what="workers back as the default role")
