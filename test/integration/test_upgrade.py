"""
test_upgrade.py — the extension's upgrade path: a database that installed version 1.0 (or
1.1) and ran ALTER EXTENSION pg_influx UPDATE has exactly what a fresh install of the
current version has (every member object, its definition, owner and privileges); the new
library answers the older versions' influx.stats() and influx.listener_status(); a table
hook someone replaced survives the update.
"""

CURRENT = "1.4"

# What the extension consists of, described so that two databases can be compared: each
# member object with its definition and its privileges.
DESCRIBE = """
WITH members AS (
    SELECT d.classid, d.objid, d.objsubid
    FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
    WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'pg_influx' AND d.deptype = 'e'
)
SELECT pg_describe_object(classid, objid, objsubid) AS object,
       CASE classid
           WHEN 'pg_proc'::regclass THEN
               (SELECT pg_get_functiondef(objid) || coalesce(proacl::text, '')
                || coalesce(obj_description(objid, 'pg_proc'), '')
                FROM pg_proc WHERE oid = objid)
           WHEN 'pg_class'::regclass THEN
               (SELECT c.relkind::text || coalesce(c.relacl::text, '') || coalesce(pg_get_viewdef(c.oid), '')
                || coalesce(array_to_string(c.reloptions, ','), '')
                || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                               || coalesce(' ' || a.attidentity::text, ''),
                                               ', ' ORDER BY a.attnum)
                             FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                             AND NOT a.attisdropped), '')
                || coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), ', ' ORDER BY k.conname)
                             FROM pg_constraint k WHERE k.conrelid = c.oid), '')
                FROM pg_class c WHERE c.oid = objid)
           WHEN 'pg_namespace'::regclass THEN
               (SELECT coalesce(nspacl::text, '') FROM pg_namespace WHERE oid = objid)
           ELSE ''
       END AS definition
FROM members
ORDER BY 1
"""


def describe(cluster, dbname):
    conn = cluster.connect(dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(DESCRIBE)
            rows = cur.fetchall()
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_influx'")
            return cur.fetchone()[0], rows
    finally:
        conn.close()


def test_update_from_1_0_equals_a_fresh_install(cluster):
    for db in ("upgraded", "fresh"):
        cluster.execute(f"CREATE DATABASE {db}")
    conn = cluster.connect(dbname="upgraded")
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_influx VERSION '1.0'")
            cur.execute("SELECT to_regclass('influx.token')")
            assert cur.fetchone()[0] is None, "1.0 has no token table"
            # The 1.1 library answers a 1.0 database's listener_status() (9 columns).
            cur.execute("SELECT * FROM influx.listener_status()")
            assert len(cur.fetchone()) == 9
            # ... and its influx.stats() (the counters 1.0 declared).
            cur.execute("SELECT * FROM influx.stats()")
            assert all(len(r) == 26 for r in cur.fetchall())
            cur.execute("ALTER EXTENSION pg_influx UPDATE")
    finally:
        conn.close()
    conn = cluster.connect(dbname="fresh")
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_influx")
    finally:
        conn.close()

    version_u, upgraded = describe(cluster, "upgraded")
    version_f, fresh = describe(cluster, "fresh")
    assert version_f == CURRENT
    assert version_u == version_f
    assert any(o.startswith("function influx.create_token") for o, _ in fresh)
    assert any(o == "table influx.token" for o, _ in fresh)
    assert any(o == "table influx.table_option" for o, _ in fresh)
    only_fresh = sorted(set(fresh) - set(upgraded))
    only_upgraded = sorted(set(upgraded) - set(fresh))
    assert not only_fresh and not only_upgraded, (only_fresh, only_upgraded)


def test_the_upgraded_database_creates_tokens(cluster):
    conn = cluster.connect(dbname="upgraded")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT influx.create_token('postgres', 'after upgrade')")
            assert cur.fetchone()[0].startswith("pgi_")
            cur.execute("SELECT count(*) FROM influx.tokens")
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT http_port FROM influx.listener_status()")
            assert cur.fetchone()[0] == cluster.http_port
    finally:
        conn.close()


def test_update_from_1_1_keeps_a_replaced_hook(cluster):
    """The table hooks are meant to be replaced: the update gives the default ones the point
    key, and leaves a replaced one as its owner wrote it (with a WARNING)."""
    cluster.execute("CREATE DATABASE from_1_1")
    conn = cluster.connect(dbname="from_1_1")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_influx VERSION '1.1'")
            cur.execute("SELECT * FROM influx.stats()")
            assert all(len(r) == 26 for r in cur.fetchall())
            cur.execute("""
                CREATE OR REPLACE FUNCTION influx.create_measurement_table(
                    schema_name name, measurement text, tag_keys text[], field_keys text[],
                    field_types text[]) RETURNS regclass LANGUAGE plpgsql AS $$
                BEGIN
                    EXECUTE format('CREATE TABLE %I.%I (_time timestamptz, mine bool)',
                                   schema_name, measurement);
                    RETURN format('%I.%I', schema_name, measurement)::regclass;
                END $$""")
            cur.execute("ALTER EXTENSION pg_influx UPDATE")
            assert any("was replaced and is left as it is" in n for n in conn.notices)
            cur.execute("SELECT prosrc LIKE '%mine bool%' FROM pg_proc "
                        "WHERE oid = 'influx.create_measurement_table'::regproc")
            assert cur.fetchone()[0] is True
            cur.execute("SELECT prosrc LIKE '%pg_influx point key%' FROM pg_proc "
                        "WHERE oid = 'influx.add_measurement_columns'::regproc")
            assert cur.fetchone()[0] is True, "the unchanged hook was updated"
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_influx'")
            assert cur.fetchone()[0] == CURRENT
            cur.execute("SELECT rows_merged, rows_skipped FROM influx.stats()")
    finally:
        conn.close()


def test_update_to_1_4_names_each_tokens_role_and_drops_those_of_dropped_roles(cluster):
    """1.4 binds a token to its role's name as well as its OID.  The update fills in the
    names of the tokens there are, and removes the tokens whose role is gone (worth nothing,
    and they would write as whichever role got the OID next)."""
    cluster.execute("CREATE DATABASE from_1_3")
    cluster.execute("CREATE ROLE upg_keep LOGIN")
    cluster.execute("CREATE ROLE upg_gone LOGIN")
    conn = cluster.connect(dbname="from_1_3")
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_influx VERSION '1.3'")
            cur.execute("SELECT influx.create_token('upg_keep', 'kept')")
            cur.execute("SELECT influx.create_token('upg_gone', 'orphaned')")
            cur.execute("SELECT 'upg_gone'::regrole::oid")
            gone_oid = cur.fetchone()[0]
            cur.execute("DROP ROLE upg_gone")
            cur.execute("SELECT count(*) FROM influx.token WHERE role = %s", (gone_oid,))
            assert cur.fetchone()[0] == 1, "1.3 keeps a dropped role's token"
            cur.execute("ALTER EXTENSION pg_influx UPDATE")
            cur.execute("SELECT role::regrole::text, role_name, comment FROM influx.token")
            assert cur.fetchall() == [("upg_keep", "upg_keep", "kept")]
            cur.execute("SELECT influx.create_token('upg_keep', 'after')")
            cur.execute("SELECT role_name FROM influx.token WHERE comment = 'after'")
            assert cur.fetchone()[0] == "upg_keep"
    finally:
        conn.close()
